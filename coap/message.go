package coap

import (
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// Message is a CoAP message. Decoding fills it in place: its Token and
// Payload alias the decoded buffer, and its Options slice is reused.
type Message = message.Message

// Options is a message's options, sorted by number.
type Options = message.Options

// Option is one option.
type Option = message.Option

// OptionID is an option number.
type OptionID = message.OptionID

// Code is a request method, response code or signaling code.
type Code = codes.Code

// Type is a message type over UDP: Confirmable, NonConfirmable,
// Acknowledgement or Reset.
type Type = message.Type

// MediaType is a Content-Format number.
type MediaType = message.MediaType

// Message types (RFC 7252 section 3).
const (
	Confirmable     = message.Confirmable
	NonConfirmable  = message.NonConfirmable
	Acknowledgement = message.Acknowledgement
	Reset           = message.Reset
)

// Options tether uses by name; every registered option has an OptionID in
// go-coap's message package, and unknown ones decode as opaque values.
const (
	IfMatch       = message.IfMatch
	URIHost       = message.URIHost
	ETag          = message.ETag
	IfNoneMatch   = message.IfNoneMatch
	Observe       = message.Observe
	URIPort       = message.URIPort
	URIPath       = message.URIPath
	ContentFormat = message.ContentFormat
	MaxAge        = message.MaxAge
	URIQuery      = message.URIQuery
	Block2        = message.Block2
	Block1        = message.Block1
	Size2         = message.Size2
	Size1         = message.Size1

	// Signaling options of a CSM message (RFC 8323 section 5.3).
	MaxMessageSize    = message.TCPMaxMessageSize
	BlockWiseTransfer = message.TCPBlockWiseTransfer
)

// MaxTokenSize is the longest token, in bytes.
const MaxTokenSize = message.MaxTokenSize

// IsSuccess reports whether c is a 2.xx response code.
func IsSuccess(c Code) bool { return c>>5 == 2 }

// IsResponse reports whether c is a response code (2.xx to 5.xx).
func IsResponse(c Code) bool { return c>>5 >= 2 && c>>5 <= 5 }

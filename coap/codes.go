package coap

import (
	"fmt"

	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// Request methods (RFC 7252 12.1.1, RFC 8132).
const (
	Empty  = codes.Empty // 0.00, an empty message: ACK, RST or a ping
	GET    = codes.GET
	POST   = codes.POST
	PUT    = codes.PUT
	DELETE = codes.DELETE
	FETCH  = codes.FETCH  // RFC 8132
	PATCH  = codes.PATCH  // RFC 8132
	IPATCH = codes.IPATCH // RFC 8132
)

// Success response codes, 2.xx (RFC 7252 12.1.2, RFC 7959 2.9.1).
const (
	Created  = codes.Created  // 2.01
	Deleted  = codes.Deleted  // 2.02
	Valid    = codes.Valid    // 2.03
	Changed  = codes.Changed  // 2.04
	Content  = codes.Content  // 2.05
	Continue = codes.Continue // 2.31, RFC 7959: send the next block
)

// Client error response codes, 4.xx (RFC 7252 12.1.2, RFC 7959 2.9,
// RFC 8132, RFC 8516).
const (
	BadRequest               = codes.BadRequest              // 4.00
	Unauthorized             = codes.Unauthorized            // 4.01
	BadOption                = codes.BadOption               // 4.02
	Forbidden                = codes.Forbidden               // 4.03
	NotFound                 = codes.NotFound                // 4.04
	MethodNotAllowed         = codes.MethodNotAllowed        // 4.05
	NotAcceptable            = codes.NotAcceptable           // 4.06
	RequestEntityIncomplete  = codes.RequestEntityIncomplete // 4.08, RFC 7959
	Conflict                 = codes.Conflict                // 4.09, RFC 8132
	PreconditionFailed       = codes.PreconditionFailed      // 4.12
	RequestEntityTooLarge    = codes.RequestEntityTooLarge   // 4.13
	UnsupportedContentFormat = codes.UnsupportedMediaType    // 4.15
	UnprocessableEntity      = codes.UnprocessableEntity     // 4.22, RFC 8132
	TooManyRequests          = codes.TooManyRequests         // 4.29, RFC 8516
)

// Server error response codes, 5.xx (RFC 7252 12.1.2, RFC 8768).
const (
	InternalServerError  = codes.InternalServerError  // 5.00
	NotImplemented       = codes.NotImplemented       // 5.01
	BadGateway           = codes.BadGateway           // 5.02
	ServiceUnavailable   = codes.ServiceUnavailable   // 5.03
	GatewayTimeout       = codes.GatewayTimeout       // 5.04
	ProxyingNotSupported = codes.ProxyingNotSupported // 5.05
	HopLimitReached      = Code(0xa8)                 // 5.08, RFC 8768
)

// Signaling codes, 7.xx (RFC 8323 section 5).
const (
	CSM     = codes.CSM     // 7.01
	Ping    = codes.Ping    // 7.02
	Pong    = codes.Pong    // 7.03
	Release = codes.Release // 7.04
	Abort   = codes.Abort   // 7.05
)

// codeNames are the names the CoAP registries give the codes (RFC 7252
// 12.1, RFC 7959, RFC 8132, RFC 8323, RFC 8516, RFC 8768).
var codeNames = map[Code]string{
	Empty: "Empty",
	GET:   "GET", POST: "POST", PUT: "PUT", DELETE: "DELETE", FETCH: "FETCH", PATCH: "PATCH", IPATCH: "iPATCH",
	Created: "Created", Deleted: "Deleted", Valid: "Valid", Changed: "Changed", Content: "Content", Continue: "Continue",
	BadRequest: "Bad Request", Unauthorized: "Unauthorized", BadOption: "Bad Option", Forbidden: "Forbidden", NotFound: "Not Found",
	MethodNotAllowed: "Method Not Allowed", NotAcceptable: "Not Acceptable", RequestEntityIncomplete: "Request Entity Incomplete", Conflict: "Conflict",
	PreconditionFailed: "Precondition Failed", RequestEntityTooLarge: "Request Entity Too Large", UnsupportedContentFormat: "Unsupported Content-Format",
	UnprocessableEntity: "Unprocessable Entity", TooManyRequests: "Too Many Requests",
	InternalServerError: "Internal Server Error", NotImplemented: "Not Implemented", BadGateway: "Bad Gateway", ServiceUnavailable: "Service Unavailable",
	GatewayTimeout: "Gateway Timeout", ProxyingNotSupported: "Proxying Not Supported", HopLimitReached: "Hop Limit Reached",
	CSM: "CSM", Ping: "Ping", Pong: "Pong", Release: "Release", Abort: "Abort",
}

// CodeString formats a code as CoAP writes it, class and detail, with its
// registered name: "4.04 Not Found", "2.05 Content"; an unregistered code
// is its number alone ("4.31").
func CodeString(c Code) string {
	num := fmt.Sprintf("%d.%02d", c>>5, c&31)
	if name, ok := codeNames[c]; ok {
		return num + " " + name
	}
	return num
}

// TypeString names a message type as traces write it: "CON", "NON",
// "ACK" or "RST" ("?" for anything else).
func TypeString(t Type) string {
	switch t {
	case Confirmable:
		return "CON"
	case NonConfirmable:
		return "NON"
	case Acknowledgement:
		return "ACK"
	case Reset:
		return "RST"
	}
	return "?"
}

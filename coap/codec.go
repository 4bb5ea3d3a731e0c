package coap

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/plgd-dev/go-coap/v3/message"
	tcpcoder "github.com/plgd-dev/go-coap/v3/tcp/coder"
	udpcoder "github.com/plgd-dev/go-coap/v3/udp/coder"
)

var (
	// ErrMalformed reports input that is not a well-formed CoAP message.
	ErrMalformed = errors.New("coap: malformed message")
	// ErrTooLarge reports a frame longer than the limit the reader set.
	ErrTooLarge = errors.New("coap: message larger than allowed")
	// ErrShortFrame reports a TCP frame cut short; more bytes are needed.
	ErrShortFrame = errors.New("coap: frame incomplete")
)

// DefaultMaxMessageSize is the Max-Message-Size RFC 8323 assumes of a peer
// until its CSM says otherwise.
const DefaultMaxMessageSize = 1152

// DecodeUDP decodes one datagram into m, reusing m.Options. m.Token and
// m.Payload alias b. Errors match ErrMalformed.
func DecodeUDP(b []byte, m *Message) error {
	err := decodeGrowing(b, m, func() error { _, err := udpcoder.DefaultCoder.Decode(b, m); return err })
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if m.Type < Confirmable || m.Type > Reset {
		return fmt.Errorf("%w: type %d", ErrMalformed, m.Type)
	}
	return nil
}

// AppendUDP appends the UDP encoding of m to dst.
func AppendUDP(dst []byte, m *Message) ([]byte, error) {
	n, err := udpcoder.DefaultCoder.Size(*m)
	if err != nil {
		return dst, err
	}
	dst, out := grow(dst, n)
	if _, err := udpcoder.DefaultCoder.Encode(*m, out); err != nil {
		return dst[:len(dst)-n], err
	}
	return dst, nil
}

// FrameLength returns the length of the TCP frame at the start of b once its
// header is complete, or ErrShortFrame while it is not. A frame longer than
// limit is ErrTooLarge, before any of it is buffered.
func FrameLength(b []byte, limit int) (int, error) {
	var h tcpcoder.MessageHeader
	if _, err := tcpcoder.DefaultCoder.DecodeHeader(b, &h); err != nil {
		if errors.Is(err, message.ErrShortRead) {
			return 0, ErrShortFrame
		}
		if errors.Is(err, tcpcoder.ErrMessageTooLong) {
			return 0, ErrTooLarge
		}
		return 0, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if int64(h.MessageLength) > int64(limit) { // int64: a length of 2^31 or more is no negative int on 32-bit
		return 0, fmt.Errorf("%w: frame of %d bytes, limit %d", ErrTooLarge, h.MessageLength, limit)
	}
	return int(h.MessageLength), nil
}

// DecodeTCP decodes the frame at the start of b into m and returns its
// length. A frame not yet complete is ErrShortFrame; one longer than limit,
// ErrTooLarge.
func DecodeTCP(b []byte, m *Message, limit int) (int, error) {
	n, err := FrameLength(b, limit)
	if err != nil {
		return 0, err
	}
	if len(b) < n {
		return 0, ErrShortFrame
	}
	m.Token, m.Payload = nil, nil
	err = decodeGrowing(b[:n], m, func() error {
		m.Options = m.Options[:0]
		_, err := tcpcoder.DefaultCoder.Decode(b[:n], m)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	m.MessageID, m.Type = -1, -1
	return n, nil
}

// AppendTCP appends the TCP framing of m to dst (RFC 8323 section 3.2).
// It writes the header itself, since go-coap's encoder allocates one per
// message, and lets go-coap marshal the options.
func AppendTCP(dst []byte, m *Message) ([]byte, error) {
	if len(m.Token) > MaxTokenSize {
		return dst, fmt.Errorf("%w: token of %d bytes", ErrMalformed, len(m.Token))
	}
	optLen, err := m.Options.Marshal(nil)
	if err != nil && !errors.Is(err, message.ErrTooSmall) {
		return dst, err
	}
	body := optLen
	if len(m.Payload) > 0 {
		body += 1 + len(m.Payload)
	}
	tkl := byte(len(m.Token))
	switch {
	case body < 13:
		dst = append(dst, byte(body)<<4|tkl)
	case body < 269:
		dst = append(dst, 13<<4|tkl, byte(body-13))
	case body < 65805:
		dst = append(dst, 14<<4|tkl)
		dst = binary.BigEndian.AppendUint16(dst, uint16(body-269))
	default:
		dst = append(dst, 15<<4|tkl)
		dst = binary.BigEndian.AppendUint32(dst, uint32(body-65805))
	}
	dst = append(dst, byte(m.Code))
	dst = append(dst, m.Token...)
	dst, out := grow(dst, optLen)
	if _, err := m.Options.Marshal(out); err != nil {
		return dst[:len(dst)-optLen], err
	}
	if len(m.Payload) > 0 {
		dst = append(dst, 0xff)
		dst = append(dst, m.Payload...)
	}
	return dst, nil
}

// decodeGrowing runs decode, giving m.Options more room while go-coap
// reports it too small. Every option takes at least one byte of b, so the
// room never exceeds len(b) options.
func decodeGrowing(b []byte, m *Message, decode func() error) error {
	for {
		err := decode()
		if !errors.Is(err, message.ErrOptionsTooSmall) || cap(m.Options) >= len(b) {
			return err
		}
		m.Options = make(Options, 0, min(max(16, 2*cap(m.Options)), len(b)))
	}
}

// grow extends dst by n bytes and returns it with the new part.
func grow(dst []byte, n int) ([]byte, []byte) {
	l := len(dst)
	if cap(dst)-l < n {
		nd := make([]byte, l, l+n+l/4)
		copy(nd, dst)
		dst = nd
	}
	dst = dst[:l+n]
	return dst, dst[l:]
}

// UintOption is an option with an unsigned value, in as few bytes as it
// needs (RFC 7252 section 3.2: 0 is no byte at all): what Uint reads.
func UintOption(id OptionID, v uint32) Option {
	var b []byte
	for ; v > 0; v >>= 8 {
		b = append([]byte{byte(v)}, b...)
	}
	return Option{ID: id, Value: b}
}

// Uint reads an unsigned option value (RFC 7252 section 3.2), and false when
// the option is absent.
func Uint(opts Options, id OptionID) (uint32, bool) {
	for _, o := range opts {
		if o.ID == id {
			if len(o.Value) > 4 {
				return 0, false
			}
			var v uint32
			for _, b := range o.Value {
				v = v<<8 | uint32(b)
			}
			return v, true
		}
	}
	return 0, false
}

// Bytes returns the value of the first id option, and false when absent.
func Bytes(opts Options, id OptionID) ([]byte, bool) {
	for _, o := range opts {
		if o.ID == id {
			return o.Value, true
		}
	}
	return nil, false
}

// AppendUint adds an unsigned option to opts, its value stored in the
// spare capacity of buf (which must not move while opts is in use); it
// returns both grown.
func AppendUint(opts Options, buf []byte, id OptionID, v uint32) (Options, []byte) {
	var tmp [4]byte
	binary.BigEndian.PutUint32(tmp[:], v)
	i := 0
	for i < 4 && tmp[i] == 0 {
		i++
	}
	start := len(buf)
	buf = append(buf, tmp[i:]...)
	return opts.Add(Option{ID: id, Value: buf[start:len(buf):len(buf)]}), buf
}

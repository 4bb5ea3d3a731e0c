package client

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/sock"
)

// NewTCP returns a Conn over a connected stream socket, after the CSM
// exchange of RFC 8323 section 5.3: it sends its own CSM and waits for the
// peer's, bounded by ctx (or 10 s).
func NewTCP(ctx context.Context, s sock.Socket, cfg *Config) (*Conn, error) {
	c, err := newConn(s, cfg, true)
	if err != nil {
		return nil, err
	}
	c.peerMax = coap.DefaultMaxMessageSize
	c.framer = coap.NewFramer(c.max)
	bert := cfg == nil || !cfg.NoBERT

	csm := &c.req
	csm.Code, csm.Token, csm.Payload = coap.CSM, nil, nil
	csm.Options = csm.Options[:0]
	csm.Options, c.optBuf = coap.AppendUint(csm.Options, c.optBuf[:0], coap.MaxMessageSize, uint32(c.max))
	if bert {
		csm.Options = csm.Options.Add(coap.Option{ID: coap.BlockWiseTransfer})
	}
	if c.tx, err = coap.AppendTCP(c.tx[:0], csm); err != nil {
		return nil, err
	}
	if err := s.Send(c.tx); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(10 * time.Second)
	if d, ok := ctx.Deadline(); ok {
		deadline = d
	}
	for {
		m, err := c.readFrame(ctx, deadline)
		if err == errDeadline {
			return nil, &TimeoutError{Reason: "no CSM from the peer"}
		}
		if err != nil {
			return nil, err
		}
		if handled, err := c.signal(m); err != nil {
			return nil, err
		} else if handled && m.Code == coap.CSM {
			c.peerBERT = c.peerBERT && bert
			return c, nil
		}
		c.stats.Junk++ // anything before the CSM
	}
}

// BERT reports whether both sides of a TCP Conn offered BERT.
func (c *Conn) BERT() bool { return c.peerBERT }

// doTCP sends one request and reads frames until its response.
func (c *Conn) doTCP(ctx context.Context, req *coap.Message) (*coap.Message, error) {
	tx, err := coap.AppendTCP(c.tx[:0], req)
	if err != nil {
		return nil, err
	}
	c.tx = tx
	if len(tx) > c.peerMax {
		return nil, fmt.Errorf("%w: %d bytes, peer accepts %d", ErrTooLarge, len(tx), c.peerMax)
	}
	c.traceMsg(true, req)
	if err := c.s.Send(tx); err != nil {
		return nil, err
	}
	start := time.Now()
	deadline := start.Add(c.params.MaxTransmitWait())
	for {
		m, err := c.readFrame(ctx, deadline)
		if err == errDeadline {
			return nil, &TimeoutError{Transmissions: 1, Waited: time.Since(start)}
		}
		if err != nil {
			return nil, err
		}
		if handled, err := c.signal(m); err != nil {
			return nil, err
		} else if handled {
			continue
		}
		if coap.IsResponse(m.Code) && bytes.Equal(m.Token, req.Token) {
			return m, nil
		}
		c.stats.Junk++
	}
}

// signal handles a signaling message, and reports whether m was one.
func (c *Conn) signal(m *coap.Message) (bool, error) {
	switch m.Code {
	case coap.CSM:
		if v, ok := coap.Uint(m.Options, coap.MaxMessageSize); ok && v >= 64 {
			c.peerMax = int(v)
		}
		_, c.peerBERT = coap.Bytes(m.Options, coap.BlockWiseTransfer)
	case coap.Ping:
		pong := &c.scratch
		pong.Code, pong.Token, pong.Payload = coap.Pong, m.Token, nil
		pong.Options = pong.Options[:0]
		var frame [16]byte
		b, err := coap.AppendTCP(frame[:0], pong)
		if err == nil {
			err = c.s.Send(b)
		}
		if err != nil {
			return true, err
		}
	case coap.Pong:
	case coap.Release, coap.Abort:
		return true, fmt.Errorf("%w (%v): %q", ErrReleased, m.Code, m.Payload)
	default:
		return false, nil
	}
	return true, nil
}

// readFrame returns the next frame, decoded into c.resp, reading from the
// socket as needed. A malformed or oversized frame ends the connection: a
// stream cannot be resynchronised.
func (c *Conn) readFrame(ctx context.Context, deadline time.Time) (*coap.Message, error) {
	for {
		ok, err := c.framer.Next(&c.resp)
		if err != nil {
			return nil, err
		}
		if ok {
			c.traceMsg(false, &c.resp)
			return &c.resp, nil
		}
		n, err := c.receiveUntil(ctx, deadline, c.framer.Space())
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, ErrPeerClosed
		}
		c.framer.Advance(n)
	}
}

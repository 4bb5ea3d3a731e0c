package client

import (
	"bytes"
	"context"
	"encoding/binary"
	"time"

	"github.com/tether-iot/tether/coap"
)

// backoff starts the retransmission schedule of a request sent just now
// (RFC 7252 4.2): the first timeout drawn from [ACK_TIMEOUT,
// ACK_TIMEOUT*ACK_RANDOM_FACTOR].
func (c *Conn) backoff() coap.Backoff { return coap.NewBackoff(c.params, c.rng.Float64()) }

// doUDP runs one confirmable exchange: send, retransmit with exponential
// back-off until a matching ACK, RST or separate response arrives.
func (c *Conn) doUDP(ctx context.Context, req *coap.Message) (*coap.Message, error) {
	c.mid++
	mid := c.mid
	req.Type, req.MessageID = coap.Confirmable, int32(mid)
	tx, err := coap.AppendUDP(c.tx[:0], req)
	if err != nil {
		return nil, err
	}
	c.tx = tx
	c.traceMsg(true, req)
	if err := c.s.Send(tx); err != nil {
		return nil, err
	}
	start := time.Now()
	b := c.backoff()
	deadline := start.Add(b.Timeout)
	for {
		m := &c.resp
		err := c.receiveMessage(ctx, deadline, m)
		switch {
		case err == errDeadline:
			if !b.Retry() {
				return nil, &TimeoutError{Transmissions: b.Sends, Waited: time.Since(start)}
			}
			c.stats.Retransmissions++
			c.log.Debug("coap: retransmit", "mid", mid, "attempt", b.Sends, "next_timeout", b.Timeout)
			c.traceMsg(true, req)
			if err := c.s.Send(c.tx); err != nil {
				return nil, err
			}
			deadline = time.Now().Add(b.Timeout)
			continue
		case err != nil:
			return nil, err
		}
		switch m.Type {
		case coap.Acknowledgement, coap.Reset:
			if uint16(m.MessageID) != mid {
				c.stats.Junk++ // a late ACK of an earlier exchange
				continue
			}
			if m.Type == coap.Reset {
				return nil, ErrReset
			}
			if m.Code == coap.Empty {
				// A separate response will follow: stop retransmitting
				// and wait for it (RFC 7252 section 5.2.2).
				deadline = time.Now().Add(b.Ack())
				continue
			}
			if !bytes.Equal(m.Token, req.Token) {
				c.stats.Junk++
				continue
			}
			return m, nil
		case coap.Confirmable:
			if c.acks.Has(uint16(m.MessageID), coap.DedupAcked) {
				c.stats.Duplicates++
				c.sendEmpty(coap.Acknowledgement, uint16(m.MessageID))
				continue
			}
			if coap.IsResponse(m.Code) && bytes.Equal(m.Token, req.Token) {
				c.acks.Add(uint16(m.MessageID), coap.DedupAcked, nil)
				c.sendEmpty(coap.Acknowledgement, uint16(m.MessageID))
				return m, nil
			}
			// A CoAP ping (empty CON) or a message we did not expect.
			c.sendEmpty(coap.Reset, uint16(m.MessageID))
			if m.Code != coap.Empty {
				c.stats.Junk++
			}
		case coap.NonConfirmable:
			if coap.IsResponse(m.Code) && bytes.Equal(m.Token, req.Token) {
				return m, nil
			}
			c.stats.Junk++
		}
	}
}

// sendEmpty sends an empty ACK or RST.
func (c *Conn) sendEmpty(typ coap.Type, mid uint16) {
	var b [4]byte
	b[0] = 1<<6 | byte(typ)<<4
	binary.BigEndian.PutUint16(b[2:], mid)
	if err := c.s.Send(b[:]); err != nil {
		c.log.Debug("coap: sending an empty message", "type", typ, "err", err)
	}
}

package client

import (
	"bytes"
	"context"
	"encoding/binary"
	"time"

	"github.com/tether-iot/tether/coap"
)

// initialTimeout draws the first retransmission timeout uniformly from
// [ACK_TIMEOUT, ACK_TIMEOUT*ACK_RANDOM_FACTOR] (RFC 7252 section 4.2).
func (c *Conn) initialTimeout() time.Duration {
	p := c.params
	return time.Duration(float64(p.AckTimeout) * (1 + c.rng.Float64()*(p.AckRandomFactor-1)))
}

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
	timeout := c.initialTimeout()
	deadline := start.Add(timeout)
	sends, acked := 1, false
	for {
		m := &c.resp
		err := c.receiveMessage(ctx, deadline, m)
		switch {
		case err == errDeadline:
			if acked || sends > c.params.MaxRetransmit {
				return nil, &TimeoutError{Transmissions: sends, Waited: time.Since(start)}
			}
			timeout *= 2
			sends++
			c.stats.Retransmissions++
			c.log.Debug("coap: retransmit", "mid", mid, "attempt", sends, "next_timeout", timeout)
			c.traceMsg(true, req)
			if err := c.s.Send(c.tx); err != nil {
				return nil, err
			}
			deadline = time.Now().Add(timeout)
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
				acked = true
				deadline = time.Now().Add(c.params.MaxTransmitWait())
				continue
			}
			if !bytes.Equal(m.Token, req.Token) {
				c.stats.Junk++
				continue
			}
			return m, nil
		case coap.Confirmable:
			if c.acks.has(uint16(m.MessageID)) {
				c.stats.Duplicates++
				c.sendEmpty(coap.Acknowledgement, uint16(m.MessageID))
				continue
			}
			if coap.IsResponse(m.Code) && bytes.Equal(m.Token, req.Token) {
				c.acks.add(uint16(m.MessageID))
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

// ackRing remembers the message IDs of the last confirmable responses we
// acknowledged, so their retransmissions are acknowledged again rather
// than reset: enough for a window's worth over several retransmission
// intervals.
type ackRing struct {
	ids  [256]uint16
	n, i int
}

func (r *ackRing) has(id uint16) bool {
	for k := 0; k < r.n; k++ {
		if r.ids[k] == id {
			return true
		}
	}
	return false
}

func (r *ackRing) add(id uint16) {
	r.ids[r.i] = id
	r.i = (r.i + 1) % len(r.ids)
	r.n = min(r.n+1, len(r.ids))
}

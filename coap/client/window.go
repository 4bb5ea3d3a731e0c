package client

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/tether-iot/tether/coap"
)

// A window of block requests (BlockRequest.Window) keeps several Block2
// requests outstanding over UDP, each a confirmable exchange of its own
// with its own token, message ID and retransmission schedule. Responses
// may come in any order; the blocks are delivered in order. New requests
// go up to two windows past the first block not delivered, so that a lost
// block does not stall the window (the answers that keep coming are what
// shows the gap, even when the block is lost again): at most two windows
// of blocks wait in memory. The first block is fetched alone, to
// learn the server's block size, ETag and Size2; a server that changes its
// block size later makes the rest of the transfer lockstep again.

// MaxWindow bounds BlockRequest.Window: a larger window gains nothing on
// any link a device sees, and message IDs must stay distinct among the
// outstanding requests (RFC 7252 4.4).
const MaxWindow = 64

// errSizeChanged is the window's signal to go on in lockstep.
var errSizeChanged = errors.New("block size changed")

// inFlight is one outstanding block request of a window.
type inFlight struct {
	num      uint32
	mid      uint16
	token    [8]byte
	wire     []byte
	b        coap.Backoff
	deadline time.Time
	sent     uint64    // the window's transmission count at its last transmission
	txAt     time.Time // its last transmission
	start    time.Time
}

// gapAfter is how many transmissions later a request must have gone out,
// and been answered, before an earlier one still unanswered counts as lost
// and is sent again at once, before its timer; it must also have waited
// longer than the smoothed round trip plus four deviations (RFC 6298, from
// answers to requests sent once: Karn's rule), so jitter and a burst
// answered out of order are not taken for losses. The retransmission
// counts against MAX_RETRANSMIT like a timed one.
const gapAfter = 3

// windowState is what the window knows of the transfer.
type windowState struct {
	path  [][]byte
	szx   uint8
	etag  []byte
	size2 int64
	want  int64 // the first byte not delivered yet
}

// getWindow fetches the blocks from st.want on with window requests
// outstanding. It returns errSizeChanged, with st.want where to go on,
// when the server changes its block size.
func (c *Conn) getWindow(ctx context.Context, st *windowState, window int, fn func(Chunk) error) error {
	bs := int64(coap.Block{SZX: st.szx}.Size())
	deliver := uint32(st.want / bs) // the next block to deliver
	next := deliver                 // the next block to ask for
	last := int64(-1)               // the last block, once known
	if st.size2 >= 0 {
		last = (st.size2+bs-1)/bs - 1
	}
	byMID := make(map[uint16]*inFlight, window)
	byToken := make(map[[8]byte]*inFlight, window)
	got := make(map[uint32][]byte, window)
	var m coap.Message
	m.Options = make(coap.Options, 0, 16)
	var sent uint64                // transmissions so far, for gap detection
	var srtt, rttvar time.Duration // the round trips of answers to requests sent once (RFC 6298)
	resend := func(f *inFlight, now time.Time) error {
		sent++
		f.sent, f.txAt = sent, now
		f.deadline = now.Add(f.b.Timeout)
		c.stats.Retransmissions++
		return c.s.Send(f.wire)
	}

	for {
		// Fill the window: never more than two windows ahead of the next
		// block to deliver, so what waits in memory is bounded.
		for len(byMID) < window && (last < 0 || int64(next) <= last) && next < deliver+uint32(2*window) {
			if next > coap.MaxBlockNum {
				break
			}
			f, err := c.sendBlockRequest(st, next)
			if err != nil {
				return err
			}
			sent++
			f.sent, f.txAt = sent, f.start
			byMID[f.mid], byToken[f.token] = f, f
			next++
		}
		if len(byMID) == 0 {
			if last >= 0 && int64(deliver) > last {
				return nil
			}
			return fmt.Errorf("%w: the transfer stopped at block %d with nothing outstanding", ErrUnexpectedBlock, deliver)
		}
		deadline := time.Time{}
		for _, f := range byMID {
			if deadline.IsZero() || f.deadline.Before(deadline) {
				deadline = f.deadline
			}
		}
		err := c.receiveMessage(ctx, deadline, &m)
		switch {
		case err == errDeadline:
			now := time.Now()
			for _, f := range byMID {
				if f.deadline.After(now) {
					continue
				}
				if !f.b.Retry() {
					return &TimeoutError{Transmissions: f.b.Sends, Waited: now.Sub(f.start)}
				}
				if err := resend(f, now); err != nil {
					return err
				}
			}
			continue
		case err != nil:
			return err
		}
		var f *inFlight
		switch m.Type {
		case coap.Acknowledgement, coap.Reset:
			f = byMID[uint16(m.MessageID)]
			if f == nil {
				c.stats.Junk++ // late, for a request already answered
				continue
			}
			if m.Type == coap.Reset {
				return ErrReset
			}
			if m.Code == coap.Empty {
				f.deadline = time.Now().Add(f.b.Ack())
				continue
			}
		case coap.Confirmable, coap.NonConfirmable:
			var tok [8]byte
			if len(m.Token) == len(tok) {
				copy(tok[:], m.Token)
				f = byToken[tok]
			}
			if m.Type == coap.Confirmable {
				switch {
				case f != nil && coap.IsResponse(m.Code):
					c.acks.Add(uint16(m.MessageID), coap.DedupAcked, nil)
					c.sendEmpty(coap.Acknowledgement, uint16(m.MessageID))
				case c.acks.Has(uint16(m.MessageID), coap.DedupAcked):
					c.stats.Duplicates++
					c.sendEmpty(coap.Acknowledgement, uint16(m.MessageID))
					continue
				default:
					c.sendEmpty(coap.Reset, uint16(m.MessageID))
					c.stats.Junk++
					continue
				}
			}
			if f == nil || !coap.IsResponse(m.Code) {
				c.stats.Junk++
				continue
			}
		}
		if !bytes.Equal(m.Token, f.token[:]) {
			c.stats.Junk++
			continue
		}
		delete(byMID, f.mid)
		delete(byToken, f.token)
		// A gap: requests sent well before this one and not answered
		// were lost (or their answers were); ask again now.
		now := time.Now()
		if f.b.Sends == 1 { // Karn: an answer to a request sent again measures nothing
			rtt := now.Sub(f.txAt)
			if srtt == 0 {
				srtt, rttvar = rtt, rtt/2
			} else {
				d := srtt - rtt
				if d < 0 {
					d = -d
				}
				rttvar, srtt = (3*rttvar+d)/4, (7*srtt+rtt)/8
			}
			for _, g := range byMID {
				if g.b.CanResend() && g.sent+gapAfter <= f.sent && now.Sub(g.txAt) > srtt+4*rttvar {
					g.b.Resend()
					if err := resend(g, now); err != nil {
						return err
					}
				}
			}
		}
		payload, more, err := c.checkWindowBlock(st, f.num, &m)
		if err != nil {
			return err
		}
		if !more {
			last = int64(f.num)
		}
		if int64(f.num) >= int64(deliver) {
			got[f.num] = append([]byte(nil), payload...)
		}
		for {
			p, ok := got[deliver]
			if !ok {
				break
			}
			delete(got, deliver)
			off := int64(deliver) * bs
			end := off + int64(len(p))
			if end > st.want {
				blk := coap.Block{Num: deliver, SZX: st.szx, More: last < 0 || int64(deliver) < last}
				ch := Chunk{Offset: st.want, Block: blk, Payload: p[st.want-off:], ETag: st.etag, Size2: st.size2, More: blk.More}
				if err := fn(ch); err != nil {
					return err
				}
				st.want = end
			}
			deliver++
		}
		if last >= 0 && int64(deliver) > last {
			return nil
		}
	}
}

// sendBlockRequest sends the confirmable request for block num.
func (c *Conn) sendBlockRequest(st *windowState, num uint32) (*inFlight, error) {
	f := &inFlight{num: num, start: time.Now()}
	binary.BigEndian.PutUint64(f.token[:], c.rng.Uint64())
	m := c.buildGet(st.path, coap.Block2, coap.Block{Num: num, SZX: st.szx}, false)
	c.mid++
	f.mid = c.mid
	m.Type, m.MessageID, m.Token = coap.Confirmable, int32(f.mid), f.token[:]
	wire, err := coap.AppendUDP(nil, m)
	if err != nil {
		return nil, err
	}
	f.wire = wire
	f.b = c.backoff()
	f.deadline = f.start.Add(f.b.Timeout)
	c.stats.Requests++
	c.traceMsg(true, m)
	return f, c.s.Send(wire)
}

// checkWindowBlock checks one response of a window against the transfer,
// as GetBlocks checks each of its own, and returns its payload and whether
// more blocks follow. A block smaller than the window's, at the offset
// asked for, is errSizeChanged.
func (c *Conn) checkWindowBlock(st *windowState, num uint32, m *coap.Message) ([]byte, bool, error) {
	offset := int64(num) * int64(coap.Block{SZX: st.szx}.Size())
	blk, ok, err := checkResponse(m, &st.etag, &st.size2, false, offset, false, coap.Block2)
	switch {
	case err != nil:
		return nil, false, err
	case !ok:
		return nil, false, fmt.Errorf("%w: no Block2 in the answer for block %d", ErrUnexpectedBlock, num)
	case blk.SZX < st.szx && blk.Offset() == offset:
		return nil, false, errSizeChanged
	}
	if err := checkBlockEnd(blk, st.szx, offset, len(m.Payload), st.size2); err != nil {
		return nil, false, err
	}
	return m.Payload, blk.More, nil
}

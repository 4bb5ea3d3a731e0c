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

// window is the scheduler of BlockRequest.Window: the requests in flight,
// by message ID and by token, and the blocks that came early.
type window struct {
	t       *transfer
	size    int   // the most requests in flight
	bs      int64 // the block size, which the window never changes
	next    uint32
	last    int64 // the last block, once known; -1 until then
	byMID   map[uint16]*inFlight
	byToken map[[8]byte]*inFlight
	order   reorder
	sent    uint64        // transmissions so far, for gap detection
	m       *coap.Message // the message received
}

// window fetches the blocks from t.want on with size requests in flight.
// It returns errSizeChanged, with t.want where to go on, when the server
// changes its block size.
func (t *transfer) window(ctx context.Context, size int) error {
	bs := t.blockSize()
	w := &window{t: t, size: size, bs: bs, last: t.lastBlock(bs),
		byMID:   make(map[uint16]*inFlight, size),
		byToken: make(map[[8]byte]*inFlight, size),
		order:   reorder{next: uint32(t.want / bs), held: make(map[uint32][]byte, size)},
	}
	w.next = w.order.next
	w.m = &coap.Message{Options: make(coap.Options, 0, 16)}
	for {
		if err := w.fill(); err != nil {
			return err
		}
		if len(w.byMID) == 0 {
			if w.done() {
				return nil
			}
			return fmt.Errorf("%w: the transfer stopped at block %d with nothing outstanding", ErrUnexpectedBlock, w.order.next)
		}
		err := t.c.receiveMessage(ctx, w.deadline(), w.m)
		switch {
		case err == errDeadline:
			err = w.expire(time.Now())
		case err == nil:
			if f := w.match(w.m); f != nil {
				err = w.answered(f)
			}
		}
		if err != nil || w.done() {
			return err
		}
	}
}

// done reports whether every block has been delivered.
func (w *window) done() bool { return w.last >= 0 && int64(w.order.next) > w.last }

// fill sends requests up to the window: never more than two windows ahead
// of the next block to deliver, so what waits in memory is bounded.
func (w *window) fill() error {
	for len(w.byMID) < w.size && (w.last < 0 || int64(w.next) <= w.last) && w.next < w.order.next+uint32(2*w.size) {
		if w.next > coap.MaxBlockNum {
			break
		}
		f, err := w.t.c.sendBlockRequest(w.t, w.next)
		if err != nil {
			return err
		}
		w.sent++
		f.sent, f.txAt = w.sent, f.start
		w.byMID[f.mid], w.byToken[f.token] = f, f
		w.next++
	}
	return nil
}

// deadline is the earliest retransmission timer of the requests in flight.
func (w *window) deadline() time.Time {
	deadline := time.Time{}
	for _, f := range w.byMID {
		if deadline.IsZero() || f.deadline.Before(deadline) {
			deadline = f.deadline
		}
	}
	return deadline
}

// expire retransmits each request whose timer has run out, or ends the
// transfer when one has run out of retransmissions.
func (w *window) expire(now time.Time) error {
	for _, f := range w.byMID {
		if f.deadline.After(now) {
			continue
		}
		if !f.b.Retry() {
			return &TimeoutError{Transmissions: f.b.Sends, Waited: now.Sub(f.start)}
		}
		if err := w.resend(f, now); err != nil {
			return err
		}
	}
	return nil
}

// resend sends f again; its back-off has counted it.
func (w *window) resend(f *inFlight, now time.Time) error {
	w.sent++
	f.sent, f.txAt = w.sent, now
	f.deadline = now.Add(f.b.Timeout)
	w.t.c.stats.Retransmissions++
	return w.t.c.s.Send(f.wire)
}

// match finds the request a message answers: an ACK or RST by message ID,
// a separate response by token. An empty ACK, a duplicate or a stray is
// handled here (acknowledged, reset, counted) and matches nothing. A
// Reset of a request ends the transfer.
func (w *window) match(m *coap.Message) *inFlight {
	c := w.t.c
	var f *inFlight
	switch m.Type {
	case coap.Acknowledgement, coap.Reset:
		f = w.byMID[uint16(m.MessageID)]
		switch {
		case f == nil:
			c.stats.Junk++ // late, for a request already answered
			return nil
		case m.Type == coap.Reset, m.Code != coap.Empty:
			return f
		}
		f.deadline = time.Now().Add(f.b.Ack())
		return nil
	default: // Confirmable, NonConfirmable
		var tok [8]byte
		if len(m.Token) == len(tok) {
			copy(tok[:], m.Token)
			f = w.byToken[tok]
		}
		if m.Type == coap.Confirmable && !c.ackSeparate(m, f != nil) {
			return nil
		}
		if f == nil || !coap.IsResponse(m.Code) {
			c.stats.Junk++
			return nil
		}
		return f
	}
}

// ackSeparate acknowledges a confirmable message: a response to a request
// in flight (expected), or a copy of one acknowledged before; anything
// else is reset. It reports whether m is a response to take.
func (c *Conn) ackSeparate(m *coap.Message, expected bool) bool {
	mid := uint16(m.MessageID)
	switch {
	case expected && coap.IsResponse(m.Code):
		c.acks.Add(mid, coap.DedupAcked, nil)
		c.sendEmpty(coap.Acknowledgement, mid)
		return true
	case c.acks.Has(mid, coap.DedupAcked):
		c.stats.Duplicates++
		c.sendEmpty(coap.Acknowledgement, mid)
	default:
		c.sendEmpty(coap.Reset, mid)
		c.stats.Junk++
	}
	return false
}

// answered takes the answer to request f: it ends the request, looks for
// the gap the answer shows, and checks and delivers the block.
func (w *window) answered(f *inFlight) error {
	m := w.m
	if m.Type == coap.Reset {
		return ErrReset
	}
	if !bytes.Equal(m.Token, f.token[:]) {
		w.t.c.stats.Junk++
		return nil
	}
	delete(w.byMID, f.mid)
	delete(w.byToken, f.token)
	if f.b.Sends == 1 { // Karn: an answer to a request sent again measures nothing
		now := time.Now()
		w.t.rtt.sample(now.Sub(f.txAt))
		if err := w.resendGaps(f, now); err != nil {
			return err
		}
	}
	payload, more, err := w.checkBlock(f.num, m)
	if err != nil {
		return err
	}
	if !more {
		w.last = int64(f.num)
	}
	if f.num >= w.order.next {
		w.order.hold(f.num, payload)
	}
	return w.deliver()
}

// resendGaps sends again, at once, the requests sent well before f and
// not answered: they were lost, or their answers were.
func (w *window) resendGaps(f *inFlight, now time.Time) error {
	for _, g := range w.byMID {
		if g.b.CanResend() && g.sent+gapAfter <= f.sent && now.Sub(g.txAt) > w.t.rtt.bound() {
			g.b.Resend()
			if err := w.resend(g, now); err != nil {
				return err
			}
		}
	}
	return nil
}

// deliver hands over the blocks held that are next in order.
func (w *window) deliver() error {
	t := w.t
	for {
		p, ok := w.order.take()
		if !ok {
			return nil
		}
		n := w.order.next
		off := int64(n) * w.bs
		if end := off + int64(len(p)); end > t.want {
			blk := coap.Block{Num: n, SZX: t.szx, More: w.last < 0 || int64(n) < w.last}
			ch := Chunk{Offset: off, Block: blk, Payload: p, ETag: t.etag, Size2: t.size2, More: blk.More}
			if err := t.deliver(ch); err != nil {
				return err
			}
		}
		w.order.next++
	}
}

// sendBlockRequest sends the confirmable request for block num.
func (c *Conn) sendBlockRequest(t *transfer, num uint32) (*inFlight, error) {
	f := &inFlight{num: num, start: time.Now()}
	binary.BigEndian.PutUint64(f.token[:], c.rng.Uint64())
	m := c.buildGet(t.path, coap.Block2, coap.Block{Num: num, SZX: t.szx}, false)
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

// checkBlock checks one response of the window against the transfer, as
// lockstep checks each of its own, and returns its payload and whether
// more blocks follow. A block smaller than the window's, at the offset
// asked for, is errSizeChanged.
func (w *window) checkBlock(num uint32, m *coap.Message) ([]byte, bool, error) {
	t := w.t
	offset := int64(num) * w.bs
	blk, ok, err := t.check(m, false, offset, coap.Block2)
	switch {
	case err != nil:
		return nil, false, err
	case !ok:
		return nil, false, fmt.Errorf("%w: no Block2 in the answer for block %d", ErrUnexpectedBlock, num)
	case blk.SZX < t.szx && blk.Offset() == offset:
		return nil, false, errSizeChanged
	}
	if err := t.checkEnd(blk, t.szx, offset, len(m.Payload)); err != nil {
		return nil, false, err
	}
	return m.Payload, blk.More, nil
}

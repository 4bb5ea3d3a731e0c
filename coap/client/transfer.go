package client

import (
	"bytes"
	"fmt"
	"time"

	"github.com/tether-iot/tether/coap"
)

// One block-wise GET is a transfer and a scheduler. The transfer owns what
// every way of asking must check and deliver: the block size in use (which
// the server may lower), the first block's ETag and the Size2 announced,
// which every later block must match, the block numbers and where each
// block ends, delivery from the first byte wanted and in order (blocks
// that come early wait in a reorder buffer), and the round-trip estimate.
// A scheduler only decides what to ask for next and when:
//
//   - lockstep (lockstep.go): one Block2 request at a time; it starts
//     every transfer, and hands over to the others after the first block;
//   - window (window.go): BlockRequest.Window confirmable Block2 requests
//     outstanding at once;
//   - Q-Block2 (qblock.go): bursts of Non-confirmable responses, asking
//     only for what is missing (RFC 9177).
//
// The schedulers share the transfer's checks, so a block is accepted by
// one exactly when it would be by the others.

// transfer is the state of one block-wise GET that every scheduler shares.
type transfer struct {
	c    *Conn
	req  BlockRequest
	fn   func(Chunk) error
	path [][]byte

	szx   uint8  // the block size in use: asked for, or the server's smaller one
	etag  []byte // the first block's: every later one must carry it
	size2 int64  // the body's size as announced; -1 until it is
	want  int64  // the first byte not delivered yet (in order)
	// unordered delivers each block as it comes, each byte once
	// (BlockRequest.Unordered with Q-Block2).
	unordered bool

	rtt rttEstimator // of the exchanges that measure one (Karn's rule)
}

// blockSize is the size of the transfer's blocks, in bytes.
func (t *transfer) blockSize() int64 { return int64(coap.Block{SZX: t.szx}.Size()) }

// lastBlock is the number of the body's last block in blocks of bs bytes,
// once Size2 tells it; -1 until then.
func (t *transfer) lastBlock(bs int64) int64 {
	if t.size2 < 0 {
		return -1
	}
	return max(0, (t.size2+bs-1)/bs-1)
}

// check checks a response of the transfer, for the block at offset (-1:
// any), against what the transfer knows: a 2.05, the same Size2 as before
// (recorded when first announced), the same ETag (recorded from the first
// block, or from a later one when learn is set and none is known). It
// returns the block option id; ok is false when the response has none
// (the server sent the whole body).
func (t *transfer) check(resp *coap.Message, learn bool, offset int64, id coap.OptionID) (blk coap.Block, ok bool, err error) {
	if resp.Code != coap.Content {
		return blk, false, responseError(resp)
	}
	if v, ok := coap.Uint(resp.Options, coap.Size2); ok {
		if t.size2 >= 0 && int64(v) != t.size2 {
			return blk, false, fmt.Errorf("%w: Size2 %d, then %d at offset %d", ErrSizeMismatch, t.size2, v, offset)
		}
		t.size2 = int64(v)
	}
	tag, hasTag := coap.Bytes(resp.Options, coap.ETag)
	if learn && t.etag == nil && hasTag {
		t.etag = append([]byte(nil), tag...)
	}
	if t.etag != nil && !bytes.Equal(tag, t.etag) {
		return blk, false, fmt.Errorf("%w: %x, then %x at offset %d", ErrETagChanged, t.etag, tag, offset)
	}
	return coap.GetBlock(resp.Options, id, t.c.stream)
}

// checkEnd checks a block of n bytes at offset, asked for in blocks of
// szx, against the request (checkBlock) and where it ends against Size2.
func (t *transfer) checkEnd(blk coap.Block, asked uint8, offset int64, n int) error {
	if err := checkBlock(blk, asked, offset, n); err != nil {
		return err
	}
	if end := offset + int64(n); t.size2 >= 0 && (end > t.size2 || (!blk.More && end != t.size2)) {
		return fmt.Errorf("%w: block %v ends at %d, Size2 %d", ErrSizeMismatch, blk, end, t.size2)
	}
	return nil
}

// checkBlock verifies a block option of a response against the request.
func checkBlock(blk coap.Block, asked uint8, offset int64, n int) error {
	switch {
	case blk.SZX == coap.BERT && asked != coap.BERT:
		return fmt.Errorf("%w: BERT block to a non-BERT request", ErrBlockSize)
	case blk.SZX != coap.BERT && blk.SZX > asked:
		return fmt.Errorf("%w: server raised the block size to %d", ErrBlockSize, blk.Size())
	case blk.Offset() != offset:
		return fmt.Errorf("%w: block %v (offset %d), asked for offset %d", ErrUnexpectedBlock, blk, blk.Offset(), offset)
	}
	size := blk.Size()
	switch {
	case blk.SZX == coap.BERT && blk.More && (n == 0 || n%1024 != 0):
		return fmt.Errorf("%w: BERT block %v of %d bytes", ErrBlockSize, blk, n)
	case blk.SZX != coap.BERT && n > size:
		return fmt.Errorf("%w: block %v carries %d bytes", ErrBlockSize, blk, n)
	case blk.SZX != coap.BERT && blk.More && n != size:
		return fmt.Errorf("%w: block %v carries %d bytes and says more follow", ErrBlockSize, blk, n)
	}
	return nil
}

// deliver hands ch to the callback from the first byte wanted: in order,
// from t.want, which it then advances to ch's end; unordered, from
// BlockRequest.Offset. A chunk that ends before that byte is not handed
// over (an empty one is: the empty body's only block).
func (t *transfer) deliver(ch Chunk) error {
	from := t.want
	if t.unordered {
		from = t.req.Offset
	}
	end := ch.Offset + int64(len(ch.Payload))
	if end <= from && len(ch.Payload) > 0 {
		return nil
	}
	if ch.Offset < from {
		ch.Payload = ch.Payload[from-ch.Offset:]
		ch.Offset = from
	}
	if !t.unordered {
		t.want = max(t.want, end)
	}
	return t.fn(ch)
}

// reorder holds the blocks that came before their turn, for in-order
// delivery: at most as many as the scheduler lets run ahead.
type reorder struct {
	next uint32            // the next block to deliver: every one before it is
	held map[uint32][]byte // blocks past next, copied (nil: delivered already, unordered)
}

// hold keeps a copy of block n's payload (nil: a block delivered already,
// out of order, that only counts as had).
func (r *reorder) hold(n uint32, payload []byte) { r.held[n] = bytes.Clone(payload) }

// take returns the next block if it is held, and forgets it; the caller
// advances next.
func (r *reorder) take() ([]byte, bool) {
	p, ok := r.held[r.next]
	if ok {
		delete(r.held, r.next)
	}
	return p, ok
}

// rttEstimator is RFC 6298's smoothed round trip and its variation, from
// the answers to requests sent once (Karn's rule: an answer to a request
// sent again measures nothing).
type rttEstimator struct {
	srtt, rttvar time.Duration
	measured     bool
}

// sample takes one round trip: the first sets the estimate (srtt = R,
// rttvar = R/2), each later one moves it by 1/8 and 1/4.
func (e *rttEstimator) sample(rtt time.Duration) {
	if !e.measured {
		e.srtt, e.rttvar, e.measured = rtt, rtt/2, true
		return
	}
	d := e.srtt - rtt
	if d < 0 {
		d = -d
	}
	e.rttvar, e.srtt = (3*e.rttvar+d)/4, (7*e.srtt+rtt)/8
}

// bound is srtt + 4·rttvar: a wait past it is no longer jitter.
func (e *rttEstimator) bound() time.Duration { return e.srtt + 4*e.rttvar }

package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/sock"
)

// A Q-Block2 transfer (RFC 9177), after the first block told that the
// server does Q-Block2, its block size, ETag and Size2:
//
//	          ┌──────────── a block ─────────────┐
//	          ▼                                  │
//	   ┌────────────┐  the last of its set  ┌────┴──────┐
//	   │ receiving  ├──────────────────────►│ follow-up │ missing blocks
//	   └─────┬──────┘  or the last block    └───────────┘ + Continue, one request
//	         │ NON_RECEIVE_TIMEOUT·2^n with no block
//	         ▼
//	   ask again for what is missing (n+1 > NON_MAX_RETRANSMIT: TimeoutError)
//
// Every request is a Non-confirmable GET with a new token and message ID
// and one or more Q-Block2 options in increasing order: the blocks missing
// so far (M unset; at most MAX_PAYLOADS of them, each asked again only
// once the round trip has passed since it was last asked for), then the
// block after the set just received with M set ("Continue" when it starts
// a set). So a lost block is asked for as soon as the end of its set
// shows the gap, in the same request as the Continue: no round trip and
// no timer of its own. A lost last block of a set, or a lost request, is
// covered by the server, which sends the next set NON_TIMEOUT_RANDOM later
// unasked, and then by NON_RECEIVE_TIMEOUT. Nothing cuts a transfer while
// blocks arrive. Responses are matched by token (the last 16 requests')
// and checked as lockstep checks its own: ETag, Size2, block size, where
// the block ends. Blocks more than four sets past the first missing one
// are dropped (asked for again later), which bounds what waits in memory.

// qTokens is how many recent requests' tokens a transfer answers to.
const qTokens = 16

// qTransfer is the state of one Q-Block2 transfer.
type qTransfer struct {
	c       *Conn
	req     *BlockRequest
	fn      func(Chunk) error
	path    [][]byte
	szx     uint8
	bs      int64
	mp      uint32
	etag    []byte
	size2   int64
	last    int64  // the last block's number, -1 until known
	base    uint32 // every block before it is delivered (or held)
	want    int64  // ordered: the first byte not delivered
	ahead   uint32 // blocks past base that may be kept
	held    map[uint32][]byte
	asked   map[uint32]time.Time // when a missing block was last asked for
	tokens  [qTokens][8]byte
	sentAt  [qTokens]time.Time
	ntok    int
	srtt    time.Duration
	heardAt time.Time // the last block
	waitAt  time.Time // the last block or request: the current wait starts there
	retries int
	started time.Time
}

// getQBlock runs a Q-Block2 transfer from the first block's response,
// asked for at offset.
func (c *Conn) getQBlock(ctx context.Context, req *BlockRequest, path [][]byte, szx uint8, offset int64, resp *coap.Message, fn func(Chunk) error) error {
	q := &qTransfer{c: c, req: req, fn: fn, path: path, etag: req.ETag, size2: -1, last: -1, want: req.Offset,
		mp: uint32(c.non.MaxPayloads), held: make(map[uint32][]byte), asked: make(map[uint32]time.Time), started: time.Now()}
	q.ahead = 4 * q.mp
	q.srtt = time.Since(q.started) // refined below; the probe's exchange is a first measure
	blk, ok, err := checkResponse(resp, &q.etag, &q.size2, true, offset, false, coap.QBlock2)
	if err != nil {
		return err
	}
	if !ok || blk.SZX > szx {
		return fmt.Errorf("%w: Q-Block2 %v to a request for %d-byte blocks", ErrBlockSize, blk, 16<<szx)
	}
	q.szx, q.bs = blk.SZX, int64(blk.Size())
	q.base = uint32(offset / q.bs)
	if blk.Num != q.base {
		return fmt.Errorf("%w: block %v, asked for offset %d", ErrUnexpectedBlock, blk, offset)
	}
	if q.size2 >= 0 {
		q.last = max(0, (q.size2+q.bs-1)/q.bs-1)
	}
	if err := q.accept(blk, resp); err != nil {
		return err
	}
	q.heardAt, q.waitAt = time.Now(), time.Now()
	if q.done() {
		return nil
	}
	if err := q.followUp(int64(q.base) - 1); err != nil {
		return err
	}
	return q.run(ctx)
}

// done reports whether every block has been delivered.
func (q *qTransfer) done() bool { return q.last >= 0 && int64(q.base) > q.last }

// run receives blocks until the transfer is complete.
func (q *qTransfer) run(ctx context.Context) error {
	c := q.c
	var m coap.Message
	m.Options = make(coap.Options, 0, 16)
	for !q.done() {
		// RFC 9177 7.2: NON_RECEIVE_TIMEOUT, doubling at each request
		// that brought nothing.
		wait := c.non.NonReceiveTimeout << q.retries
		n, err := c.receiveUntil(ctx, q.waitAt.Add(wait), c.rx)
		switch {
		case err == errDeadline:
			q.retries++
			if q.retries > c.non.NonMaxRetransmit || time.Since(q.heardAt) > c.non.ProbingWait() {
				return &TimeoutError{Transmissions: q.retries, Waited: time.Since(q.heardAt),
					Reason: fmt.Sprintf("no Q-Block2 response after %d requests for the missing blocks", q.retries-1)}
			}
			c.stats.Retransmissions++
			if err := q.followUp(q.highest()); err != nil {
				return err
			}
			continue
		case errors.Is(err, sock.ErrMsgSize):
			c.stats.Junk++
			continue
		case err != nil:
			return err
		}
		if coap.DecodeUDP(c.rx[:n], &m) != nil {
			c.stats.Junk++
			continue
		}
		c.traceMsg(false, &m)
		switch m.Type {
		case coap.Confirmable:
			// A server that sends its bursts confirmable: acknowledge
			// each, once, and take the block.
			dup := c.acks.has(uint16(m.MessageID))
			c.acks.add(uint16(m.MessageID))
			c.sendEmpty(coap.Acknowledgement, uint16(m.MessageID))
			if dup {
				c.stats.Duplicates++
				continue
			}
		case coap.NonConfirmable:
		default:
			continue
		}
		i := q.tokenIndex(m.Token)
		if i < 0 || !coap.IsResponse(m.Code) {
			c.stats.Junk++ // a late answer to another exchange, or not a response
			continue
		}
		if q.sentAt[i] != (time.Time{}) { // the first answer to a request: a round trip (Karn: each request is sent once)
			rtt := time.Since(q.sentAt[i])
			q.srtt = (7*q.srtt + rtt) / 8
			q.sentAt[i] = time.Time{}
		}
		blk, ok, err := checkResponse(&m, &q.etag, &q.size2, false, -1, false, coap.QBlock2)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: a response without Q-Block2 in a Q-Block2 transfer", ErrUnexpectedBlock)
		}
		if err := q.accept(blk, &m); err != nil {
			return err
		}
		q.heardAt, q.waitAt, q.retries = time.Now(), time.Now(), 0
		if (blk.Num+1)%q.mp == 0 || int64(blk.Num) == q.last {
			// The end of a set (or of the body): ask for what is missing
			// up to it, and for the next set, in one request.
			if err := q.followUp(int64(blk.Num)); err != nil {
				return err
			}
		}
	}
	return nil
}

// accept checks a block and delivers it (or keeps it, in order).
func (q *qTransfer) accept(blk coap.Block, m *coap.Message) error {
	if blk.SZX != q.szx {
		return fmt.Errorf("%w: Q-Block2 %v in a transfer of %d-byte blocks", ErrBlockSize, blk, q.bs)
	}
	off := int64(blk.Num) * q.bs
	if err := checkBlockEnd(blk, q.szx, off, len(m.Payload), q.size2); err != nil {
		return err
	}
	if !blk.More {
		if q.last >= 0 && int64(blk.Num) != q.last {
			return fmt.Errorf("%w: the body ends with block %d, Size2 says %d", ErrSizeMismatch, blk.Num, q.last)
		}
		q.last = int64(blk.Num)
	}
	if blk.Num < q.base || blk.Num-q.base >= q.ahead || q.has(blk.Num) {
		q.c.stats.Duplicates++ // had, or too far ahead to keep: asked for again later
		return nil
	}
	delete(q.asked, blk.Num)
	ch := Chunk{Offset: off, Block: blk, Payload: m.Payload, ETag: q.etag, Size2: q.size2, More: blk.More}
	if q.req.Unordered {
		if err := q.deliver(ch); err != nil {
			return err
		}
		q.held[blk.Num] = nil
	} else {
		q.held[blk.Num] = bytes.Clone(m.Payload)
	}
	for {
		p, ok := q.held[q.base]
		if !ok {
			if !q.haveOutside(q.base) {
				return nil
			}
		} else {
			delete(q.held, q.base)
			if !q.req.Unordered {
				off := int64(q.base) * q.bs
				more := q.last < 0 || int64(q.base) < q.last
				b := coap.Block{Num: q.base, SZX: q.szx, More: more}
				if err := q.deliver(Chunk{Offset: off, Block: b, Payload: p, ETag: q.etag, Size2: q.size2, More: more}); err != nil {
					return err
				}
			}
		}
		q.base++
		if q.done() {
			return nil
		}
	}
}

// deliver hands a chunk to the callback, from the first byte wanted.
func (q *qTransfer) deliver(ch Chunk) error {
	end := ch.Offset + int64(len(ch.Payload))
	if end <= q.req.Offset && len(ch.Payload) > 0 {
		return nil
	}
	if ch.Offset < q.req.Offset {
		ch.Payload = ch.Payload[q.req.Offset-ch.Offset:]
		ch.Offset = q.req.Offset
	}
	return q.fn(ch)
}

// has reports whether block n is delivered, kept, or held by the caller.
func (q *qTransfer) has(n uint32) bool {
	if n < q.base {
		return true
	}
	if _, ok := q.held[n]; ok {
		return true
	}
	return q.haveOutside(n)
}

// haveOutside asks BlockRequest.Have about block n.
func (q *qTransfer) haveOutside(n uint32) bool {
	if q.req.Have == nil || !q.req.Unordered {
		return false
	}
	off := int64(n) * q.bs
	size := q.bs
	if q.size2 >= 0 {
		size = min(size, q.size2-off)
	}
	return size > 0 && q.req.Have(off, int(size))
}

// highest returns the highest block received, or base-1.
func (q *qTransfer) highest() int64 {
	hi := int64(q.base) - 1
	for n := range q.held {
		hi = max(hi, int64(n))
	}
	return hi
}

// followUp sends one request: the blocks missing up to upTo, then the
// block after it with M set (the rest of its set, or a Continue). Nothing
// is sent when nothing is missing and nothing follows.
func (q *qTransfer) followUp(upTo int64) error {
	c := q.c
	now := time.Now()
	m := c.buildGet(q.path, coap.QBlock2, coap.Block{Num: q.base, SZX: q.szx}, false)
	m.Options = m.Options[:len(m.Options)-1] // the options but Q-Block2, which follow
	buf := c.optBuf
	guard := 2 * q.srtt // a block asked for within the round trip is still on its way
	count := 0
	for n := int64(q.base); n <= upTo && count < int(q.mp); n++ {
		if q.has(uint32(n)) {
			continue
		}
		if at, ok := q.asked[uint32(n)]; ok && q.retries == 0 && now.Sub(at) < guard {
			continue
		}
		q.asked[uint32(n)] = now
		m.Options, buf = coap.AppendUint(m.Options, buf, coap.QBlock2, coap.Block{Num: uint32(n), SZX: q.szx}.Value())
		count++
	}
	if next := upTo + 1; (q.last < 0 || next <= q.last) && next < int64(q.base)+int64(q.ahead) && next <= coap.MaxBlockNum {
		m.Options, buf = coap.AppendUint(m.Options, buf, coap.QBlock2, coap.Block{Num: uint32(next), More: true, SZX: q.szx}.Value())
		count++
	}
	c.optBuf = buf
	if count == 0 {
		return nil
	}
	i := q.ntok % qTokens
	q.ntok++
	v := c.rng.Uint64()
	for k := range q.tokens[i] {
		q.tokens[i][k] = byte(v >> (8 * k))
	}
	q.sentAt[i] = now
	c.mid++
	m.Type, m.MessageID, m.Token = coap.NonConfirmable, int32(c.mid), q.tokens[i][:]
	tx, err := coap.AppendUDP(c.tx[:0], m)
	if err != nil {
		return err
	}
	c.tx = tx
	c.stats.Requests++
	c.traceMsg(true, m)
	q.waitAt = now
	return c.s.Send(tx)
}

// tokenIndex returns the slot of a token of this transfer, or -1.
func (q *qTransfer) tokenIndex(tok []byte) int {
	if len(tok) != 8 {
		return -1
	}
	for i := 0; i < min(q.ntok, qTokens); i++ {
		if bytes.Equal(q.tokens[i][:], tok) {
			return i
		}
	}
	return -1
}

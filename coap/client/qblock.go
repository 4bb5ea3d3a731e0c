package client

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/tether-iot/tether/coap"
)

// A Q-Block2 transfer (RFC 9177), after the first block told that the
// server does Q-Block2, its block size, ETag and Size2:
//
//	┌───────────┐ its set is whole, or what it lacks is overdue ┌──────────┐
//	│           ├──────────────────────────────────────────────►│ Continue │ the next set,
//	│           │ the set's last blocks are overdue             │          │ with what is
//	│ receiving ├──────────────────────────────────────────────►│          │ missing
//	│           │ a missing block of an earlier set is overdue  ├──────────┤
//	│           ├──────────────────────────────────────────────►│ ask      │ what is missing
//	└─────┬─────┘                                               └──────────┘
//	      │ NON_RECEIVE_TIMEOUT·2^n and no block
//	      ▼
//	ask for what is missing and the rest of the set (n+1 > NON_MAX_RETRANSMIT: TimeoutError)
//
// Every request is a Non-confirmable GET with a new token and message ID
// and Q-Block2 options in increasing order: missing blocks (M unset; at
// most MAX_PAYLOADS), then the next set with M set (a "Continue" when it
// starts a set). A missing block is overdue a round trip and a quarter (or
// RFC 6298's srtt+4·rttvar, if larger) after it was asked for, by name or
// as part of its set, or after its set began to arrive: blocks of one
// burst may arrive out of order, so the gap a later block shows is not a
// loss at once. The last blocks of a set, which no later block shows
// missing, are overdue once the time the burst's blocks have taken so far
// has passed for each of them, and four such gaps (or a quarter round
// trip) more. The Continue waits until the set is whole or what it lacks
// is overdue, and then goes with the missing blocks, as in RFC 9177
// 10.2.3: one burst is in flight at a time, so a transfer stopped or
// killed loses at most a burst. A missing block is asked for again, twice
// the wait later, while blocks keep arriving: no fixed stall. A lost
// request is covered by the server, which sends the next set
// NON_TIMEOUT_RANDOM later unasked, and then by NON_RECEIVE_TIMEOUT.
// Nothing cuts a transfer while blocks arrive. Every request carries the
// Echo value (RFC 9175) the server gave with the first block, if it gave
// one; a request answered 4.01 with an Echo value is asked again with it,
// once. Responses are matched by
// token (the last 64 requests', and the first's) and checked by the
// transfer (transfer.go) as every scheduler's are: ETag, Size2, block
// size, where the block ends. Blocks more than four
// sets past the first missing one are dropped (asked for again later),
// which bounds what waits in memory.

// qTokens is how many recent requests' tokens a transfer answers to
// (asking one block per request, a set is MAX_PAYLOADS requests). The
// first request's token is kept besides them for the whole transfer:
// libcoap sends the blocks of every later set with it.
const qTokens = 64

// pinned is the slot of the transfer's first request's token.
const pinned = qTokens

// qTransfer is the Q-Block2 scheduler's state of one transfer.
//
// What it asks for next, and when, is decided in few places, for a
// scheduler that would ask differently (the next set before the current
// one has drained, say): afterBlock, when a block has come; request, which
// builds every request (what is missing, then the next set, or a Continue
// deferred until the set is whole or what it lacks is overdue); timedOut,
// when a wait ends with nothing; and nextWait, which says how long.
type qTransfer struct {
	transfer // a copy: the Q-Block2 scheduler runs the rest of the transfer
	bs       int64
	mp       uint32
	last     int64          // the last block's number, -1 until known
	order    reorder        // every block before order.next is delivered (or held by the caller)
	ahead    uint32         // blocks past order.next that may be kept
	asked    map[uint32]ask // when a missing block was last asked for, and how often
	tokens   [qTokens + 1][8]byte
	vals     [qTokens + 1][]uint32 // each request's Q-Block2 options, to ask again after a 4.01
	echoed   [qTokens + 1]bool     // the request was asked again with an Echo value already
	echo     []byte                // the server's Echo value (RFC 9175), sent with every request
	sentAt   [qTokens + 1]time.Time
	ntok     int
	drew     [qTokens + 1]drew // what each request drew, to tell a server that answers one block per request
	judged   int               // requests up to this one were judged by lone
	lone     int               // requests for several blocks in a row answered with their first block only
	single   bool              // ask one block per request: the server answers no more
	learn    bool              // take ETag and Size2 from the next block: the first response had neither
	valBuf   []uint32
	lostBuf  []uint32
	setSeen  map[uint32]time.Time // when the first block of a set arrived
	recheck  time.Time            // when a missing block asked for recently is overdue
	burst    burst                // how the latest set is arriving
	cont     continued            // the latest Continue
	heardAt  time.Time            // the last block
	waitAt   time.Time            // the last block or request: the current wait starts there
	retries  int
	followed int64 // the last block of the latest set followed up with a Continue
	deferred int64 // a set end whose Continue waits for its missing blocks to be overdue; -1: none
	pipe     pipe  // a window of blocks clocked by arrivals, on a link whose rate sets the pace (qpipe.go)
}

// getQBlock runs the Q-Block2 scheduler from the first block's response,
// asked for at offset; the transfer's round-trip estimate holds that
// exchange.
func (t *transfer) getQBlock(ctx context.Context, offset int64, resp *coap.Message) error {
	c := t.c
	t.unordered = t.req.Unordered
	q := &qTransfer{transfer: *t, last: -1, followed: -1, deferred: -1, mp: uint32(c.non.MaxPayloads),
		order: reorder{held: make(map[uint32][]byte)}, asked: make(map[uint32]ask), setSeen: make(map[uint32]time.Time)}
	q.ahead = 4 * q.mp
	t = &q.transfer // what follows is the copy's
	asked := t.szx
	blk, ok, err := t.check(resp, true, offset, coap.QBlock2)
	if err != nil {
		return err
	}
	if !ok || blk.SZX > asked {
		return fmt.Errorf("%w: Q-Block2 %v to a request for %d-byte blocks", ErrBlockSize, blk, 16<<asked)
	}
	if e, hasEcho := coap.Bytes(resp.Options, coap.Echo); hasEcho {
		q.echo = bytes.Clone(e) // for the requests that draw bursts (RFC 9175)
	}
	t.szx, q.bs = blk.SZX, int64(blk.Size())
	q.order.next = uint32(offset / q.bs)
	if blk.Num != q.order.next {
		return fmt.Errorf("%w: block %v, asked for offset %d", ErrUnexpectedBlock, blk, offset)
	}
	q.last = t.lastBlock(q.bs)
	if err := q.first(blk, resp); err != nil {
		return err
	}
	if err := q.drain(); err != nil { // the caller may hold the first block and those after it (Have)
		return err
	}
	q.heardAt, q.waitAt = time.Now(), time.Now()
	if q.done() {
		return nil
	}
	delete(q.setSeen, blk.Num/q.mp)                             // the rest of the first block's set was never asked for
	if err := q.followUp(int64(q.order.next) - 1); err != nil { // the rest of the set
		return err
	}
	return q.run(ctx)
}

// first takes the first block. A first block without ETag or Size2 is
// how libcoap answers a request it serves as a single block, keeping no
// state for the body: it bursts only for a request for the whole body
// (block 0 with M set, as its own client asks), and answers any other
// with the first block it names, alone.
func (q *qTransfer) first(blk coap.Block, resp *coap.Message) error {
	_, hasTag := coap.Bytes(resp.Options, coap.ETag)
	stateless := !hasTag && q.size2 < 0 && blk.More
	switch {
	case stateless && q.order.next == 0:
		// Ask for the whole body, block 0 again included: the burst
		// carries the ETag and Size2 every block is then checked against.
		q.learn = true
		return nil
	case stateless:
		// Past block 0 no request draws a burst: one block per request.
		q.single = true
	}
	_, err := q.accept(blk, resp)
	return err
}

// done reports whether every block has been delivered.
func (q *qTransfer) done() bool { return q.last >= 0 && int64(q.order.next) > q.last }

// run receives blocks until the transfer is complete.
func (q *qTransfer) run(ctx context.Context) error {
	var m coap.Message
	m.Options = make(coap.Options, 0, 16)
	for !q.done() {
		q.judge(time.Now())
		w := q.nextWait()
		err := q.c.receiveMessage(ctx, w.deadline, &m)
		switch {
		case err == errDeadline:
			err = q.timedOut(w)
		case err == nil:
			err = q.receive(&m)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// qWait is what a wait for the next message ends at.
type qWait struct {
	deadline time.Time // the earliest of the others
	quiet    time.Time // NON_RECEIVE_TIMEOUT·2^retries after the last block or request
	tail     time.Time // the latest set's last blocks are overdue (zero: none awaited)
	tailEnd  int64     // that set's last block
}

// nextWait says how long to wait: RFC 9177 7.2's NON_RECEIVE_TIMEOUT,
// doubling at each request that brought nothing, or less when a block
// asked for, or the tail of the latest set, is overdue first.
func (q *qTransfer) nextWait() qWait {
	w := qWait{quiet: q.waitAt.Add(q.c.non.NonReceiveTimeout << q.retries)}
	w.deadline = w.quiet
	if !q.recheck.IsZero() && q.recheck.Before(w.deadline) {
		w.deadline = q.recheck
	}
	w.tail, w.tailEnd = q.tailDue()
	if !w.tail.IsZero() && w.tail.Before(w.deadline) {
		w.deadline = w.tail
	}
	return w
}

// timedOut acts on a wait that ended with nothing.
func (q *qTransfer) timedOut(w qWait) error {
	now := time.Now()
	switch {
	case !w.tail.IsZero() && !now.Before(w.tail) && now.Before(w.quiet):
		// The last blocks of the latest set are overdue: ask for
		// them, and for the next set.
		if err := q.request(w.tailEnd, true); err != nil {
			return err
		}
		q.burst.asked = true
		return nil
	case now.Before(w.quiet):
		return q.overdue()
	default:
		return q.silent()
	}
}

// overdue asks again, alone, for a block asked for that is overdue.
func (q *qTransfer) overdue() error {
	q.recheck = time.Time{}
	if q.retries > 0 {
		return nil // the server is silent: NON_RECEIVE_TIMEOUT's turn
	}
	upTo, more := q.followed, false
	switch {
	case q.deferred >= 0:
		upTo, more = q.deferred, true
	case q.contLost():
		// The latest Continue brought nothing: send it again.
		q.cont.resent++
		upTo, more = q.cont.next-1, true
	}
	return q.request(upTo, more)
}

// silent asks for what is missing after NON_RECEIVE_TIMEOUT with nothing
// received, NON_MAX_RETRANSMIT times at most (and within
// NON_PROBING_WAIT of the last block), then gives up.
func (q *qTransfer) silent() error {
	c := q.c
	q.retries++
	if q.retries > c.non.NonMaxRetransmit || time.Since(q.heardAt) > c.non.ProbingWait() {
		return &TimeoutError{Transmissions: q.retries, Waited: time.Since(q.heardAt),
			Reason: fmt.Sprintf("no Q-Block2 response after %d requests for the missing blocks", q.retries-1)}
	}
	c.stats.Retransmissions++
	return q.followUp(q.highest())
}

// receive takes a message: a response to one of the transfer's requests
// is measured, and its block checked, kept and delivered in turn.
func (q *qTransfer) receive(m *coap.Message) error {
	i, ok := q.response(m)
	if !ok {
		return nil
	}
	if e, ok := coap.Bytes(m.Options, coap.Echo); ok && m.Code == coap.Unauthorized && !q.echoed[i] {
		// The server wants to see that this address receives
		// before it sends a burst: ask again with its Echo value.
		q.echo = bytes.Clone(e)
		return q.reask(i)
	}
	blk, ok, err := q.check(m, q.learn, -1, coap.QBlock2)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: a response without Q-Block2 in a Q-Block2 transfer", ErrUnexpectedBlock)
	}
	if q.last < 0 {
		q.last = q.lastBlock(q.bs)
	}
	q.drew[i].got++
	q.drew[i].gotFirst = q.drew[i].gotFirst || blk.Num == q.drew[i].first
	fresh, err := q.accept(blk, m)
	if err != nil {
		return err
	}
	if fresh {
		q.learn = false
		// Only a block the transfer lacked is progress: a peer that
		// replays blocks it has (or sends them far ahead, to be
		// dropped) must not hold the transfer open forever.
		q.heardAt, q.waitAt, q.retries = time.Now(), time.Now(), 0
	}
	return q.afterBlock(blk.Num, fresh)
}

// response finds the request a message answers and returns its token's
// slot; false for anything else (counted). A confirmable one (a server
// that sends its bursts so) is acknowledged, each copy, and taken once.
// The first answer to a request measures a round trip (Karn: each
// request is sent once).
func (q *qTransfer) response(m *coap.Message) (int, bool) {
	c := q.c
	switch m.Type {
	case coap.Confirmable:
		dup := c.acks.Has(uint16(m.MessageID), coap.DedupAcked)
		c.acks.Add(uint16(m.MessageID), coap.DedupAcked, nil)
		c.sendEmpty(coap.Acknowledgement, uint16(m.MessageID))
		if dup {
			c.stats.Duplicates++
			return 0, false
		}
	case coap.NonConfirmable:
	default:
		return 0, false
	}
	i := q.tokenIndex(m.Token)
	if i < 0 || !coap.IsResponse(m.Code) {
		c.stats.Junk++ // a late answer to another exchange, or not a response
		return 0, false
	}
	if q.sentAt[i] != (time.Time{}) {
		q.rtt.sample(time.Since(q.sentAt[i]))
		q.pipe.sampled(time.Since(q.sentAt[i]))
		q.sentAt[i] = time.Time{}
	}
	return i, true
}

// afterBlock asks for more once block n has come (fresh: a block the
// transfer lacked), if it completes what the transfer lacked of its set
// (or of the body): what is still missing up to the set's end, and the
// next set, in one request.
func (q *qTransfer) afterBlock(n uint32, fresh bool) error {
	if asked, err := q.pipeAfter(fresh); asked || err != nil {
		return err
	}
	if end := q.setEnd(n); end > q.followed && q.hasFrom(n+1, end) {
		return q.followUp(end)
	}
	return nil
}

// accept checks a block and delivers it (or keeps it, in order). fresh
// reports a block the transfer lacked and keeps.
func (q *qTransfer) accept(blk coap.Block, m *coap.Message) (fresh bool, err error) {
	if err := q.checkEnds(blk, len(m.Payload)); err != nil {
		return false, err
	}
	if blk.Num < q.order.next || blk.Num-q.order.next >= q.ahead || q.has(blk.Num) {
		q.c.stats.Duplicates++ // had, or too far ahead to keep: asked for again later
		return false, nil
	}
	q.arrived(blk.Num)
	if !q.unordered {
		q.order.hold(blk.Num, m.Payload)
		return true, q.drain()
	}
	ch := Chunk{Offset: int64(blk.Num) * q.bs, Block: blk, Payload: m.Payload, ETag: q.etag, Size2: q.size2, More: blk.More}
	if err := q.deliver(ch); err != nil {
		return true, err
	}
	q.order.hold(blk.Num, nil)
	return true, q.drain()
}

// checkEnds checks a block of n bytes against the transfer's block size
// and Size2, and where the body ends: a block with M unset is the last,
// and no block may come past it.
func (q *qTransfer) checkEnds(blk coap.Block, n int) error {
	if blk.SZX != q.szx {
		return fmt.Errorf("%w: Q-Block2 %v in a transfer of %d-byte blocks", ErrBlockSize, blk, q.bs)
	}
	if err := q.checkEnd(blk, q.szx, int64(blk.Num)*q.bs, n); err != nil {
		return err
	}
	if blk.More {
		if q.last >= 0 && int64(blk.Num) > q.last {
			return fmt.Errorf("%w: block %d past the last one, %d", ErrSizeMismatch, blk.Num, q.last)
		}
		return nil
	}
	if q.last >= 0 && int64(blk.Num) != q.last {
		return fmt.Errorf("%w: the body ends with block %d, Size2 says %d", ErrSizeMismatch, blk.Num, q.last)
	}
	// Without Size2 only M tells where the body ends: a block past
	// this one, had already, says otherwise (blocks of one burst
	// arrive in any order, so the last may come after them).
	past := int64(blk.Num)+1 < int64(q.order.next)
	for n := range q.order.held {
		past = past || n > blk.Num
	}
	if past {
		return fmt.Errorf("%w: block %d says it is the last, and blocks past it came", ErrSizeMismatch, blk.Num)
	}
	q.last = int64(blk.Num)
	return nil
}

// arrived records a block the transfer lacked: no longer asked for, its
// set seen, the burst's pace, the Continue not lost.
func (q *qTransfer) arrived(n uint32) {
	q.pipeArrived(n, time.Now()) // before its ask is forgotten
	delete(q.asked, n)
	if _, ok := q.setSeen[n/q.mp]; !ok {
		q.setSeen[n/q.mp] = time.Now()
	}
	q.burst.add(n, q.mp, time.Now())
	if int64(n/q.mp) == q.cont.next/int64(q.mp) {
		q.cont.at = time.Time{} // the Continue's set shows: it was not lost
	}
}

// drain delivers, in order, the blocks held that are next, and moves past
// those the caller holds (BlockRequest.Have).
func (q *qTransfer) drain() error {
	for !q.done() {
		p, ok := q.order.take()
		if !ok && !q.haveOutside(q.order.next) {
			return nil
		}
		if ok && !q.unordered {
			n := q.order.next
			more := q.last < 0 || int64(n) < q.last
			b := coap.Block{Num: n, SZX: q.szx, More: more}
			if err := q.deliver(Chunk{Offset: int64(n) * q.bs, Block: b, Payload: p, ETag: q.etag, Size2: q.size2, More: more}); err != nil {
				return err
			}
		}
		// What is behind order.next is never asked about again: the
		// maps hold only the blocks ahead, not one entry per block or
		// set of the body.
		delete(q.asked, q.order.next)
		q.order.next++
		if q.order.next%q.mp == 0 {
			delete(q.setSeen, q.order.next/q.mp-1)
		}
	}
	return nil
}

// has reports whether block n is delivered, kept, or held by the caller.
func (q *qTransfer) has(n uint32) bool {
	if n < q.order.next {
		return true
	}
	if _, ok := q.order.held[n]; ok {
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

// setEnd returns the last block of the set that holds block n (or the
// body's last block, when it comes first).
func (q *qTransfer) setEnd(n uint32) int64 {
	end := int64(n/q.mp+1)*int64(q.mp) - 1
	if q.last >= 0 {
		end = min(end, q.last)
	}
	return end
}

// heldOutside reports whether the caller holds any block from..to
// (BlockRequest.Have).
func (q *qTransfer) heldOutside(from uint32, to int64) bool {
	for n := int64(from); n <= to; n++ {
		if _, ok := q.order.held[uint32(n)]; !ok && n >= int64(q.order.next) && q.haveOutside(uint32(n)) {
			return true
		}
	}
	return false
}

// hasFrom reports whether every block from..to is had.
func (q *qTransfer) hasFrom(from uint32, to int64) bool {
	for n := int64(from); n <= to; n++ {
		if !q.has(uint32(n)) {
			return false
		}
	}
	return true
}

// highest returns the highest block received, or base-1.
func (q *qTransfer) highest() int64 {
	hi := int64(q.order.next) - 1
	for n := range q.order.held {
		hi = max(hi, int64(n))
	}
	return hi
}

// followUp sends one request: the blocks missing up to upTo, then the
// block after it with M set (the rest of its set, or a Continue). Nothing
// is sent when nothing is missing and nothing follows.
func (q *qTransfer) followUp(upTo int64) error { return q.request(upTo, true) }

// request sends what is missing up to upTo (the blocks overdue, by
// name: at most MAX_PAYLOADS) and, when more is set, the block after upTo
// with M set: the rest of its set, or a Continue. The Continue waits while
// a block of the set that ends at upTo may still come (deferred). Nothing
// is sent when nothing is asked for.
func (q *qTransfer) request(upTo int64, more bool) error {
	now := time.Now()
	guard := q.guard()
	q.recheck = time.Time{}
	if q.windowed() {
		return q.fill(q.retries > 0) // qpipe.go
	}
	setStart := upTo - upTo%int64(q.mp)
	upTo = min(upTo, int64(q.order.next)+int64(q.ahead)-1) // what lies further would be dropped
	if hi := q.highest() + 1; q.last < 0 && q.size2 < 0 && upTo > hi {
		// Without Size2 only the block with M unset says where the body
		// ends, and a block past the end is answered 4.02, which ends
		// the transfer: past the highest block come, ask for the next
		// one alone, whose M says whether more follow.
		upTo, more = hi, false
	}
	vals, waiting := q.askMissing(q.valBuf[:0], upTo, setStart, now, guard)
	if more && waiting {
		// The Continue waits until the set is whole or its missing
		// blocks are overdue, and then goes with them: one burst in
		// flight at a time.
		q.deferred, more = upTo, false
	}
	if more {
		q.followed, q.deferred = max(q.followed, upTo), -1
		vals = q.askNext(vals, upTo+1, now, guard)
	}
	q.valBuf = vals
	if c := q.cont; !c.at.IsZero() && c.resent < 2 && q.retries == 0 {
		// The latest Continue, until its set shows (contLost).
		if due := c.at.Add(guard); due.After(now) && (q.recheck.IsZero() || due.Before(q.recheck)) {
			q.recheck = due
		}
	}
	if len(vals) == 0 {
		return nil
	}
	return q.sendAll(vals)
}

// askMissing appends to vals the blocks from order.next to upTo that are
// missing and overdue, by name, up to MAX_PAYLOADS in all; waiting
// reports a block of the set from setStart on that is missing but may
// still come.
func (q *qTransfer) askMissing(vals []uint32, upTo, setStart int64, now time.Time, guard time.Duration) (_ []uint32, waiting bool) {
	for n := int64(q.order.next); n <= upTo && len(vals) < int(q.mp); n++ {
		if q.has(uint32(n)) {
			continue
		}
		a, ok := q.askedAt(uint32(n))
		if due := a.at.Add(guard << min(a.n, 1)); ok && q.retries == 0 && now.Before(due) {
			// Still on its way, perhaps behind a later block, until due:
			// a round trip after it was asked for (twice that once it was
			// asked for by name: the loss of a block, while others
			// arrive, is chance, not congestion, which the server's
			// pacing answers).
			q.recheckAt(a, due)
			waiting = waiting || n >= setStart
			continue
		}
		vals = append(vals, q.askByName(uint32(n), a, now, guard))
	}
	return vals, waiting
}

// askByName records that block n, last asked for as a says, is asked for
// by name now, and returns its Q-Block2 option value.
func (q *qTransfer) askByName(n uint32, a ask, now time.Time, guard time.Duration) uint32 {
	a = ask{at: now, n: a.n + 1, seq: q.pipe.number()}
	q.asked[n] = a
	q.recheckAt(a, now.Add(guard<<min(a.n, 1)))
	return coap.Block{Num: n, SZX: q.szx}.Value()
}

// askNext appends the request for the set from block next on: with M set
// (the rest of the set, a Continue when next starts it), or, when the
// caller holds some of it already (a resumed transfer), the others by
// name. Nothing past the body, or past what may be kept ahead.
func (q *qTransfer) askNext(vals []uint32, next int64, now time.Time, guard time.Duration) []uint32 {
	if (q.last >= 0 && next > q.last) || next >= int64(q.order.next)+int64(q.ahead) || next > coap.MaxBlockNum {
		return vals
	}
	end := q.setEnd(uint32(next))
	if q.heldOutside(uint32(next), end) {
		for n := next; n <= end; n++ {
			if !q.has(uint32(n)) {
				a, _ := q.askedAt(uint32(n))
				vals = append(vals, q.askByName(uint32(n), a, now, guard))
			}
		}
		return vals
	}
	vals = append(vals, coap.Block{Num: uint32(next), More: true, SZX: q.szx}.Value())
	for n := next; n <= end; n++ {
		q.asked[uint32(n)] = ask{at: now, seq: q.pipe.number()}
	}
	if next != q.cont.next {
		q.cont = continued{next: next}
	}
	q.cont.at = now
	return vals
}

// sendAll sends the Q-Block2 options vals in one request; to a server
// that answers one block per request, one request per block, M unset: a
// set becomes MAX_PAYLOADS requests, sent together, as a burst would have
// come.
func (q *qTransfer) sendAll(vals []uint32) error {
	if !q.single {
		_, err := q.sendVals(vals)
		return err
	}
	for _, v := range vals {
		b, _ := coap.ParseBlock(v, false)
		end := int64(b.Num)
		if b.More {
			end = q.setEnd(b.Num)
		}
		for n := int64(b.Num); n <= end; n++ {
			one := coap.Block{Num: uint32(n), SZX: q.szx}.Value()
			if _, err := q.sendVals([]uint32{one}); err != nil {
				return err
			}
		}
	}
	return nil
}

// sendVals builds and sends a request with these Q-Block2 option values;
// it returns the token's slot.
func (q *qTransfer) sendVals(vals []uint32) (int, error) {
	c := q.c
	m := c.buildGet(q.path, coap.QBlock2, coap.Block{Num: q.order.next, SZX: q.szx}, false)
	m.Options = m.Options[:len(m.Options)-1] // the options but Q-Block2, which follow
	buf := c.optBuf
	for _, v := range vals {
		m.Options, buf = coap.AppendUint(m.Options, buf, coap.QBlock2, v)
	}
	c.optBuf = buf
	return q.send(m)
}

// send sends a request that request or reask built (its Q-Block2 options
// in m), with the server's Echo value if it gave one, a new token and
// message ID; it returns the token's slot.
func (q *qTransfer) send(m *coap.Message) (int, error) {
	c := q.c
	now := time.Now()
	if q.echo != nil {
		m.Options = m.Options.Add(coap.Option{ID: coap.Echo, Value: q.echo})
	}
	i := q.ntok % qTokens
	q.ntok++
	v := c.rng.Uint64()
	for k := range q.tokens[i] {
		q.tokens[i][k] = byte(v >> (8 * k))
	}
	q.sentAt[i], q.echoed[i] = now, false
	q.vals[i] = q.vals[i][:0]
	q.drew[i] = drew{at: now}
	for _, o := range m.Options {
		if o.ID == coap.QBlock2 {
			v := optUint(o.Value)
			q.vals[i] = append(q.vals[i], v)
			b, _ := coap.ParseBlock(v, false)
			if q.drew[i].want == 0 {
				q.drew[i].first = b.Num
			}
			q.drew[i].want++
			if b.More {
				q.drew[i].want += int(q.setEnd(b.Num) - int64(b.Num))
			}
		}
	}
	if q.ntok == 1 {
		q.tokens[pinned], q.drew[pinned] = q.tokens[i], q.drew[i]
		q.vals[pinned] = append(q.vals[pinned][:0], q.vals[i]...)
	}
	c.mid++
	m.Type, m.MessageID, m.Token = coap.NonConfirmable, int32(c.mid), q.tokens[i][:]
	tx, err := coap.AppendUDP(c.tx[:0], m)
	if err != nil {
		return i, err
	}
	c.tx = tx
	c.stats.Requests++
	c.traceMsg(true, m)
	q.waitAt = now
	return i, c.s.Send(tx)
}

// reask sends again, once, the request of token slot i, which the server
// answered 4.01 Unauthorized with an Echo value: it serves bursts only to
// an address that shows it receives (RFC 9175; the file server's echo.go).
func (q *qTransfer) reask(i int) error {
	j, err := q.sendVals(append([]uint32(nil), q.vals[i]...))
	q.echoed[j] = true // a server that keeps saying 4.01 is not asked a third time
	return err
}

// optUint decodes an option's unsigned value.
func optUint(b []byte) uint32 {
	var v uint32
	for _, c := range b {
		v = v<<8 | uint32(c)
	}
	return v
}

// continued is the latest Continue (or rest-of-set request): its first
// block, when it was sent, and how often it was sent again.
type continued struct {
	next   int64
	at     time.Time
	resent int
}

// contLost reports whether the latest Continue looks lost: none of its set
// has come a round trip and a quarter after it was sent. It is sent again
// twice at most; then the server's pacing and NON_RECEIVE_TIMEOUT see to
// it.
func (q *qTransfer) contLost() bool {
	c := q.cont
	if c.at.IsZero() || c.resent >= 2 || time.Since(c.at) < q.guard() || q.learn {
		// A request for the whole body that learns the ETag waits for
		// NON_RECEIVE_TIMEOUT: a server that keeps no state between
		// requests (libcoap) starts a new transfer, under a new ETag,
		// for each.
		return false
	}
	_, seen := q.setSeen[uint32(c.next)/q.mp]
	return !seen && !q.has(uint32(c.next))
}

// burst is how the latest set is arriving: when its first and its last
// block so far came, how many, the highest.
type burst struct {
	set         uint32
	first, last time.Time
	count       int
	hi          uint32
	asked       bool // its tail was asked for already
}

func (b *burst) add(n, mp uint32, now time.Time) {
	if b.count == 0 || n/mp > b.set {
		*b = burst{set: n / mp, first: now, last: now, count: 1, hi: n}
		return
	}
	if n/mp == b.set {
		b.count++
		b.last = now
		b.hi = max(b.hi, n)
	}
}

// tailDue returns when the blocks after the highest of the latest set are
// overdue, and that set's last block; zero when none is awaited. A
// burst's blocks come one after the other; the time between them so far
// tells when the rest should have come, and four such gaps (or a quarter
// round trip, if longer) more mean they are lost: the last block of a set,
// which no later block shows missing, is asked for without waiting for
// the server's next burst.
func (q *qTransfer) tailDue() (time.Time, int64) {
	b := &q.burst
	if b.count == 0 || b.asked || q.windowed() {
		return time.Time{}, 0
	}
	end := q.setEnd(b.hi)
	if int64(b.hi) >= end || end <= q.followed || q.hasFrom(b.hi+1, end) {
		return time.Time{}, 0
	}
	var gap time.Duration
	if b.count > 1 {
		gap = b.last.Sub(b.first) / time.Duration(b.count-1)
	}
	return b.last.Add(time.Duration(end-int64(b.hi))*gap + max(4*gap, q.rtt.srtt/4, time.Millisecond)), end
}

// guard is how long after it was asked for a block counts as lost when
// a later one has arrived: a round trip and a quarter, or its variation's
// bound (RFC 6298), since blocks of one burst may arrive out of order.
func (q *qTransfer) guard() time.Duration {
	return max(q.rtt.srtt*5/4, q.rtt.srtt+4*q.rtt.rttvar, time.Millisecond)
}

// recheckAt arms the timer that asks again for a block asked for as a
// (when it is due and still missing): always once after the block was
// asked for on its own, and again only while blocks keep arriving, so a
// silent server is left to NON_RECEIVE_TIMEOUT.
func (q *qTransfer) recheckAt(a ask, due time.Time) {
	if a.n >= 2 && !q.heardAt.After(a.at) {
		return
	}
	if q.recheck.IsZero() || due.Before(q.recheck) {
		q.recheck = due
	}
}

// ask is when a block was last asked for, and how often it was asked for
// on its own (a request that named its set with M set counts none).
type ask struct {
	at  time.Time
	n   int
	seq uint64 // the order it was asked in, among all blocks asked (qpipe.go)
}

// askedAt returns when block n was asked for: by a request that named it
// or its set, or, when its set began to arrive later than that, a round
// trip before its first block did.
func (q *qTransfer) askedAt(n uint32) (ask, bool) {
	a, asked := q.asked[n]
	if seen, ok := q.setSeen[n/q.mp]; ok && seen.Add(-q.rtt.srtt).After(a.at) {
		// Its set started to arrive later than it was asked for (the
		// request was lost, and the server sent the set unasked): it is
		// on its way with the set.
		a.at, asked = seen.Add(-q.rtt.srtt), true
	}
	return a, asked
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
	if q.ntok > 0 && bytes.Equal(q.tokens[pinned][:], tok) {
		return pinned
	}
	return -1
}

// drew is what one request asked for and drew: how many blocks (a
// Q-Block2 option with M set asks for the rest of its set), the first
// it named, how many responses came and whether that first block did.
type drew struct {
	at        time.Time
	want, got int
	first     uint32
	gotFirst  bool
}

// judge looks at the requests sent a round trip and a quarter ago or more
// and not judged yet. A server that answered two requests for several
// blocks in a row with the first block each named, and nothing more,
// answers one block per request (libcoap does so outside the transfer
// it keeps state for): it is asked one block per request from then on,
// a set's worth at a time, so the transfer goes at a set per round trip
// instead of a block per NON_RECEIVE_TIMEOUT.
func (q *qTransfer) judge(now time.Time) {
	if q.pipe.on {
		// Asking for blocks as blocks come (qpipe.go), a request for two
		// whose second a queue dropped looks the same; the second is
		// asked for again when three later blocks have come, which works
		// with either server.
		q.judged = q.ntok
		return
	}
	if q.ntok-q.judged > qTokens {
		q.judged = q.ntok - qTokens
	}
	for ; q.judged < q.ntok; q.judged++ {
		d := q.drew[q.judged%qTokens]
		if now.Sub(d.at) < q.guard() {
			break
		}
		switch {
		case d.want < 2 || d.got == 0:
		case d.got == 1 && d.gotFirst:
			q.lone++
		default:
			q.lone = 0
		}
	}
	if q.lone >= 2 && !q.single {
		q.single = true
		q.c.log.Debug("coap: the Q-Block2 server answers one block per request; asking so")
	}
}

package client

import (
	"time"

	"github.com/tether-iot/tether/coap"
)

// Keeping a narrow link full (issue 23, point 4). Where the link, not the
// round trip, sets the pace, the blocks of one burst arrive spread out, a
// block's airtime apart; with one burst in flight at a time the link then
// stands idle for a round trip after every burst. So, once a burst's
// blocks arrive spread out (a gap of a millisecond or more between them),
// the next burst is asked for before the current one has drained: when
// what is still to come of it, at the pace it arrives, would take no
// longer than the shortest round trip seen. The next burst's first block
// then reaches the client as the current burst's last does.
//
// Within RFC 9177's congestion rules (7.2), this way:
//
//   - The server sends a burst only when a request asks for it (a
//     Continue, a block with M set for the rest of its set, or blocks by
//     name), never more than MAX_PAYLOADS new blocks per request, and its
//     own pacing (NON_TIMEOUT_RANDOM between sets nobody asked for) is
//     unchanged. The client asks for a burst once per burst and only while
//     the previous one is arriving: the link's delivery rate clocks the
//     server's sending, as acknowledgements clock TCP's.
//   - A Continue still means that the set before it has come, as 4.4 says:
//     it goes out when that set's last blocks are less than a round trip
//     away, so the next set's first block arrives after them. 7.2 expects
//     sets to overlap ("It is likely that the server will start
//     transmitting the next MAX_PAYLOADS_SET before the client times out on
//     waiting for the last of the previous MAX_PAYLOADS_SET. Upon receipt
//     of a payload from the new MAX_PAYLOADS_SET, the client SHOULD send a
//     request indicating any missing payloads from any previous
//     MAX_PAYLOADS_SET."): blocks that are missing are asked for by name,
//     as before, once overdue.
//   - What is in flight is bounded by what is left of one burst (less than
//     a round trip's worth at the link's pace) and the next burst
//     (MAX_PAYLOADS at most): the queue at the narrow link holds about
//     one burst, never a growing backlog.
//   - A burst whose last blocks are missing while its first came (seen when
//     the next burst's first block arrives, since a link delivers in order)
//     is how a queue that drops the tail of bursts shows: the next bursts
//     are that many blocks smaller (asked by name, down to one block), and
//     one block larger after each burst that came whole, up to
//     MAX_PAYLOADS (additive increase). Loss elsewhere in a burst is
//     chance, not the queue, and changes nothing.
//
// On a link whose bursts arrive at one instant (a round trip, not a rate,
// sets the pace) none of this engages, and the transfer asks exactly as
// qTransfer's doc says. A server that answers one block per request
// (single) or whose first block lacked ETag and Size2 (learn) is not
// pipelined either.

// pipe is the pipelining state of one Q-Block2 transfer.
type pipe struct {
	cur, prev fwd           // the latest burst asked for and the one before
	size      int           // blocks per burst asked for while pipelining (MAX_PAYLOADS at most)
	gap       time.Duration // the time between a burst's blocks as they arrive; 0 until seen
	minRTT    time.Duration // the shortest round trip measured
	cuts      int           // bursts made smaller, for tests and the log
}

// fwd is a burst the client asked for: blocks start..end, and how they
// arrive.
type fwd struct {
	start, end  int64
	count       int
	hi          int64
	first, last time.Time
	judged      bool
}

func (f *fwd) holds(n int64) bool { return f.end >= f.start && n >= f.start && n <= f.end }

// pipeGap is the least gap between a burst's blocks that shows a rate at
// work rather than a round trip.
const pipeGap = time.Millisecond

// asked notes a burst asked for: blocks from..to.
func (p *pipe) asked(from, to int64) {
	if to < from {
		return
	}
	p.prev, p.cur = p.cur, fwd{start: from, end: to, hi: from - 1}
}

// sampled takes a measured round trip.
func (p *pipe) sampled(rtt time.Duration) {
	if p.minRTT == 0 || rtt < p.minRTT {
		p.minRTT = rtt
	}
}

// pipeArrived notes block n, which the transfer lacked: the pace of its
// burst, and, at the first block of the latest burst, whether the one
// before lost its tail.
func (q *qTransfer) pipeArrived(n uint32, now time.Time) {
	p := &q.pipe
	f := &p.cur
	if !f.holds(int64(n)) {
		f = &p.prev
		if !f.holds(int64(n)) {
			return
		}
	}
	if f.count == 0 {
		f.first = now
	}
	f.count++
	f.last = now
	f.hi = max(f.hi, int64(n))
	if f.count >= 3 {
		p.gap = f.last.Sub(f.first) / time.Duration(f.count-1)
	}
	if f == &p.cur && f.count == 1 {
		q.judgeTail()
	}
}

// judgeTail looks at the burst before the latest, whose blocks have all
// had their turn on the link once the latest burst's first block is here:
// its missing last blocks make the next bursts that much smaller; a burst
// that came whole makes them one block larger.
func (q *qTransfer) judgeTail() { q.judgeBurst(&q.pipe.prev) }

// judgeBurst looks at burst f once its blocks have had their turn.
func (q *qTransfer) judgeBurst(f *fwd) {
	p := &q.pipe
	if f.judged || f.end < f.start || f.count == 0 || p.gap < pipeGap {
		return // nothing of it came: a lost request, not a full queue
	}
	f.judged = true
	tail, whole := 0, true
	for n := f.start; n <= f.end; n++ {
		if q.has(uint32(n)) {
			continue
		}
		whole = false
		if n > f.hi {
			tail++
		}
	}
	switch {
	case tail > 0:
		p.size = max(1, p.size-tail)
		p.cuts++
		q.c.log.Debug("coap: Q-Block2 bursts lose their tail; asking for smaller ones", "blocks", p.size)
	case whole:
		p.size = min(int(q.mp), p.size+1)
	}
}

// paced reports whether bursts are shaped to the link: its rate sets the
// pace, and the server answers requests for several blocks.
func (q *qTransfer) paced() bool { return q.pipe.gap >= pipeGap && !q.single && !q.learn }

// pipelining reports whether the next burst may be asked for before the
// current one has drained.
func (q *qTransfer) pipelining() bool {
	p := &q.pipe
	return q.paced() && p.minRTT > 0 && p.cur.end >= p.cur.start && p.cur.count > 0
}

// pipeAfter asks for the next burst, with what is missing and overdue,
// once what is left of the current burst is less than a round trip away
// at the pace its blocks arrive. It reports whether it asked.
func (q *qTransfer) pipeAfter() (bool, error) {
	if !q.pipelining() {
		return false, nil
	}
	p := &q.pipe
	left := 0
	for n := p.cur.start; n <= p.cur.end; n++ {
		if !q.has(uint32(n)) {
			left++
		}
	}
	if time.Duration(left)*p.gap > p.minRTT {
		return false, nil
	}
	next := p.cur.end + 1
	if (q.last >= 0 && next > q.last) || next >= int64(q.order.next)+int64(q.ahead) || next > coap.MaxBlockNum {
		return false, nil
	}
	now := time.Now()
	guard := q.guard()
	q.recheck = time.Time{}
	vals, _ := q.askMissing(q.valBuf[:0], p.cur.hi, p.cur.end-p.cur.end%int64(q.mp), now, guard)
	vals = q.askRun(vals, next, now, guard)
	q.valBuf = vals
	if len(vals) == 0 {
		return false, nil
	}
	return true, q.sendAll(vals)
}

// askRun appends the request for the next burst from block next on: the
// rest of its set (a Continue when next starts one) when the burst size
// reaches the set's end, else the burst's blocks by name.
func (q *qTransfer) askRun(vals []uint32, next int64, now time.Time, guard time.Duration) []uint32 {
	end := min(next+int64(q.pipe.size)-1, int64(q.order.next)+int64(q.ahead)-1, coap.MaxBlockNum)
	if q.last >= 0 {
		end = min(end, q.last)
	}
	q.deferred = -1
	q.followed = max(q.followed, next-1) // every set before next is followed up
	if end >= q.setEnd(uint32(next)) {
		return q.askSet(vals, next, now, guard)
	}
	for n := next; n <= end; n++ {
		if !q.has(uint32(n)) {
			q.asked[uint32(n)] = ask{at: now}
			vals = append(vals, coap.Block{Num: uint32(n), SZX: q.szx}.Value())
		}
	}
	q.pipe.asked(next, end)
	return vals
}

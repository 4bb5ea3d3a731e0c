package client

import (
	"time"

	"github.com/tether-iot/tether/coap"
)

// Keeping a narrow link full (issue 23, point 4). Where the link, not the
// round trip, sets the pace, the blocks of one burst arrive spread out, a
// block's airtime apart. Asking for a set at a time then leaves the link
// idle a round trip after every set, and behind a small drop-tail queue a
// set of MAX_PAYLOADS loses its tail every time. So, once the link's pace
// shows, the transfer asks for blocks by name as blocks come, as TCP
// sends as acknowledgements come: it keeps a window of blocks in flight
// (asked for, neither come nor taken for lost) and, each time a block
// comes, asks for as many as the window has room for, usually one.
//
// The pace: the time between two blocks asked one right after the other,
// which a link that is busy delivers a block's airtime apart (blocks
// asked together in one request, or asked apart but arriving less than
// one and a half times the estimate apart: spacing from an idle link is
// left out). It is measured, so it holds whatever each datagram carries
// (over coaps a DTLS record's header and tag). The link is taken to set
// the pace when two such gaps show one of a millisecond or more.
//
// The window: the shortest round trip over the pace, rounded up (the
// link's bandwidth-delay product, in blocks), plus two, so the link stays
// busy while the drop-tail queue holds about two blocks; never more than
// 2·MAX_PAYLOADS. A block is taken for lost when three blocks asked after
// it have come (a link reorders little), or when it is overdue as every
// block asked by name is (qblock.go's guard); it is then asked for again
// by name. A loss of a block asked after the last cut makes the window one
// block smaller (down to two); each window's worth of blocks that come
// after it makes it one larger again, up to its bound: a queue that drops
// the tail of bursts shrinks them, random loss costs little.
//
// Within RFC 9177's congestion rules (7.2), this way:
//
//   - The server sends only what a request asks for, at most
//     MAX_PAYLOADS blocks per request (its own pacing, NON_TIMEOUT_RANDOM
//     between sets nobody asked for, is unchanged); the client asks for
//     blocks only as blocks come, so the link's delivery rate clocks the
//     server's sending, as acknowledgements clock TCP's.
//   - What is in flight is bounded by the window, at most 2·MAX_PAYLOADS
//     (what the previous way of asking kept in flight: the rest of one set
//     and the next), and shrinks when blocks are lost.
//   - Missing blocks are asked for by name as 7.2 says, and when nothing
//     comes for NON_RECEIVE_TIMEOUT the transfer asks for what is missing,
//     NON_MAX_RETRANSMIT times at most, as before.
//
// On a link whose bursts arrive at one instant (a round trip, not a rate,
// sets the pace) none of this engages, and the transfer asks exactly as
// qTransfer's doc says. A server that answers one block per request
// (single), whose first block lacked ETag and Size2 (learn), or that does
// not say how large the body is (no Size2) is not asked so either.

// pipe is the pacing state of one Q-Block2 transfer.
type pipe struct {
	seq     uint64        // blocks asked for, numbered in order (ask.seq)
	gap     time.Duration // a block's airtime on the link; 0 until seen
	samples int           // gaps measured
	minRTT  time.Duration // the shortest round trip measured
	on      bool          // blocks are asked for as blocks come
	win     int           // blocks that may be in flight
	hiAsked int64         // the highest block asked for
	got     uint64        // the highest ask number of a block that came
	cutAt   uint64        // no cut for the loss of a block asked up to this number
	clean   int           // blocks come since the window last changed
	cuts    int           // windows made smaller, for tests and the log

	prevSeq uint64    // the block that came last: its ask number,
	prevAt  time.Time // when it came,
	prevAsk time.Time // and when it was asked for
}

// pipeGap is the least gap between blocks that shows a rate at work
// rather than a round trip.
const pipeGap = time.Millisecond

// dupThresh is how many blocks asked after a missing one must come before
// it is taken for lost (TCP's and QUIC's packet threshold).
const dupThresh = 3

// maxAsk is how many blocks one request asks for at most while blocks are
// asked for as blocks come (unless the server has been silent): a block
// that came makes room for one, so two let the window grow while what a
// request draws reaches the queue at the link two blocks at most at once.
const maxAsk = 2

// number numbers a block asked for.
func (p *pipe) number() uint64 {
	p.seq++
	return p.seq
}

// sampled takes a measured round trip.
func (p *pipe) sampled(rtt time.Duration) {
	if p.minRTT == 0 || rtt < p.minRTT {
		p.minRTT = rtt
	}
}

// spacing takes the time d between two blocks asked one after the other.
func (p *pipe) spacing(d time.Duration) {
	if p.samples == 0 {
		p.gap = d
	} else {
		p.gap += (max(d, p.gap/2) - p.gap) / 8
	}
	p.samples++
}

// bound is the window's bound: the bandwidth-delay product in blocks,
// plus two, at most 2·MAX_PAYLOADS.
func (p *pipe) bound(mp uint32) int {
	bdp := int((p.minRTT + p.gap - 1) / p.gap)
	return max(2, min(bdp+2, 2*int(mp)))
}

// pipeArrived notes block n, which the transfer lacked, come at now: the
// link's pace, and which asks have come.
func (q *qTransfer) pipeArrived(n uint32, now time.Time) {
	p := &q.pipe
	a, ok := q.asked[n]
	if !ok || a.seq == 0 {
		p.prevSeq = 0
		return
	}
	p.got = max(p.got, a.seq)
	if p.prevSeq != 0 && a.seq == p.prevSeq+1 {
		d := now.Sub(p.prevAt)
		if a.at.Equal(p.prevAsk) || (p.samples >= 2 && d < p.gap*3/2) {
			p.spacing(d)
		}
	}
	p.prevSeq, p.prevAt, p.prevAsk = a.seq, now, a.at
	if p.on {
		p.clean++
		if p.clean >= p.win {
			p.win, p.clean = min(p.win+1, p.bound(q.mp)), 0
		}
	}
}

// paced reports whether the link's rate sets the pace, the server
// answers requests for several blocks, and the body's end is known
// (Size2): blocks asked for by name ahead of those come would otherwise
// go past a body without Size2, which a server answers 4.02 (RFC 7959
// 2.2), an error that ends the transfer.
func (q *qTransfer) paced() bool {
	return q.pipe.samples >= 2 && q.pipe.gap >= pipeGap && !q.single && !q.learn && q.last >= 0
}

// windowed reports whether blocks are asked for as blocks come.
func (q *qTransfer) windowed() bool { return q.pipe.on && !q.single && !q.learn }

// pipeAfter asks, once the link's pace shows, for what the window has
// room for after a block came. It reports whether the transfer asks so.
// A block that was not fresh (had already, or too far ahead to keep)
// makes no room and asks for nothing: a peer that replays blocks would
// otherwise draw a request for each, one for every missing block while
// the server has been silent.
func (q *qTransfer) pipeAfter(fresh bool) (bool, error) {
	if !fresh {
		return q.windowed(), nil
	}
	p := &q.pipe
	if !p.on {
		if !q.paced() || p.minRTT == 0 {
			return false, nil
		}
		p.on, p.win = true, p.bound(q.mp)
		q.cont, q.deferred = continued{}, -1 // no Continue from now on
		p.hiAsked = q.highest()
		for n := range q.asked {
			p.hiAsked = max(p.hiAsked, int64(n))
		}
		q.c.log.Debug("coap: Q-Block2 on a link whose rate sets the pace; asking for blocks as blocks come",
			"gap", p.gap, "rtt", p.minRTT, "window", p.win)
	}
	if !q.windowed() {
		return false, nil
	}
	return true, q.fill(q.retries > 0)
}

// fill sends one request: the blocks taken for lost, by name, and new
// ones, as many as the window has room for (every block missing, when
// all is set: the server has been silent). Nothing is sent when nothing
// is asked for.
func (q *qTransfer) fill(all bool) error {
	p := &q.pipe
	now := time.Now()
	guard := q.guard()
	q.recheck = time.Time{}
	lost := q.lostBuf[:0]
	flying := 0
	for n := int64(q.order.next); n <= p.hiAsked; n++ {
		if q.has(uint32(n)) {
			continue
		}
		a, ok := q.asked[uint32(n)]
		due := a.at.Add(guard << min(a.n, 1))
		if ok && !all && now.Before(due) && a.seq+dupThresh > p.got {
			flying++
			q.recheckAt(a, due)
			continue
		}
		if ok && a.seq > p.cutAt && !all {
			p.win, p.clean, p.cutAt = max(2, p.win-1), 0, p.seq
			p.cuts++
			q.c.log.Debug("coap: Q-Block2 block lost; a smaller window", "block", n, "window", p.win)
		}
		lost = append(lost, uint32(n))
	}
	q.lostBuf = lost
	vals := q.valBuf[:0]
	for _, n := range lost {
		if len(vals) >= int(q.mp) || (!all && (flying >= p.win || len(vals) >= maxAsk)) {
			break // asked for as room frees up
		}
		a := q.asked[n]
		vals = append(vals, q.askByName(n, a, now, guard))
		flying++
	}
	limit := min(int64(q.order.next)+int64(q.ahead)-1, coap.MaxBlockNum)
	if q.last >= 0 {
		limit = min(limit, q.last)
	}
	for n := p.hiAsked + 1; n <= limit && flying < p.win && len(vals) < min(int(q.mp), maxAsk); n++ {
		p.hiAsked = n
		if q.has(uint32(n)) {
			continue
		}
		a := ask{at: now, seq: p.number()}
		q.asked[uint32(n)] = a
		q.recheckAt(a, now.Add(guard))
		vals = append(vals, coap.Block{Num: uint32(n), SZX: q.szx}.Value())
		flying++
	}
	q.valBuf = vals
	if len(vals) == 0 {
		return nil
	}
	return q.sendAll(vals)
}

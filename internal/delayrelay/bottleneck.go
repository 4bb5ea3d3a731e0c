package delayrelay

import "time"

// bottleneck is one direction's link when it has a rate: it serialises one
// datagram at a time, in arrival order, at rate bits per second, and the
// datagrams that arrive while it is busy wait in a drop-tail queue of
// limit bytes. It keeps no goroutine and reads no clock: the time of each
// arrival is given, so its arithmetic is the same on any machine.
type bottleneck struct {
	rate     int64 // bits per second, > 0
	limit    int   // bytes the queue holds, not counting the datagram being serialised; 0: unbounded
	overhead int   // bytes added to each datagram's length

	free    time.Time     // when the last datagram taken is fully serialised
	waiting []serial      // datagrams taken whose serialisation had not begun at the last arrival
	head    int           // waiting[:head] have begun
	backlog int           // bytes of waiting[head:]
	busy    time.Duration // the airtime of every datagram taken
}

// serial is a datagram taken by the bottleneck: when its serialisation
// begins, and its size as the link counts it.
type serial struct {
	start time.Time
	size  int
}

func newBottleneck(l Link) *bottleneck {
	if l.Rate <= 0 {
		return nil
	}
	return &bottleneck{rate: l.Rate, limit: l.Queue, overhead: l.Overhead}
}

// airtime is how long n bytes take at the link's rate (rounded down to
// the nanosecond).
func (b *bottleneck) airtime(n int) time.Duration {
	return time.Duration(int64(n) * 8 * int64(time.Second) / b.rate)
}

// take offers a datagram of n bytes (its UDP payload) that arrived at now.
// It returns when the datagram's last bit is on the wire, and true; or
// false when the datagram would have to wait and the queue has no room
// for it, which leaves the link as it was. Arrivals must come in
// non-decreasing time.
func (b *bottleneck) take(now time.Time, n int) (sent time.Time, ok bool) {
	// Datagrams whose serialisation has begun by now have left the queue.
	for b.head < len(b.waiting) && !b.waiting[b.head].start.After(now) {
		b.backlog -= b.waiting[b.head].size
		b.head++
	}
	if b.head == len(b.waiting) {
		b.waiting, b.head = b.waiting[:0], 0
	} else if b.head >= 64 && 2*b.head >= len(b.waiting) {
		b.waiting = b.waiting[:copy(b.waiting, b.waiting[b.head:])]
		b.head = 0
	}
	size := n + b.overhead
	start := b.free
	if start.Before(now) {
		start = now // the link is idle: no wait, no queue
	}
	if start.After(now) {
		if b.limit > 0 && b.backlog+size > b.limit {
			return time.Time{}, false
		}
		b.waiting = append(b.waiting, serial{start: start, size: size})
		b.backlog += size
	}
	a := b.airtime(size)
	b.free = start.Add(a)
	b.busy += a
	return b.free, true
}

// queued tells the bytes waiting for the link at the last arrival.
func (b *bottleneck) queued() int { return b.backlog }

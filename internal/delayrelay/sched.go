package delayrelay

import (
	"bytes"
	"container/heap"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// packet is a datagram waiting in a scheduler.
type packet struct {
	due  time.Time
	seq  uint64 // arrival order in its scheduler: breaks ties of due
	data []byte
	m    *mapping       // up: whose socket sends it to the server
	to   netip.AddrPort // down: the client it goes to
}

// counters are one direction's statistics.
type counters struct {
	received, forwarded, lost, dropped, overflow, failed atomic.Uint64
	forwardedBytes                                       atomic.Uint64
}

// scheduler holds one direction's datagrams until they are due and sends
// them, earliest first, from one goroutine.
type scheduler struct {
	stats    *counters
	send     func(*packet) error
	maxN     int
	maxBytes int
	wake     chan struct{} // a datagram became the earliest

	mu    sync.Mutex
	link  *bottleneck // nil: no rate
	q     queue
	bytes int
	seq   uint64
}

func newScheduler(stats *counters, l Link, maxN, maxBytes int, send func(*packet) error) *scheduler {
	return &scheduler{stats: stats, send: send, maxN: maxN, maxBytes: maxBytes, link: newBottleneck(l),
		wake: make(chan struct{}, 1)}
}

// fate is what a flow's generator drew for a datagram.
type fate struct {
	lost   bool
	jitter time.Duration
}

// offer passes a datagram that arrived at now through the direction: the
// relay's own bounds, then the link's rate and queue (a datagram lost on
// the way has taken its turn on the link), then its delay and jitter,
// never before the flow's previous one unless reorder. It returns when the
// datagram is due, and false when it was dropped (and counted).
func (s *scheduler) offer(now time.Time, data []byte, fd fate, delay time.Duration, f *flow, reorder bool, m *mapping) (time.Time, bool) {
	s.mu.Lock()
	if !fd.lost && (len(s.q) >= s.maxN || s.bytes+len(data) > s.maxBytes) {
		s.mu.Unlock()
		s.stats.overflow.Add(1)
		return time.Time{}, false
	}
	sent := now
	if s.link != nil {
		var ok bool
		if sent, ok = s.link.take(now, len(data)); !ok {
			s.mu.Unlock()
			s.stats.dropped.Add(1)
			return time.Time{}, false
		}
	}
	if fd.lost {
		s.mu.Unlock()
		s.stats.lost.Add(1)
		return time.Time{}, false
	}
	p := &packet{due: sent.Add(delay + fd.jitter), data: bytes.Clone(data), m: m, to: m.client}
	if !reorder && p.due.Before(f.last) {
		p.due = f.last
	}
	f.last = p.due
	p.seq = s.seq
	s.seq++
	heap.Push(&s.q, p)
	s.bytes += len(p.data)
	first := s.q[0] == p
	s.mu.Unlock()
	if first {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	return p.due, true
}

// queued tells what waits now, what waited for the link at its last
// arrival, and the link's airtime so far.
func (s *scheduler) queued() (n, bytes, link int, busy time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.link != nil {
		link, busy = s.link.queued(), s.link.busy
	}
	return len(s.q), s.bytes, link, busy
}

// run sends every datagram once it is due, until done is closed; what is
// still waiting then is dropped.
func (s *scheduler) run(done <-chan struct{}) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var batch []*packet
	for {
		s.mu.Lock()
		now := time.Now()
		for len(s.q) > 0 && !s.q[0].due.After(now) {
			p := heap.Pop(&s.q).(*packet)
			s.bytes -= len(p.data)
			batch = append(batch, p)
		}
		wait := time.Duration(-1)
		if len(s.q) > 0 {
			wait = s.q[0].due.Sub(now)
		}
		s.mu.Unlock()

		if len(batch) > 0 {
			for i, p := range batch {
				if s.send(p) != nil {
					s.stats.failed.Add(1)
				} else {
					s.stats.forwardedBytes.Add(uint64(len(p.data)))
					s.stats.forwarded.Add(1)
				}
				batch[i] = nil
			}
			batch = batch[:0]
			continue // sending took time: look again before sleeping
		}
		if wait >= 0 {
			timer.Reset(wait)
		}
		select {
		case <-done:
			timer.Stop()
			return
		case <-s.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// queue is a min-heap of packets by due time, then arrival.
type queue []*packet

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if !q[i].due.Equal(q[j].due) {
		return q[i].due.Before(q[j].due)
	}
	return q[i].seq < q[j].seq
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)   { *q = append(*q, x.(*packet)) }
func (q *queue) Pop() any {
	old := *q
	p := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return p
}

package delayrelay

import (
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
	received, forwarded, lost, overflow, failed atomic.Uint64
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
	q     queue
	bytes int
	seq   uint64
}

func newScheduler(stats *counters, maxN, maxBytes int, send func(*packet) error) *scheduler {
	return &scheduler{stats: stats, send: send, maxN: maxN, maxBytes: maxBytes, wake: make(chan struct{}, 1)}
}

// enqueue takes p unless a bound is reached; it reports whether it did.
func (s *scheduler) enqueue(p *packet) bool {
	s.mu.Lock()
	if len(s.q) >= s.maxN || s.bytes+len(p.data) > s.maxBytes {
		s.mu.Unlock()
		s.stats.overflow.Add(1)
		return false
	}
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
	return true
}

// queued tells what waits now.
func (s *scheduler) queued() (n, bytes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.q), s.bytes
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

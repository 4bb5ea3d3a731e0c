package lwm2m

import (
	"fmt"
	"sync"
)

// events hands the client's events to Config.OnEvent in the order they
// were emitted, from a goroutine of its own that runs only while there is
// something to hand over. OnEvent so never runs under a lock of the
// client, on its loop or on its socket's reader, and may call any of the
// Client's methods, EnterOffline and Stop included. An idle client has no
// such goroutine. While OnEvent is slower than the events come (stuck
// writing to a pipe nobody reads), at most maxQueued wait; the rest are
// counted and said in one event once there is room again.
type events struct {
	fn func(Event)

	mu      sync.Mutex
	queue   []Event
	dropped int
	running bool
	idle    chan struct{} // closed when the queue empties and no call is in progress
}

// maxQueued bounds the events waiting for OnEvent.
const maxQueued = 4096

// push queues ev and starts the deliverer if it is not running.
func (q *events) push(ev Event) {
	if q == nil || q.fn == nil { // no OnEvent: no queue
		return
	}
	q.mu.Lock()
	switch {
	case len(q.queue) >= maxQueued:
		q.dropped++
	case q.dropped > 0 && len(q.queue) < maxQueued-1:
		q.queue = append(q.queue, Event{Time: ev.Time, Kind: "error", Op: "events",
			Detail: fmt.Sprintf("%d events dropped: OnEvent did not keep up", q.dropped)}, ev)
		q.dropped = 0
	default:
		q.queue = append(q.queue, ev)
	}
	start := !q.running
	if start {
		q.running = true
		q.idle = make(chan struct{})
	}
	q.mu.Unlock()
	if start {
		go q.deliver()
	}
}

// deliver calls fn with each queued event, and ends when none is left.
func (q *events) deliver() {
	for {
		q.mu.Lock()
		if len(q.queue) == 0 {
			q.running = false
			close(q.idle)
			q.mu.Unlock()
			return
		}
		ev := q.queue[0]
		q.queue[0] = Event{}
		q.queue = q.queue[1:]
		if len(q.queue) == 0 {
			q.queue = nil // let the backing array go
		}
		q.mu.Unlock()
		q.fn(ev)
	}
}

// flush waits until every event pushed so far has been handed over.
func (q *events) flush() {
	if q == nil {
		return
	}
	q.mu.Lock()
	idle := q.idle
	running := q.running
	q.mu.Unlock()
	if running {
		<-idle
	}
}

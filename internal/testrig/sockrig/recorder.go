package sockrig

import (
	"sync"

	"github.com/tether-iot/tether/sock"
)

// Recorder is a raw socket that records what it sends, for a test that
// watches what a layer over it puts on the wire. It shuts down as the
// socket it wraps does (sock.Shutdown).
type Recorder struct {
	sock.Socket
	mu   sync.Mutex
	sent [][]byte
}

// Send records b and sends it.
func (r *Recorder) Send(b []byte) error {
	r.mu.Lock()
	r.sent = append(r.sent, append([]byte(nil), b...))
	r.mu.Unlock()
	return r.Socket.Send(b)
}

// Shutdown shuts the socket beneath down.
func (r *Recorder) Shutdown() error { return sock.Shutdown(r.Socket) }

// Take returns what was sent since the last Take, one slice a Send.
func (r *Recorder) Take() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.sent
	r.sent = nil
	return b
}

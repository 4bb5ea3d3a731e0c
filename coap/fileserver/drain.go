package fileserver

import (
	"context"
	"time"

	"github.com/tether-iot/tether/coap"
)

// drainRetryAge is the Max-Age of the 5.03 that answers a new transfer
// while the server drains: about how long a restart takes.
const drainRetryAge = 5

// Drain is what Shutdown did.
type Drain struct {
	InFlight int           // transfers in flight when it began
	Left     int           // still in flight when it stopped waiting: cut off
	Took     time.Duration // from its start until it stopped waiting
}

// Shutdown drains the server, then closes it. It stops taking new work:
// a TCP or TLS connection or a DTLS session accepted from now on is
// closed at once, and a request that would start a transfer is answered
// 5.03 Service Unavailable with a Max-Age of 5 s (a client of the server
// that replaces this one comes back then). Requests of the transfers in
// flight are served on, over every transport, and Q-Block2 sets paced, until
// none is in flight or ctx ends; then Close. A transfer is in flight from
// its first block until its last is served, or until it is idle for a
// minute (package doc, Access log).
func (s *Server) Shutdown(ctx context.Context) (Drain, error) {
	start := time.Now()
	s.draining.Store(true)
	d := Drain{InFlight: int(s.inflight.Load())}
wait:
	for s.inflight.Load() > 0 {
		select {
		case <-s.drainWake:
		case <-ctx.Done():
			break wait
		}
	}
	d.Left, d.Took = int(max(0, s.inflight.Load())), time.Since(start)
	return d, s.Close()
}

// refuseNew answers a request that would start a transfer while the
// server drains.
func (s *Server) refuseNew(r *response) {
	m := &r.m
	m.Code, m.Payload = coap.ServiceUnavailable, nil
	m.Options, r.optBuf = coap.AppendUint(m.Options[:0], r.optBuf[:0], coap.MaxAge, drainRetryAge)
}

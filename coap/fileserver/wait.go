package fileserver

import (
	"bytes"
	"net"
	"sync"
	"time"

	"github.com/tether-iot/tether/coap"
)

// What a request for a file being prepared (files.go) gets. Requests for
// other files never wait for it. The request itself waits for its own
// file, up to prepareWait: over TCP and TLS in its connection's goroutine
// (which serves only that client); over UDP and DTLS, whose one loop
// serves every client of the socket, its datagram is set aside and read
// again once the file is ready, so the loop goes on meanwhile. A request
// still unanswered after prepareWait is answered 5.03 Service Unavailable
// with a Max-Age of the seconds the hash still needs, as estimated from
// its progress (1 to maxRetryAge), which tether's client waits out before
// it asks again (RFC 7252 5.9.3.4).

// prepareWait is how long a request waits for its file to be ready
// before it is answered 5.03: short enough that no CoAP client gives up
// meanwhile (a Confirmable request is sent again after 2 to 3 s), long
// enough for most files to be hashed (a few hundred MB at the speed of a
// small server's disk or CPU).
const prepareWait = time.Second

// maxRetryAge caps the Max-Age of a 5.03.
const maxRetryAge = 60

// maxAside bounds the datagrams one UDP socket sets aside; a request past
// it is answered 5.03 at once.
const maxAside = 64

// waitPolicy says what a request may do while its file is prepared.
type waitPolicy uint8

const (
	waitHere  waitPolicy = iota // wait in this goroutine, up to prepareWait
	waitAside                   // leave the request for the caller to set aside (response.aside)
	waitNot                     // answer 5.03 at once
)

// fileFor returns the file the request names (r.name), waiting for it as
// lim says: it returns the *prep of a file not ready, with r.aside set
// when the caller is to set the request aside.
func (s *Server) fileFor(r *response, lim limits) (*openFile, error) {
	if p := lim.prior; p != nil && isDone(p) && p.err != nil {
		return nil, p.err // what the set-aside request waited for: a 4.04, say
	}
	of, err := s.open(r.name)
	p, busy := err.(*prep)
	if !busy {
		return of, err
	}
	switch lim.wait {
	case waitHere:
		if s.await(p) {
			return p.of, p.err
		}
	case waitAside:
		r.aside = p
	}
	return nil, p
}

func isDone(p *prep) bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// await waits for p up to prepareWait, and reports whether it is done.
func (s *Server) await(p *prep) bool {
	if isDone(p) {
		return true
	}
	t := time.NewTimer(s.prepareWait)
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
	case <-s.done:
	}
	return false
}

// unavailable answers a request for a file still being prepared: 5.03
// Service Unavailable, with a Max-Age of the seconds its hash still needs.
func (s *Server) unavailable(r *response, p *prep) {
	secs := time.Duration(1)
	if j := p.job.Load(); j != nil {
		secs = max(1, (j.remaining(time.Now())+time.Second-1)/time.Second)
	}
	m := &r.m
	m.Code, m.Payload = coap.ServiceUnavailable, nil
	m.Options, r.optBuf = coap.AppendUint(m.Options[:0], r.optBuf[:0], coap.MaxAge, uint32(min(secs, maxRetryAge)))
}

// aside holds the datagrams one UDP loop set aside until their file is
// ready. A goroutine per datagram waits for the file, then hands the
// datagram back and wakes the loop from its read with a deadline in the
// past; the loop takes what is handed back before each read, after any
// deadline it sets itself, so no wake-up is lost.
type aside struct {
	mu    sync.Mutex
	ready []asideReq
	n     int           // set aside and not taken back
	stop  chan struct{} // closed when the loop returns
}

// asideReq is a datagram set aside, and the file it waits for.
type asideReq struct {
	data []byte
	to   client
	p    *prep
}

// add sets the datagram aside until p is done or prepareWait has passed;
// false when too many are set aside already, or the server is closing.
func (s *Server) setAside(a *aside, pc net.PacketConn, data []byte, to client, p *prep) bool {
	a.mu.Lock()
	full := a.n >= maxAside
	if !full {
		a.n++
	}
	a.mu.Unlock()
	if full {
		return false
	}
	d := asideReq{data: bytes.Clone(data), to: to, p: p}
	ok := s.spawn(func() {
		t := time.NewTimer(s.prepareWait)
		defer t.Stop()
		select {
		case <-p.done:
		case <-t.C:
		case <-s.done:
			return
		case <-a.stop:
			return
		}
		a.mu.Lock()
		a.ready = append(a.ready, d)
		a.mu.Unlock()
		pc.SetReadDeadline(time.Now()) // wake the loop
	})
	if !ok {
		a.mu.Lock()
		a.n--
		a.mu.Unlock()
	}
	return ok
}

// take returns a datagram handed back, if any.
func (a *aside) take() (asideReq, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.ready) == 0 {
		return asideReq{}, false
	}
	d := a.ready[0]
	a.ready[0] = asideReq{}
	a.ready = a.ready[1:]
	a.n--
	return d, true
}

package lwm2mtest

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tether-iot/tether/coap"
)

// DefaultMaxRecords is how many Records a Server keeps when
// Options.MaxRecords is zero.
const DefaultMaxRecords = 1024

// Op names the operation of a Record.
type Op string

// The operations a Server records. Register, Update, De-register and
// Request are the device's requests; Notify is a notification it sent;
// the others are the Server's requests, named after its methods.
const (
	OpRegister        Op = "register"
	OpUpdate          Op = "update"
	OpDeregister      Op = "deregister"
	OpRead            Op = "read"
	OpDiscover        Op = "discover"
	OpWrite           Op = "write"
	OpWritePartial    Op = "write-partial"
	OpWriteAttributes Op = "write-attributes"
	OpExecute         Op = "execute"
	OpCreate          Op = "create"
	OpDelete          Op = "delete"
	OpObserve         Op = "observe"
	OpCancel          Op = "cancel"
	OpNotify          Op = "notify"
	// OpSend is the device's Send (POST /dp, LwM2M 1.1 6.4.4): its
	// payload is the Record's.
	OpSend Op = "send"
	// OpRequest is a request sent with Do, or a device's request that is
	// not on /rd (answered 4.04) or not a method /rd takes (4.05).
	OpRequest Op = "request"
)

// Record is one exchange between the Server and a device, as the Server
// saw it: a request the device sent and the Server's answer, a request
// the Server sent and the device's answer (or the error that ended it),
// or a notification.
type Record struct {
	// Time is when the exchange ended: the answer sent or received, the
	// notification received, the error met.
	Time time.Time
	// Endpoint is the device's endpoint name; empty for a request of a
	// device that named none (a Register without ep=, an Update of a
	// location the Server does not know).
	Endpoint string
	Op       Op
	// Path and Query are the request's Uri-Path ("/rd", "/rd/0",
	// "/3/0/0") and Uri-Query options ("lt=300", "pmin=1"); a
	// notification's Path is its observation's.
	Path  string
	Query []string
	// Code is the answer's code (the Server's to a device's request, the
	// device's to the Server's), or the notification's; zero when Err
	// ended the exchange, and for Cancel, whose answer is not kept.
	Code coap.Code
	// Payload is what the device sent: a Register's or an Update's
	// links, the payload of its answer (a Read's value, an Observe's
	// first one) or of its notification. The Record owns it.
	Payload []byte
	// Err is what ended a request of the Server's without an answer:
	// the context's error, coap/peer's ErrTimeout, ErrReset, ErrClosed.
	Err error
}

// String formats the record on one line, "dev-1 read /3/0/0: 2.05
// Content", for logs and failure messages; the payload is left out.
func (r Record) String() string {
	var b strings.Builder
	if r.Endpoint != "" {
		b.WriteString(r.Endpoint)
		b.WriteByte(' ')
	}
	b.WriteString(string(r.Op))
	b.WriteByte(' ')
	b.WriteString(r.Path)
	if len(r.Query) > 0 {
		b.WriteByte('?')
		b.WriteString(strings.Join(r.Query, "&"))
	}
	switch {
	case r.Err != nil:
		fmt.Fprintf(&b, ": %v", r.Err)
	case r.Code != 0:
		b.WriteString(": ")
		b.WriteString(coap.CodeString(r.Code))
	}
	return b.String()
}

// recorder keeps the latest Records in a ring; guarded by Server.mu.
type recorder struct {
	max  int // negative: keep none
	ring []Record
	next int // where the next record goes, once the ring is full
}

func (rc *recorder) add(r Record) {
	switch {
	case rc.max < 0:
	case len(rc.ring) < rc.max:
		rc.ring = append(rc.ring, r)
	default:
		rc.ring[rc.next] = r
		rc.next = (rc.next + 1) % rc.max
	}
}

// recordLocked keeps r, stamped with the time and with its payload
// copied; under s.mu.
func (s *Server) recordLocked(r Record) {
	if s.recs.max < 0 {
		return
	}
	r.Time = time.Now()
	r.Payload = bytes.Clone(r.Payload)
	r.Query = slices.Clone(r.Query)
	s.recs.add(r)
}

// record is recordLocked for a caller that does not hold s.mu.
func (s *Server) record(r Record) {
	s.mu.Lock()
	s.recordLocked(r)
	s.mu.Unlock()
}

// Records returns what the Server recorded of endpoint ep ("" for every
// endpoint, and the requests that named none), oldest first: every
// Register, Update and De-register (accepted or refused), every request
// the Server sent with its answer, every notification. A Server keeps
// the latest Options.MaxRecords of all endpoints together. The records
// of a registration step are in place when WaitRegistered, WaitUpdated
// or WaitDeregistered returns it, and those of a request when the method
// that sent it returns.
func (s *Server) Records(ep string) []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := append(slices.Clone(s.recs.ring[s.recs.next:]), s.recs.ring[:s.recs.next]...)
	out := all[:0]
	for _, r := range all {
		if ep == "" || r.Endpoint == ep {
			r.Payload = bytes.Clone(r.Payload)
			r.Query = slices.Clone(r.Query)
			out = append(out, r)
		}
	}
	return out
}

// requestPath returns a request's Uri-Path as "/a/b" and its Uri-Query
// options.
func requestPath(m *coap.Message) (path string, query []string) {
	var b strings.Builder
	for _, o := range m.Options {
		switch o.ID {
		case coap.URIPath:
			b.WriteByte('/')
			b.Write(o.Value)
		case coap.URIQuery:
			query = append(query, string(o.Value))
		}
	}
	if b.Len() == 0 {
		return "/", query
	}
	return b.String(), query
}

// Location returns the path that m's Location-Path options name: the
// location of a registration in a Register's answer ("/rd/0"), the new
// instance in a Create's ("/3303/1"); empty when there is none.
func Location(m *coap.Message) string {
	var b strings.Builder
	for _, o := range m.Options {
		if o.ID == optLocationPath {
			b.WriteByte('/')
			b.Write(o.Value)
		}
	}
	return b.String()
}

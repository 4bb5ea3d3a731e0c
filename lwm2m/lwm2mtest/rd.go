package lwm2mtest

import (
	"cmp"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/lwm2m/content"
)

// Options coap does not name.
const (
	optLocationPath coap.OptionID = 8
	optAccept       coap.OptionID = 17
)

// Registration is what the Server knows of a registered client.
type Registration struct {
	// Endpoint is the client's ep= name; Location the path of its
	// registration ("/rd/3"), which the Register's answer gave as the
	// Location-Path options "rd", "3".
	Endpoint, Location string
	// Lifetime is lt= (default 86400 s); Binding is b= as sent (default
	// "U"; a 1.0 client in queue mode sends "UQ"); Queue is the Q
	// parameter, or a Q in the binding; Version is lwm2m= (default 1.0).
	Lifetime time.Duration
	Binding  string
	Queue    bool
	Version  string
	// Links is the Register payload (or the latest Update's), parsed.
	Links []content.Link
	// Addr is where the client's messages come from: set by every
	// Register and Update, and over DTLS by every record (a Connection ID
	// may bring the client back from another address).
	Addr net.Addr
	// Registered is the time of the Register, Updated of the latest
	// Update (zero before the first).
	Registered, Updated time.Time
}

// reg is a registration and the client it is reached through.
type reg struct {
	Registration
	id  string
	cl  *client
	obs map[string]*Observation // by token
}

// Registration returns ep's registration, and whether there is one.
func (s *Server) Registration(ep string) (Registration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.liveLocked(ep)
	if r == nil {
		return Registration{}, false
	}
	return r.Registration, true
}

// liveLocked returns ep's registration, nil if it has none or if it
// expired (then it is dropped).
func (s *Server) liveLocked(ep string) *reg {
	r := s.regs[ep]
	if r != nil && s.expiredLocked(r, time.Now()) {
		return nil
	}
	return r
}

// expiredLocked drops r and reports true if its lifetime passed and the
// Server expires registrations.
func (s *Server) expiredLocked(r *reg, now time.Time) bool {
	if !s.opts.Expire {
		return false
	}
	last := r.Registered
	if r.Updated.After(last) {
		last = r.Updated
	}
	if now.Sub(last) <= r.Lifetime {
		return false
	}
	s.log.Info("lwm2mtest: registration expired", "ep", r.Endpoint, "location", r.Location)
	s.dropLocked(r)
	s.broadcastLocked()
	return true
}

// dropLocked forgets a registration and ends its observations.
func (s *Server) dropLocked(r *reg) {
	if s.regs[r.Endpoint] == r {
		delete(s.regs, r.Endpoint)
	}
	delete(s.byID, r.id)
	if r.cl != nil && r.cl.ep == r.Endpoint {
		r.cl.ep = ""
	}
	for tok, o := range r.obs {
		delete(s.obs, tok)
		o.end()
	}
	r.obs = nil
}

// bindLocked makes cl the client through which r is reached.
func (s *Server) bindLocked(r *reg, cl *client) {
	if r.cl != nil && r.cl != cl && r.cl.ep == r.Endpoint {
		r.cl.ep = "" // the client moved; the old peer idles out
	}
	if cl.secure && cl.handshakeOf != r.Endpoint {
		cl.handshakeOf = r.Endpoint
		s.epLocked(r.Endpoint).Handshakes++
	}
	if cl.ep != "" && cl.ep != r.Endpoint {
		// Another endpoint registered over the same association before:
		// it is unreachable now.
		if o := s.regs[cl.ep]; o != nil && o.cl == cl {
			o.cl = nil
		}
	}
	r.cl, cl.ep, r.Addr = cl, r.Endpoint, cl.addr
	s.pc.tag(cl.addr, r.Endpoint)
}

// handle answers a request from a client: the registration interface on
// /rd, Send on /dp, 4.04 elsewhere. It runs on the client's reader.
func (s *Server) handle(cl *client, req *coap.Message) coap.Message {
	if _, ok := coap.Bytes(req.Options, coap.Block1); ok {
		whole, echo, answer := s.reassemble(cl, req)
		if answer != nil {
			return *answer
		}
		resp := s.handleWhole(cl, whole)
		resp.Options = append(slices.Clone(resp.Options), echo)
		slices.SortStableFunc(resp.Options, func(a, b coap.Option) int { return cmp.Compare(a.ID, b.ID) })
		return resp
	}
	return s.handleWhole(cl, req)
}

// handleWhole answers a request whose body is whole.
func (s *Server) handleWhole(cl *client, req *coap.Message) coap.Message {
	var path []string
	for _, o := range req.Options {
		if o.ID == coap.URIPath {
			path = append(path, string(o.Value))
		}
	}
	rp, query := requestPath(req)
	rec := Record{Path: rp, Query: query, Payload: req.Payload}
	switch {
	case len(path) == 1 && path[0] == "dp" && req.Code == coap.POST:
		// Send: accepted from a registered device, in SenML.
		rec.Op = OpSend
		s.mu.Lock()
		defer s.mu.Unlock()
		rec.Endpoint = cl.ep
		if cl.ep == "" {
			rec.Code = coap.Forbidden
			s.recordLocked(rec)
			return coap.Message{Code: coap.Forbidden, Payload: []byte("Send from a device not registered")}
		}
		rec.Code = coap.Changed
		s.recordLocked(rec)
		return coap.Message{Code: coap.Changed}
	case len(path) == 0 || path[0] != "rd" || len(path) > 2:
		rec.Op, rec.Code = OpRequest, coap.NotFound
		s.mu.Lock()
		rec.Endpoint = cl.ep
		s.recordLocked(rec)
		s.mu.Unlock()
		return coap.Message{Code: coap.NotFound}
	case len(path) == 1 && req.Code == coap.POST:
		rec.Op = OpRegister
		return s.register(cl, req, query, rec)
	case len(path) == 2 && req.Code == coap.POST:
		rec.Op = OpUpdate
		return s.update(cl, req, path[1], query, rec)
	case len(path) == 2 && req.Code == coap.DELETE:
		rec.Op = OpDeregister
		return s.deregister(cl, path[1], rec)
	}
	rec.Op = OpRequest
	s.reject(rec, "", coap.CodeString(req.Code)+" /"+strings.Join(path, "/"), coap.MethodNotAllowed)
	return coap.Message{Code: coap.MethodNotAllowed}
}

// params are the registration interface's query parameters.
type params struct {
	ep, lwm2m, b string
	lt           int
	hasLt, hasB  bool
	q            bool
	bad          string // what was malformed, if anything
}

func parseParams(query []string) params {
	var p params
	for _, q := range query {
		name, value, _ := strings.Cut(q, "=")
		switch name {
		case "ep":
			p.ep = value
		case "lwm2m":
			p.lwm2m = value
		case "b":
			p.b, p.hasB = value, true
		case "Q":
			p.q = true
		case "lt":
			n, err := strconv.Atoi(value)
			if err != nil || n <= 0 {
				p.bad = "lt=" + value
			}
			p.lt, p.hasLt = n, true
		}
	}
	return p
}

// links parses a Register or Update payload; a Content-Format other than
// link format is refused.
func links(req *coap.Message) ([]content.Link, string) {
	if cf, ok := coap.Uint(req.Options, coap.ContentFormat); ok && cf != uint32(content.LinkFormat) {
		return nil, "Content-Format " + strconv.Itoa(int(cf))
	}
	l, err := content.ParseLinks(req.Payload)
	if err != nil {
		return nil, err.Error()
	}
	return l, ""
}

// reject counts and records a refused request of endpoint ep (empty if
// it named none).
func (s *Server) reject(rec Record, ep, why string, code coap.Code) {
	rec.Endpoint, rec.Code = ep, code
	s.mu.Lock()
	s.stats.Rejected++
	if ep != "" {
		s.epLocked(ep).Rejected++
	}
	s.recordLocked(rec)
	s.mu.Unlock()
	s.log.Info("lwm2mtest: refused", "ep", ep, "why", why, "code", coap.CodeString(code))
}

func diag(code coap.Code, why string) coap.Message {
	return coap.Message{Code: code, Payload: []byte(why)}
}

// register answers Register (6.2.1): 2.01 with a new location.
func (s *Server) register(cl *client, req *coap.Message, query []string, rec Record) coap.Message {
	p := parseParams(query)
	switch {
	case p.ep == "":
		s.reject(rec, "", "Register without ep=", coap.BadRequest)
		return diag(coap.BadRequest, "ep= missing")
	case p.bad != "":
		s.reject(rec, p.ep, p.bad, coap.BadRequest)
		return diag(coap.BadRequest, p.bad)
	}
	if p.lwm2m == "" {
		p.lwm2m = "1.0"
	}
	if s.opts.Only10 && p.lwm2m != "1.0" {
		s.reject(rec, p.ep, "lwm2m="+p.lwm2m+" on a 1.0 server", coap.PreconditionFailed)
		return diag(coap.PreconditionFailed, "LwM2M 1.0 only")
	}
	ls, bad := links(req)
	if bad != "" {
		s.reject(rec, p.ep, bad, coap.BadRequest)
		return diag(coap.BadRequest, bad)
	}
	if !p.hasLt {
		p.lt = 86400
	}
	if !p.hasB {
		p.b = "U"
	}
	now := time.Now()
	s.mu.Lock()
	if old := s.regs[p.ep]; old != nil {
		s.dropLocked(old) // a new registration: the old one's observations end
	}
	id := strconv.Itoa(s.nextID)
	s.nextID++
	r := &reg{id: id, Registration: Registration{
		Endpoint: p.ep, Location: "/rd/" + id,
		Lifetime: time.Duration(p.lt) * time.Second, Binding: p.b, Queue: p.q || strings.Contains(p.b, "Q"),
		Version: p.lwm2m, Links: ls, Registered: now,
	}}
	s.bindLocked(r, cl)
	s.regs[p.ep], s.byID[id] = r, r
	s.stats.Registers++
	e := s.epLocked(p.ep)
	e.Registers++
	e.last = r.Registration
	rec.Endpoint, rec.Code = p.ep, coap.Created
	s.recordLocked(rec)
	s.broadcastLocked()
	s.mu.Unlock()
	s.log.Info("lwm2mtest: Register", "ep", p.ep, "location", r.Location, "lt", p.lt, "lwm2m", p.lwm2m, "b", p.b, "Q", r.Queue, "addr", r.Addr)
	return coap.Message{Code: coap.Created, Options: coap.Options{
		{ID: optLocationPath, Value: []byte("rd")},
		{ID: optLocationPath, Value: []byte(id)},
	}}
}

// update answers Update (6.2.2): 2.04, or 4.04 for a location the Server
// does not know (the client must register again).
func (s *Server) update(cl *client, req *coap.Message, id string, query []string, rec Record) coap.Message {
	p := parseParams(query)
	var ls []content.Link
	bad := p.bad
	if bad == "" && len(req.Payload) > 0 {
		ls, bad = links(req)
	}
	now := time.Now()
	s.mu.Lock()
	r := s.byID[id]
	if r != nil && s.expiredLocked(r, now) {
		r = nil
	}
	switch {
	case r == nil:
		s.mu.Unlock()
		s.reject(rec, "", "Update of unknown /rd/"+id, coap.NotFound)
		return coap.Message{Code: coap.NotFound}
	case bad != "":
		ep := r.Endpoint
		s.mu.Unlock()
		s.reject(rec, ep, bad, coap.BadRequest)
		return diag(coap.BadRequest, bad)
	}
	if p.hasLt {
		r.Lifetime = time.Duration(p.lt) * time.Second
	}
	if p.hasB {
		r.Binding = p.b
		r.Queue = strings.Contains(p.b, "Q")
	}
	if p.q {
		r.Queue = true
	}
	if ls != nil {
		r.Links = ls
	}
	r.Updated = now
	s.bindLocked(r, cl)
	s.stats.Updates++
	e := s.epLocked(r.Endpoint)
	e.Updates++
	e.last = r.Registration
	rec.Endpoint, rec.Code = r.Endpoint, coap.Changed
	s.recordLocked(rec)
	s.broadcastLocked()
	reg := r.Registration
	s.mu.Unlock()
	s.log.Info("lwm2mtest: Update", "ep", reg.Endpoint, "location", reg.Location, "lt", int(reg.Lifetime/time.Second), "b", reg.Binding, "Q", reg.Queue, "addr", reg.Addr)
	return coap.Message{Code: coap.Changed}
}

// deregister answers De-register (6.2.3): 2.02, or 4.04.
func (s *Server) deregister(cl *client, id string, rec Record) coap.Message {
	s.mu.Lock()
	r := s.byID[id]
	if r != nil && s.expiredLocked(r, time.Now()) {
		r = nil
	}
	if r == nil {
		s.mu.Unlock()
		s.reject(rec, "", "De-register of unknown /rd/"+id, coap.NotFound)
		return coap.Message{Code: coap.NotFound}
	}
	s.dropLocked(r)
	s.stats.Deregisters++
	s.epLocked(r.Endpoint).Deregisters++
	rec.Endpoint, rec.Code = r.Endpoint, coap.Deleted
	s.recordLocked(rec)
	s.broadcastLocked()
	addr := cl.addr
	s.mu.Unlock()
	s.log.Info("lwm2mtest: De-register", "ep", r.Endpoint, "location", r.Location, "addr", addr)
	return coap.Message{Code: coap.Deleted}
}

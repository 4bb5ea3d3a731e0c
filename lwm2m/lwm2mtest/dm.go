package lwm2mtest

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/peer"
	"github.com/tether-iot/tether/lwm2m/content"
)

// DefaultNotifyBuffer is the capacity of an Observation's Notifications
// channel when Options.NotifyBuffer is zero.
const DefaultNotifyBuffer = 4096

// Observation is an observation the Server started with Observe (RFC
// 7641).
type Observation struct {
	// First is the client's answer to the Observe request. If it is not a
	// success, or carries no Observe option, the client is not observing
	// and Notifications is closed at once.
	First *coap.Message
	// Notifications receives the notifications that follow, in the order
	// they arrived (duplicated non-confirmable ones once), each owned by
	// the receiver. It is closed when the observation ends: Cancel, a
	// notification with an error code or without an Observe option (RFC
	// 7641 3.2; it is delivered first), a new Register or a De-register
	// of the endpoint, an expiry, Close. It is buffered; when it is full,
	// a notification is dropped (see Dropped) but still acknowledged: a
	// test that does not read never holds up the Server.
	Notifications <-chan *coap.Message
	// Endpoint and Path are what Observe was given.
	Endpoint, Path string

	ch      chan *coap.Message
	token   []byte
	accept  []content.Format
	fetch   *coap.Message // an Observe-Composite's request, to cancel it by
	count   atomic.Int64
	dropped atomic.Int64

	// Guarded by Server.mu.
	ended bool
	mids  [8]int32 // message IDs of the last non-confirmable notifications
	nmid  int
}

// Count returns how many notifications arrived so far, dropped ones
// included.
func (o *Observation) Count() int { return int(o.count.Load()) }

// Dropped returns how many notifications were dropped because
// Notifications was full.
func (o *Observation) Dropped() int { return int(o.dropped.Load()) }

// Token returns the observation's token.
func (o *Observation) Token() []byte { return bytes.Clone(o.token) }

// end closes Notifications once; under Server.mu.
func (o *Observation) end() {
	if !o.ended {
		o.ended = true
		close(o.ch)
	}
}

// testHookObserved, set by tests, runs between the first response of an
// Observe and the observation's start: the moment a notification can
// overtake it.
var testHookObserved func()

// request builds a request for path ("/3/0/1"; empty segments ignored).
func request(code coap.Code, path string) *coap.Message {
	m := &coap.Message{Code: code}
	for _, seg := range strings.Split(path, "/") {
		if seg != "" {
			m.Options = append(m.Options, coap.Option{ID: coap.URIPath, Value: []byte(seg)})
		}
	}
	return m
}

func addUint(m *coap.Message, id coap.OptionID, v uint32) {
	m.Options = append(m.Options, coap.UintOption(id, v))
}

func addAccept(m *coap.Message, accept []content.Format) error {
	switch len(accept) {
	case 0:
		return nil
	case 1:
		addUint(m, optAccept, uint32(accept[0]))
		return nil
	}
	return errors.New("lwm2mtest: CoAP has one Accept option; give at most one format")
}

// sortOptions puts the options in number order, as the encoder needs,
// keeping the order of repeated ones.
func sortOptions(m *coap.Message) {
	slices.SortStableFunc(m.Options, func(a, b coap.Option) int { return cmp.Compare(a.ID, b.ID) })
}

// clientOf returns the client through which ep is reached.
func (s *Server) clientOf(ep string) (*client, *reg, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return nil, nil, ErrClosed
	}
	r := s.liveLocked(ep)
	if r == nil || r.cl == nil {
		return nil, nil, fmt.Errorf("%w: %q", ErrNotRegistered, ep)
	}
	return r.cl, r, nil
}

// Do sends req to the registered client ep as a confirmable request and
// returns its response, which the caller owns: for requests the other
// methods do not make (a method the client must refuse, an option of
// one's own). req's type, message ID and token are set by the Server; its
// options need not be sorted. A CoAP error code is a response, not an
// error; the errors are ErrNotRegistered, ErrClosed, ctx's, and
// coap/peer's (ErrTimeout, ErrReset, ErrClosed). It is recorded as
// OpRequest.
func (s *Server) Do(ctx context.Context, ep string, req *coap.Message) (*coap.Message, error) {
	return s.do(ctx, ep, OpRequest, req)
}

// do sends a request and records the exchange as op.
func (s *Server) do(ctx context.Context, ep string, op Op, req *coap.Message) (*coap.Message, error) {
	cl, _, err := s.clientOf(ep)
	if err != nil {
		return nil, err
	}
	sortOptions(req)
	path, query := requestPath(req)
	resp, err := cl.peer.Do(ctx, req)
	if err != nil {
		err = fmt.Errorf("lwm2mtest: %v to %s: %w", req.Code, ep, err)
		s.record(Record{Endpoint: ep, Op: op, Path: path, Query: query, Err: err})
		return nil, err
	}
	s.record(Record{Endpoint: ep, Op: op, Path: path, Query: query, Code: resp.Code, Payload: resp.Payload})
	return resp, nil
}

// Read sends Read (GET path), with an Accept option if a format is given.
func (s *Server) Read(ctx context.Context, ep, path string, accept ...content.Format) (*coap.Message, error) {
	return s.get(ctx, ep, OpRead, path, accept)
}

// Discover sends Discover (GET path with Accept 40, link format).
func (s *Server) Discover(ctx context.Context, ep, path string) (*coap.Message, error) {
	return s.get(ctx, ep, OpDiscover, path, []content.Format{content.LinkFormat})
}

func (s *Server) get(ctx context.Context, ep string, op Op, path string, accept []content.Format) (*coap.Message, error) {
	req := request(coap.GET, path)
	if err := addAccept(req, accept); err != nil {
		return nil, err
	}
	return s.do(ctx, ep, op, req)
}

// Write sends Write in replace mode (PUT path) with payload in format f.
func (s *Server) Write(ctx context.Context, ep, path string, f content.Format, payload []byte) (*coap.Message, error) {
	req := request(coap.PUT, path)
	addUint(req, coap.ContentFormat, uint32(f))
	req.Payload = payload
	return s.do(ctx, ep, OpWrite, req)
}

// WritePartial sends Write in partial-update mode (POST on an object
// instance) with payload in format f.
func (s *Server) WritePartial(ctx context.Context, ep, path string, f content.Format, payload []byte) (*coap.Message, error) {
	req := request(coap.POST, path)
	addUint(req, coap.ContentFormat, uint32(f))
	req.Payload = payload
	return s.do(ctx, ep, OpWritePartial, req)
}

// Execute sends Execute (POST path) with args as the payload (none if
// empty), and no Content-Format.
func (s *Server) Execute(ctx context.Context, ep, path string, args []byte) (*coap.Message, error) {
	req := request(coap.POST, path)
	req.Payload = args
	return s.do(ctx, ep, OpExecute, req)
}

// Create sends Create (POST on an object, "/3303", with the new instance
// as payload in format f: TLV or SenML, whose records may name the new
// instance's ID). A device that creates it answers 2.01 Created, naming
// the instance in Location-Path options when the request did not (see
// Location).
func (s *Server) Create(ctx context.Context, ep, path string, f content.Format, payload []byte) (*coap.Message, error) {
	req := request(coap.POST, path)
	addUint(req, coap.ContentFormat, uint32(f))
	req.Payload = payload
	return s.do(ctx, ep, OpCreate, req)
}

// Delete sends Delete (DELETE on an object instance, "/3303/1"); a
// device that deletes it answers 2.02 Deleted.
func (s *Server) Delete(ctx context.Context, ep, path string) (*coap.Message, error) {
	return s.do(ctx, ep, OpDelete, request(coap.DELETE, path))
}

// WriteAttributes sends Write-Attributes (PUT path with no payload and one
// Uri-Query per query: "pmin=1", "pmax=5").
func (s *Server) WriteAttributes(ctx context.Context, ep, path string, query ...string) (*coap.Message, error) {
	req := request(coap.PUT, path)
	for _, q := range query {
		req.Options = append(req.Options, coap.Option{ID: coap.URIQuery, Value: []byte(q)})
	}
	return s.do(ctx, ep, OpWriteAttributes, req)
}

// Observe sends Observe (GET path with Observe 0, and Accept if a format
// is given) and returns the observation, whose First is the client's
// answer. Notifications that overtake that answer are kept for it.
func (s *Server) Observe(ctx context.Context, ep, path string, accept ...content.Format) (*Observation, error) {
	req := request(coap.GET, path)
	if err := addAccept(req, accept); err != nil {
		return nil, err
	}
	addUint(req, coap.Observe, 0)
	sortOptions(req)
	return s.observe(ctx, ep, path, req, accept)
}

// ObserveComposite observes several paths of ep at once (LwM2M 1.1
// 6.4.3: FETCH on the root with the paths in format f, SenML JSON or
// CBOR, and Observe 0). Its Path is the paths joined by commas; its
// notifications carry the values of all of them.
func (s *Server) ObserveComposite(ctx context.Context, ep string, f content.Format, paths ...string) (*Observation, error) {
	for _, p := range paths {
		if _, err := content.ParsePath(p); err != nil {
			return nil, err
		}
	}
	payload, err := compositePaths(f, paths)
	if err != nil {
		return nil, err
	}
	req := &coap.Message{Code: coap.FETCH, Payload: payload}
	addUint(req, coap.ContentFormat, uint32(f))
	addUint(req, coap.Observe, 0)
	sortOptions(req)
	o, err := s.observe(ctx, ep, strings.Join(paths, ","), req, nil)
	if o != nil {
		o.fetch = &coap.Message{Code: coap.FETCH, Payload: payload}
		addUint(o.fetch, coap.ContentFormat, uint32(f))
	}
	return o, err
}

// compositePaths is the SenML payload that names paths, with no values.
func compositePaths(f content.Format, paths []string) ([]byte, error) {
	switch f {
	case content.SenMLJSON:
		var b bytes.Buffer
		b.WriteByte('[')
		for i, p := range paths {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"n":%q}`, p)
		}
		b.WriteByte(']')
		return b.Bytes(), nil
	case content.SenMLCBOR:
		// An array of maps {0: name}, name a text string (RFC 8428 6).
		b := []byte{0x80 | byte(len(paths))}
		if len(paths) > 23 {
			return nil, fmt.Errorf("lwm2mtest: %d composite paths in CBOR; at most 23", len(paths))
		}
		for _, p := range paths {
			if len(p) > 23 {
				return nil, fmt.Errorf("lwm2mtest: path %q too long for this encoder", p)
			}
			b = append(b, 0xa1, 0x00, 0x60|byte(len(p)))
			b = append(b, p...)
		}
		return b, nil
	}
	return nil, fmt.Errorf("lwm2mtest: composite paths in %v: SenML JSON or CBOR", f)
}

// observe sends an Observe request and follows its notifications.
func (s *Server) observe(ctx context.Context, ep, path string, req *coap.Message, accept []content.Format) (*Observation, error) {
	cl, r, err := s.clientOf(ep)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	cl.observing++
	s.mu.Unlock()
	resp, err := cl.peer.Do(ctx, req)
	if testHookObserved != nil {
		testHookObserved()
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	cl.observing--
	var early []*coap.Message
	tok := string(req.Token)
	keep := cl.early[:0]
	for _, m := range cl.early {
		switch {
		case string(m.Token) == tok:
			early = append(early, m)
		case cl.observing > 0:
			keep = append(keep, m) // another Observe's
		}
	}
	clear(cl.early[len(keep):])
	cl.early = keep
	if len(keep) == 0 {
		cl.early = nil
	}
	if err != nil {
		err = fmt.Errorf("lwm2mtest: Observe %s on %s: %w", path, ep, err)
		s.recordLocked(Record{Endpoint: ep, Op: OpObserve, Path: path, Err: err})
		return nil, err
	}
	s.recordLocked(Record{Endpoint: ep, Op: OpObserve, Path: path, Code: resp.Code, Payload: resp.Payload})
	size := s.opts.NotifyBuffer
	if size <= 0 {
		size = DefaultNotifyBuffer
	}
	o := &Observation{First: resp, Endpoint: ep, Path: path, token: bytes.Clone(req.Token),
		accept: slices.Clone(accept), ch: make(chan *coap.Message, size)}
	o.Notifications = o.ch
	_, observing := coap.Uint(resp.Options, coap.Observe)
	if !coap.IsSuccess(resp.Code) || !observing || s.done || s.regs[ep] != r {
		o.end() // not observing, or the registration it belonged to is gone
		return o, nil
	}
	s.obs[tok] = o
	if r.obs == nil {
		r.obs = make(map[string]*Observation)
	}
	r.obs[tok] = o
	for _, m := range early {
		s.deliverLocked(o, m)
	}
	return o, nil
}

// Cancel cancels an observation (RFC 7641 3.6): from now on its
// notifications are answered with a Reset, Notifications is closed, and a
// GET with Observe 1 and the observation's token goes to the client,
// confirmable. Cancel returns once the client acknowledged it (its
// answer, piggybacked or separate, is not kept) or with the error that
// ended the wait: peer.ErrReset if the client rejected it. Over TCP, where
// nothing is acknowledged, it returns once the client answered, or with
// peer.ErrTimeout after MAX_TRANSMIT_WAIT.
func (s *Server) Cancel(ctx context.Context, o *Observation) error {
	cl, _, err := s.clientOf(o.Endpoint)
	s.mu.Lock()
	s.endLocked(o)
	s.cancelled[s.nextCxl] = string(o.token)
	s.nextCxl = (s.nextCxl + 1) % len(s.cancelled)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	req := request(coap.GET, o.Path)
	if o.fetch != nil {
		req = &coap.Message{Code: coap.FETCH, Options: slices.Clone(o.fetch.Options), Payload: o.fetch.Payload}
	} else if err := addAccept(req, o.accept); err != nil {
		return err
	}
	addUint(req, coap.Observe, 1)
	sortOptions(req)
	req.Token = bytes.Clone(o.token)
	var answered chan struct{}
	if cl.dgram == nil {
		// A stream acknowledges nothing: wait for the answer itself,
		// which onResponse hands over.
		answered = make(chan struct{})
		s.mu.Lock()
		s.cancels[string(o.token)] = answered
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			if s.cancels[string(o.token)] == answered {
				delete(s.cancels, string(o.token))
			}
			s.mu.Unlock()
		}()
	}
	// A request under a token of the Server's choosing: Do would draw a
	// new one, Notify keeps it and waits for the acknowledgement.
	err = cl.peer.Notify(ctx, req, true)
	if err == nil && answered != nil {
		err = s.waitAnswer(ctx, answered)
	}
	if err != nil {
		err = fmt.Errorf("lwm2mtest: cancelling %s on %s: %w", o.Path, o.Endpoint, err)
		s.record(Record{Endpoint: o.Endpoint, Op: OpCancel, Path: o.Path, Err: err})
		return err
	}
	s.record(Record{Endpoint: o.Endpoint, Op: OpCancel, Path: o.Path})
	return nil
}

// waitAnswer waits for the answer to a Cancel sent over a stream, up to
// MAX_TRANSMIT_WAIT as the datagram peer waits for a response.
func (s *Server) waitAnswer(ctx context.Context, answered <-chan struct{}) error {
	wait := s.opts.Params.MaxTransmitWait()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-answered:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.closed:
		return ErrClosed
	case <-t.C:
		return fmt.Errorf("%w within %v", peer.ErrTimeout, wait)
	}
}

// endLocked ends an observation and forgets its token.
func (s *Server) endLocked(o *Observation) {
	tok := string(o.token)
	if s.obs[tok] == o {
		delete(s.obs, tok)
	}
	if r := s.regs[o.Endpoint]; r != nil && r.obs[tok] == o {
		delete(r.obs, tok)
	}
	o.end()
}

// onResponse takes a response that matches no exchange of cl's peer: a
// notification. It runs on the client's reader. False makes the peer
// answer it with a Reset.
func (s *Server) onResponse(cl *client, m *coap.Message) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return false
	}
	tok := string(m.Token)
	if o := s.obs[tok]; o != nil {
		s.deliverLocked(o, clone(m))
		return true
	}
	_, isNotification := coap.Uint(m.Options, coap.Observe)
	if ch := s.cancels[tok]; ch != nil && !isNotification {
		close(ch) // the answer a Cancel over a stream waits for
		delete(s.cancels, tok)
		return true
	}
	if cl.observing > 0 && len(cl.early) < maxEarly {
		// Perhaps a notification that overtook its observation's first
		// response on the way to Observe's caller.
		cl.early = append(cl.early, clone(m))
		return true
	}
	if !isNotification && tok != "" && slices.Contains(s.cancelled[:], tok) {
		return true // the separate answer to a Cancel
	}
	s.log.Debug("lwm2mtest: a notification for no observation: reset", "ep", cl.ep, "token", fmt.Sprintf("%x", m.Token), "code", coap.CodeString(m.Code))
	return false
}

// deliverLocked hands a notification to its observation.
func (s *Server) deliverLocked(o *Observation, m *coap.Message) {
	if o.ended {
		return
	}
	if m.Type == coap.NonConfirmable {
		if slices.Contains(o.mids[:min(o.nmid, len(o.mids))], m.MessageID) {
			return // a duplicate (a confirmable one is the peer's business)
		}
		o.mids[o.nmid%len(o.mids)] = m.MessageID
		o.nmid++
	}
	o.count.Add(1)
	s.recordLocked(Record{Endpoint: o.Endpoint, Op: OpNotify, Path: o.Path, Code: m.Code, Payload: m.Payload})
	s.stats.Notifications++
	s.epLocked(o.Endpoint).Notifications++
	select {
	case o.ch <- m:
	default:
		o.dropped.Add(1)
	}
	if _, ok := coap.Uint(m.Options, coap.Observe); !ok || !coap.IsSuccess(m.Code) {
		s.endLocked(o) // the client ended the observation (RFC 7641 3.2)
	}
}

// clone copies a message out of the reader's buffer.
func clone(m *coap.Message) *coap.Message {
	c := &coap.Message{Code: m.Code, Type: m.Type, MessageID: m.MessageID,
		Token: bytes.Clone(m.Token), Payload: bytes.Clone(m.Payload)}
	if len(m.Options) > 0 {
		c.Options = make(coap.Options, len(m.Options))
		for i, o := range m.Options {
			c.Options[i] = coap.Option{ID: o.ID, Value: bytes.Clone(o.Value)}
		}
	}
	return c
}

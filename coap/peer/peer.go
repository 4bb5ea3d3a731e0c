package peer

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"time"

	"github.com/tether-iot/tether/coap"
)

// Errors of an exchange.
var (
	// ErrReset reports that the other side answered with a Reset: it does
	// not know the exchange (an observation it cancelled, a request it
	// cannot parse).
	ErrReset = errors.New("coap: peer reset the exchange")
	// ErrTimeout reports a confirmable message that was never
	// acknowledged, or a request acknowledged but never answered.
	ErrTimeout = errors.New("coap: no response")
	// ErrClosed reports an exchange cut short by Close.
	ErrClosed = errors.New("coap: peer closed")
)

// LevelTrace is the level of the wire trace: with a Config.Logger enabled
// at it, every message sent or received is logged.
const LevelTrace = slog.LevelDebug - 4

// Handler answers a request from the other side. req and its slices are
// valid only during the call. The returned message's Code, Options and
// Payload are sent; its type, message ID and token are the Peer's
// business. A zero Code answers 5.00, and so does a panic, which is
// logged at error level.
type Handler func(req *coap.Message) coap.Message

// Config configures a Peer; nil or zero values are the defaults.
type Config struct {
	// Handler answers the other side's requests; nil answers every
	// request 4.04 Not Found.
	Handler Handler
	// OnReset is called, on the reader's goroutine, with the token of a
	// non-confirmable message the other side reset: an observer that
	// cancels an observation by rejecting a notification (RFC 7641 3.6).
	OnReset func(token []byte)
	// OnResponse is called, on the reader's goroutine, with a response
	// that matches no exchange in flight: a notification of an
	// observation this side started (RFC 7641), whose exchange ended with
	// its first response. m and its slices are valid only during the
	// call. True takes it: a confirmable one is acknowledged, and a
	// retransmission of it acknowledged again without a second call.
	// False rejects it with a Reset, confirmable or not (RFC 7641 3.5).
	// Nil resets a confirmable response nobody expects and drops a
	// non-confirmable one.
	OnResponse func(m *coap.Message) bool
	// Params are the transmission parameters; zero means
	// coap.DefaultParams.
	Params coap.Params
	// Rand draws tokens, message IDs and timeouts; nil means math/rand/v2's
	// own (ChaCha8, seeded by the runtime from the OS), shared, so that a
	// Peer holds no generator of its own.
	Rand *rand.Rand
	// Logger receives retransmissions and odd messages at debug level and
	// the wire trace at LevelTrace; nil means none.
	Logger *slog.Logger
}

// Stats counts what a Peer did.
type Stats struct {
	Sent, Received  uint64 // datagrams
	Retransmissions uint64 // confirmable messages sent again
	Duplicates      uint64 // requests seen before, answered from the cache
	Junk            uint64 // malformed or unexpected datagrams
}

// Peer is one side of a CoAP association over a datagram path. Its methods
// are safe for concurrent use, except that Input must be called from one
// goroutine at a time.
type Peer struct {
	send    func([]byte) error
	handler Handler
	onReset func([]byte)
	onResp  func(*coap.Message) bool
	params  coap.Params
	log     *slog.Logger
	trace   bool

	mu      sync.Mutex
	rng     *rand.Rand
	mid     uint16
	pending map[uint16]*exchange // by message ID, until acknowledged or answered
	byToken map[string]*exchange // requests, by token, until answered
	replies *coap.Dedup          // answers to the other side's requests, separate responses acknowledged
	nons    nonRing              // non-confirmable messages sent, for OnReset
	closed  bool
	stats   Stats
}

// exchange is one confirmable message (or request) in flight.
type exchange struct {
	mid     uint16
	token   string
	request bool
	events  chan event // buffered: the reader never blocks on it
}

type event struct {
	kind int // evAck, evReset, evResponse
	resp *coap.Message
}

const (
	evAck = iota
	evReset
	evResponse
	evClosed
)

// New returns a Peer that sends datagrams with send.
func New(send func([]byte) error, cfg *Config) *Peer {
	if cfg == nil {
		cfg = &Config{}
	}
	p := &Peer{
		send:    send,
		handler: cfg.Handler,
		onReset: cfg.OnReset,
		onResp:  cfg.OnResponse,
		params:  cfg.Params,
		log:     cfg.Logger,
		rng:     cfg.Rand,
	}
	if p.params == (coap.Params{}) {
		p.params = coap.DefaultParams
	}
	if p.log == nil {
		p.log = discard
	}
	if p.handler == nil {
		p.handler = func(*coap.Message) coap.Message { return coap.Message{Code: coap.NotFound} }
	}
	p.trace = p.log.Enabled(context.Background(), LevelTrace)
	p.mid = uint16(p.rand64())
	return p
}

// discard is the logger of a Peer given none: one for all of them.
var discard = slog.New(slog.DiscardHandler)

// remember adds mid to the reply cache, made on the first message that
// needs it: an idle Peer holds none.
func (p *Peer) remember(mid uint16, kind coap.DedupKind, wire []byte) {
	if p.replies == nil {
		p.replies = coap.NewDedup(cacheSize)
	}
	p.replies.Add(mid, kind, wire)
}

// rand64 draws from Config.Rand, or else from math/rand/v2's generator
// (ChaCha8, seeded by the runtime from the OS): tokens unguessable by
// an off-path attacker, with no generator of its own per Peer.
func (p *Peer) rand64() uint64 { return draw(p.rng) }

// draw draws from r, or from math/rand/v2's shared generator when r is
// nil: a Peer or a Stream given no Config.Rand holds none of its own.
func draw(r *rand.Rand) uint64 {
	if r != nil {
		return r.Uint64()
	}
	return rand.Uint64()
}

// Stats returns the counters so far.
func (p *Peer) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// Params returns the transmission parameters in use.
func (p *Peer) Params() coap.Params { return p.params }

// Close ends every exchange in flight with ErrClosed and makes later ones
// fail at once. Input after Close is ignored.
func (p *Peer) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	for _, x := range p.pending {
		x.deliver(event{kind: evClosed})
	}
	for _, x := range p.byToken {
		x.deliver(event{kind: evClosed})
	}
	clear(p.pending)
	clear(p.byToken)
}

// Do sends req as a confirmable request and waits for its response, which
// the caller owns. req's Type, MessageID and Token are set by the Peer.
// The wait ends with ErrTimeout after RFC 7252's retransmissions (or, once
// the request is acknowledged, after MAX_TRANSMIT_WAIT with no separate
// response), with ErrReset, or with ctx's error.
func (p *Peer) Do(ctx context.Context, req *coap.Message) (*coap.Message, error) {
	req.Type = coap.Confirmable
	return p.exchange(ctx, req, true)
}

// Notify sends m (a notification, or any message the other side expects
// without asking) under the token m carries: confirmable, it waits for the
// acknowledgement and returns ErrReset if the other side rejects it;
// non-confirmable, it returns once sent, and a Reset of it later reaches
// Config.OnReset.
func (p *Peer) Notify(ctx context.Context, m *coap.Message, confirmable bool) error {
	if !confirmable {
		m.Type = coap.NonConfirmable
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return ErrClosed
		}
		p.mid++
		m.MessageID = int32(p.mid)
		p.nons.add(p.mid, m.Token)
		p.mu.Unlock()
		return p.transmit(m)
	}
	m.Type = coap.Confirmable
	_, err := p.exchange(ctx, m, false)
	return err
}

// exchange sends a confirmable message and waits for its acknowledgement
// and, for a request, its response.
func (p *Peer) exchange(ctx context.Context, m *coap.Message, request bool) (*coap.Message, error) {
	x, b, err := p.begin(ctx, m, request)
	if err != nil {
		return nil, err
	}
	defer p.forget(x)

	wire, err := coap.AppendUDP(nil, m)
	if err != nil {
		return nil, err
	}
	p.traceMsg("send", m)
	if err := p.sendRaw(wire); err != nil {
		return nil, err
	}
	timer := time.NewTimer(b.Timeout)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timer.C:
			if !b.Retry() {
				return nil, fmt.Errorf("%w after %d transmissions", ErrTimeout, b.Sends)
			}
			p.mu.Lock()
			p.stats.Retransmissions++
			p.mu.Unlock()
			p.log.Debug("coap: retransmit", "mid", x.mid, "attempt", b.Sends, "next_timeout", b.Timeout)
			p.traceMsg("send", m)
			if err := p.sendRaw(wire); err != nil {
				return nil, err
			}
			timer.Reset(b.Timeout)
		case ev := <-x.events:
			switch ev.kind {
			case evClosed:
				return nil, ErrClosed
			case evReset:
				return nil, ErrReset
			case evResponse:
				return ev.resp, nil
			case evAck:
				if !request {
					return nil, nil
				}
				// A separate response follows (RFC 7252 5.2.2).
				timer.Reset(b.Ack())
			}
		}
	}
}

// begin gives m its message ID (and a request its token), registers the
// exchange, and starts its retransmission schedule (its first timeout
// drawn).
func (p *Peer) begin(ctx context.Context, m *coap.Message, request bool) (*exchange, coap.Backoff, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, coap.Backoff{}, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		// Sent anyway, a request the caller gave up on would still act.
		return nil, coap.Backoff{}, err
	}
	if request {
		var tok [8]byte
		binary.BigEndian.PutUint64(tok[:], p.rand64())
		m.Token = tok[:]
	}
	p.mid++
	m.MessageID = int32(p.mid)
	x := &exchange{mid: p.mid, token: string(m.Token), request: request, events: make(chan event, 4)}
	if p.pending == nil {
		p.pending = make(map[uint16]*exchange)
	}
	p.pending[x.mid] = x
	if request {
		if p.byToken == nil {
			p.byToken = make(map[string]*exchange)
		}
		p.byToken[x.token] = x
	}
	return x, coap.NewBackoff(p.params, float64(p.rand64()>>11)/(1<<53)), nil
}

// forget removes an exchange that ended.
func (p *Peer) forget(x *exchange) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pending[x.mid] == x {
		delete(p.pending, x.mid)
	}
	if x.request && p.byToken[x.token] == x {
		delete(p.byToken, x.token)
	}
	// An idle Peer holds no map: a process with a hundred thousand of
	// them pays for the exchanges in flight only.
	if len(p.pending) == 0 {
		p.pending = nil
	}
	if len(p.byToken) == 0 {
		p.byToken = nil
	}
}

func (x *exchange) deliver(ev event) {
	select {
	case x.events <- ev:
	default: // the exchange has all it needs already
	}
}

// Input handles one datagram from the other side: a response or
// acknowledgement goes to its exchange, a request to the Handler (or, seen
// before, to the cached answer). Junk is counted and dropped; a
// confirmable message nobody expects is reset.
func (p *Peer) Input(b []byte) {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return
	}
	var m coap.Message
	if err := coap.DecodeUDP(b, &m); err != nil {
		p.count(func(s *Stats) { s.Received++; s.Junk++ })
		// A confirmable message whose header is readable gets its Reset
		// (RFC 7252 4.2: a message that cannot be processed).
		if len(b) >= 4 && b[0]>>6 == 1 && coap.Type(b[0]>>4&3) == coap.Confirmable {
			p.sendEmpty(coap.Reset, binary.BigEndian.Uint16(b[2:]))
		}
		return
	}
	p.count(func(s *Stats) { s.Received++ })
	p.traceMsg("recv", &m)
	mid := uint16(m.MessageID)
	switch {
	case m.Type == coap.Acknowledgement || m.Type == coap.Reset:
		p.ackOrReset(&m)
	case m.Code == coap.Empty:
		if m.Type == coap.Confirmable { // a CoAP ping (RFC 7252 4.3)
			p.sendEmpty(coap.Reset, mid)
		}
	case coap.IsResponse(m.Code):
		p.separateResponse(&m)
	default:
		p.request(&m)
	}
}

// InputTruncated hands the Peer the start of a datagram that was longer
// than the receive buffer (the socket's ErrMsgSize): b holds what was
// kept. A request whose header, token and options survive in b is
// answered 4.13 Request Entity Too Large without calling the Handler
// (RFC 7252 5.9.2.9), with Size1 set to size1, the largest body the
// handler accepts when sent block-wise, and a Block1 option that
// suggests the largest block that fits in len(b) (RFC 7959 2.9.3), so
// that a server sends it again block by block. Anything else is dropped.
// It is called from the reader, as Input is.
func (p *Peer) InputTruncated(b []byte, size1 uint32) {
	var m coap.Message
	if coap.DecodeUDP(b, &m) != nil || m.Code == coap.Empty || coap.IsResponse(m.Code) ||
		(m.Type != coap.Confirmable && m.Type != coap.NonConfirmable) {
		p.count(func(s *Stats) { s.Received++; s.Junk++ })
		return
	}
	p.count(func(s *Stats) { s.Received++ })
	p.traceMsg("recv (truncated)", &m)
	if p.answered(uint16(m.MessageID)) {
		return
	}
	// The largest block whose message fits: the payload b could hold (it
	// was filled), less room for the Block1 and Size1 options the next
	// try adds, rounded down to a power of two in 16..1024.
	room := len(m.Payload) - 8
	szx := uint8(0)
	for szx < 6 && 16<<(szx+1) <= room {
		szx++
	}
	resp := coap.Message{Code: coap.RequestEntityTooLarge, Options: coap.Options{
		coap.UintOption(coap.Block1, coap.Block{SZX: szx}.Value()),
		coap.UintOption(coap.Size1, size1),
	}}
	p.respond(&m, resp)
}

// ackOrReset delivers an acknowledgement (empty, or a piggybacked response)
// or a Reset to the exchange with its message ID.
func (p *Peer) ackOrReset(m *coap.Message) {
	mid := uint16(m.MessageID)
	p.mu.Lock()
	x := p.pending[mid]
	if x == nil {
		tok, isNon := p.nons.token(mid)
		reset := m.Type == coap.Reset && isNon && p.onReset != nil
		if reset {
			p.nons.remove(mid) // a duplicated Reset is reported once
		} else {
			p.stats.Junk++
		}
		p.mu.Unlock()
		if reset {
			p.onReset(tok)
		}
		return
	}
	var ev event
	switch {
	case m.Type == coap.Reset:
		ev.kind = evReset
	case m.Code == coap.Empty || !x.request:
		ev.kind = evAck
	case coap.IsResponse(m.Code) && string(m.Token) == x.token:
		ev.kind = evResponse
	default:
		// A piggybacked response matches by message ID and token (RFC 7252
		// 5.3.2); this one answers something else, so the exchange stays
		// pending and keeps retransmitting, and its real answer still
		// finds it.
		p.stats.Junk++
		p.mu.Unlock()
		return
	}
	delete(p.pending, mid)
	p.mu.Unlock()
	if ev.kind == evResponse {
		ev.resp = clone(m)
	}
	x.deliver(ev)
}

// separateResponse delivers a response that came in its own message.
func (p *Peer) separateResponse(m *coap.Message) {
	p.mu.Lock()
	x := p.byToken[string(m.Token)]
	if x != nil {
		delete(p.byToken, x.token)
		delete(p.pending, x.mid)
	}
	dup := x == nil && p.replies.Has(uint16(m.MessageID), coap.DedupAcked)
	if x != nil && m.Type == coap.Confirmable {
		p.remember(uint16(m.MessageID), coap.DedupAcked, nil)
	}
	p.mu.Unlock()
	switch {
	case x != nil:
		if m.Type == coap.Confirmable {
			p.sendEmpty(coap.Acknowledgement, uint16(m.MessageID))
		}
		x.deliver(event{kind: evResponse, resp: clone(m)})
	case dup && m.Type == coap.Confirmable:
		p.count(func(s *Stats) { s.Duplicates++ })
		p.sendEmpty(coap.Acknowledgement, uint16(m.MessageID))
	case p.onResp != nil:
		if !p.onResp(m) {
			p.count(func(s *Stats) { s.Junk++ })
			p.sendEmpty(coap.Reset, uint16(m.MessageID))
		} else if m.Type == coap.Confirmable {
			p.mu.Lock()
			p.remember(uint16(m.MessageID), coap.DedupAcked, nil)
			p.mu.Unlock()
			p.sendEmpty(coap.Acknowledgement, uint16(m.MessageID))
		}
	case m.Type == coap.Confirmable:
		p.count(func(s *Stats) { s.Junk++ })
		p.sendEmpty(coap.Reset, uint16(m.MessageID))
	default:
		p.count(func(s *Stats) { s.Junk++ })
	}
}

// request answers a request from the other side, once per message ID: a
// retransmission gets the answer already given (RFC 7252 4.5).
func (p *Peer) request(m *coap.Message) {
	if p.answered(uint16(m.MessageID)) {
		return
	}
	p.respond(m, p.serve(m))
}

// answered reports whether the request with message ID mid was seen
// before (or the Peer is closed): a duplicate gets the answer it got then,
// from the cache.
func (p *Peer) answered(mid uint16) bool {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return true
	}
	wire, ok := p.replies.Get(mid, coap.DedupAnswered)
	if ok {
		p.stats.Duplicates++
	}
	p.mu.Unlock()
	if ok && wire != nil {
		_ = p.sendRaw(wire)
	}
	return ok
}

// respond sends resp as the answer to request m, and keeps it for m's
// duplicates.
func (p *Peer) respond(m *coap.Message, resp coap.Message) {
	mid := uint16(m.MessageID)
	if resp.Code == coap.Empty {
		resp.Code = coap.InternalServerError
	}
	resp.Token = m.Token
	if m.Type == coap.Confirmable {
		resp.Type, resp.MessageID = coap.Acknowledgement, m.MessageID
	} else {
		resp.Type = coap.NonConfirmable
		p.mu.Lock()
		p.mid++
		resp.MessageID = int32(p.mid)
		p.mu.Unlock()
	}
	wire, err := coap.AppendUDP(nil, &resp)
	if err != nil {
		p.log.Debug("coap: encoding a response", "err", err)
		wire, _ = coap.AppendUDP(nil, &coap.Message{Type: resp.Type, MessageID: resp.MessageID, Token: m.Token, Code: coap.InternalServerError})
	}
	p.mu.Lock()
	if m.Type == coap.Confirmable {
		p.remember(mid, coap.DedupAnswered, wire)
	} else {
		p.remember(mid, coap.DedupAnswered, nil) // a repeated NON is dropped, not answered twice
	}
	p.mu.Unlock()
	p.traceMsg("send", &resp)
	_ = p.sendRaw(wire)
}

// serve runs the handler; a handler that panics is answered 5.00 and
// logged, as net/http does, so one bad request does not end the process.
func (p *Peer) serve(m *coap.Message) coap.Message { return serveSafely(p.handler, p.log, m) }

// serveSafely runs h on m, for a Peer and a Stream: a panic is answered
// 5.00 and logged to log with its stack.
func serveSafely(h Handler, log *slog.Logger, m *coap.Message) (resp coap.Message) {
	defer func() {
		if r := recover(); r != nil {
			log.Error("coap: the handler panicked", "panic", r, "stack", string(debug.Stack()))
			resp = coap.Message{Code: coap.InternalServerError}
		}
	}()
	return h(m)
}

func (p *Peer) sendRaw(b []byte) error {
	p.count(func(s *Stats) { s.Sent++ })
	return p.send(b)
}

func (p *Peer) transmit(m *coap.Message) error {
	wire, err := coap.AppendUDP(nil, m)
	if err != nil {
		return err
	}
	p.traceMsg("send", m)
	return p.sendRaw(wire)
}

// sendEmpty sends an empty ACK or RST.
func (p *Peer) sendEmpty(typ coap.Type, mid uint16) {
	var b [4]byte
	b[0] = 1<<6 | byte(typ)<<4
	binary.BigEndian.PutUint16(b[2:], mid)
	if err := p.sendRaw(b[:]); err != nil {
		p.log.Debug("coap: sending an empty message", "type", typ, "err", err)
	}
}

func (p *Peer) count(f func(*Stats)) {
	p.mu.Lock()
	f(&p.stats)
	p.mu.Unlock()
}

// clone copies a decoded message out of the input buffer.
func clone(m *coap.Message) *coap.Message {
	c := &coap.Message{Code: m.Code, Type: m.Type, MessageID: m.MessageID}
	c.Token = bytes.Clone(m.Token)
	c.Payload = bytes.Clone(m.Payload)
	if len(m.Options) > 0 {
		c.Options = make(coap.Options, len(m.Options))
		for i, o := range m.Options {
			c.Options[i] = coap.Option{ID: o.ID, Value: bytes.Clone(o.Value)}
		}
	}
	return c
}

// traceMsg logs m when the wire trace is on.
func (p *Peer) traceMsg(dir string, m *coap.Message) {
	if !p.trace {
		return
	}
	p.log.LogAttrs(context.Background(), LevelTrace, "coap "+dir,
		slog.String("type", coap.TypeString(m.Type)), slog.Int("mid", int(m.MessageID)),
		slog.String("code", coap.CodeString(m.Code)), slog.String("token", hex.EncodeToString(m.Token)),
		slog.Int("payload", len(m.Payload)))
}

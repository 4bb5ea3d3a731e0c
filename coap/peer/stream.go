package peer

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/tether-iot/tether/coap"
)

// CoAP over a reliable byte stream (RFC 8323: TCP, TLS): what a Peer does
// over datagrams, with the stream's rules. Frames carry no type and no
// message ID, nothing is acknowledged or retransmitted (reliability is the
// transport's), a response is matched to its request by token alone, and
// the stream opens with a CSM each way: ours first, then the other side's,
// which says how large a frame it takes and whether it does BERT.

// Errors of a Stream, besides ErrTimeout and ErrClosed.
var (
	// ErrReleased reports a stream the other side ended with a Release
	// message (RFC 8323 5.5); its diagnostic payload follows in the text.
	ErrReleased = errors.New("coap: peer released the connection")
	// ErrAborted reports a stream ended by an Abort message (RFC 8323
	// 5.6), sent by the other side or by this one on a protocol error (a
	// malformed or oversized frame, a first message that is no CSM, an
	// unknown critical option in a signaling message).
	ErrAborted = errors.New("coap: connection aborted")
	// ErrConnLost reports a stream whose connection failed or ended
	// under it: a read or write error, the other side's end of stream.
	ErrConnLost = errors.New("coap: connection lost")
)

// optBadCSMOption is the option of an Abort that names the CSM option it
// refuses (RFC 8323 5.6.1).
const optBadCSMOption coap.OptionID = 2

// DefaultStreamTimeout is how long a Stream waits for a response when
// StreamConfig.Timeout is zero: RFC 7252's EXCHANGE_LIFETIME (247 s), the
// time an exchange may take end to end with the default parameters.
const DefaultStreamTimeout = 247 * time.Second

// StreamConfig configures a Stream; nil or zero values are the defaults.
type StreamConfig struct {
	// Handler answers the other side's requests; nil answers every
	// request 4.04 Not Found. It runs on the goroutine that calls Input.
	Handler Handler
	// OnResponse is called, on Input's goroutine, with a response that
	// matches no exchange in flight: a notification of an observation
	// this side started (RFC 7641). m and its slices are valid only
	// during the call. True takes it; false, or a nil OnResponse, counts
	// it as junk and drops it: RFC 8323 has no Reset, so an observer
	// cancels by a GET with Observe 1 (RFC 7641 3.6) or by closing.
	OnResponse func(m *coap.Message) bool
	// MaxMessageSize is the largest frame this side takes, which its CSM
	// advertises; a larger one aborts the stream. Zero means
	// coap.DefaultMaxMessageSize (1152); less than 64 is taken as 64.
	MaxMessageSize int
	// BlockWise advertises Block-Wise-Transfer in the CSM: this side
	// takes BERT blocks (RFC 8323 6). The Stream itself does no
	// block-wise transfer; its owner does, within the other side's CSM
	// (PeerCSM).
	BlockWise bool
	// Timeout bounds an exchange (Do, Ping): the wait for its turn to
	// write and for its response or Pong; zero means
	// DefaultStreamTimeout.
	Timeout time.Duration
	// Rand draws tokens; nil means math/rand/v2's own (ChaCha8, seeded
	// by the runtime from the OS), shared.
	Rand *rand.Rand
	// Logger receives odd frames at debug level and the wire trace at
	// LevelTrace; nil means none.
	Logger *slog.Logger
}

// CSM is what a Capabilities and Settings Message says (RFC 8323 5.3).
type CSM struct {
	// MaxMessageSize is the largest frame the sender takes.
	MaxMessageSize int
	// BlockWise reports that the sender takes BERT blocks.
	BlockWise bool
}

// StreamStats counts what a Stream did.
type StreamStats struct {
	Sent, Received uint64 // frames
	Junk           uint64 // frames dropped: unexpected responses, Pongs, unknown signals
}

// Stream is one side of a CoAP-over-TCP (or TLS) connection, RFC 8323: it
// sends this side's requests and matches their responses by token, answers
// the other side's requests with a Handler, and handles the signaling
// messages (CSM, Ping, Pong, Release, Abort). Like a Peer it does no I/O
// of its own: its owner reads the connection and hands the bytes to Input
// (or lets Serve read), and gives NewStream the function that writes.
//
//	st, err := peer.NewStream(conn.Write, &peer.StreamConfig{Handler: h}) // sends our CSM
//	go func() { err := st.Serve(conn.Read); conn.Close() }()              // the reader
//	resp, err := st.Do(ctx, &coap.Message{Code: coap.POST, Options: opts})
//
// Its methods are safe for concurrent use, except that Input and Serve
// must be called from one goroutine at a time. Once the stream ends (Close,
// Release, an Abort either way, a failed write, Serve's read failing) every
// exchange in flight fails with the reason, which Err returns, and the
// owner closes the connection.
type Stream struct {
	send    func([]byte) error
	handler Handler
	onResp  func(*coap.Message) bool
	maxIn   int
	timeout time.Duration
	log     *slog.Logger
	trace   bool

	// Input's own.
	framer *coap.Framer
	m      coap.Message
	first  bool // a frame came: the first must be a CSM

	// wsem lets one frame at a time on the stream; a channel, not a
	// mutex, so that a writer waiting behind a stuck write still hears
	// its context and the stream's end.
	wsem chan struct{}

	mu      sync.Mutex
	rng     *rand.Rand
	byToken map[string]*streamExchange
	peer    CSM
	gotCSM  bool
	csmIn   chan struct{} // closed when the other side's first CSM came
	done    chan struct{} // closed when the stream ends
	err     error         // why it ended
	stats   StreamStats
}

// streamExchange is a request, or a Ping, waiting for its answer.
type streamExchange struct {
	ping bool
	ch   chan *coap.Message // buffered: the reader never blocks on it
}

// NewStream returns a Stream that writes frames with send, after sending
// its CSM, the first frame on a stream (RFC 8323 5.3): the other side may
// send frames of up to StreamConfig.MaxMessageSize, and BERT blocks if
// StreamConfig.BlockWise. send must write the whole frame or fail; calls
// to it never overlap. An error from send is returned, and no Stream.
//
// This side may send requests at once, before the other side's CSM
// arrives (RFC 8323 5.3.1); until then frames are bounded by the default
// Max-Message-Size, 1152 bytes, and a larger one waits for the CSM.
func NewStream(send func([]byte) error, cfg *StreamConfig) (*Stream, error) {
	if cfg == nil {
		cfg = &StreamConfig{}
	}
	s := &Stream{
		send:    send,
		handler: cfg.Handler,
		onResp:  cfg.OnResponse,
		maxIn:   cfg.MaxMessageSize,
		timeout: cfg.Timeout,
		log:     cfg.Logger,
		rng:     cfg.Rand,
		byToken: make(map[string]*streamExchange),
		peer:    CSM{MaxMessageSize: coap.DefaultMaxMessageSize},
		csmIn:   make(chan struct{}),
		wsem:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	if s.maxIn == 0 {
		s.maxIn = coap.DefaultMaxMessageSize
	}
	s.maxIn = max(s.maxIn, 64)
	if s.timeout <= 0 {
		s.timeout = DefaultStreamTimeout
	}
	if s.log == nil {
		s.log = discard
	}
	if s.handler == nil {
		s.handler = func(*coap.Message) coap.Message { return coap.Message{Code: coap.NotFound} }
	}
	s.trace = s.log.Enabled(context.Background(), LevelTrace)
	s.framer = coap.NewFramer(s.maxIn)

	csm := &coap.Message{Code: coap.CSM, Options: coap.Options{coap.UintOption(coap.MaxMessageSize, uint32(s.maxIn))}}
	if cfg.BlockWise {
		csm.Options = append(csm.Options, coap.Option{ID: coap.BlockWiseTransfer})
	}
	if err := s.writeMsg(context.Background(), csm); err != nil {
		return nil, err
	}
	return s, nil
}

// Stats returns the counters so far.
func (s *Stream) Stats() StreamStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// PeerCSM returns what the other side's CSMs said so far, and whether one
// came; before it, RFC 8323's defaults (1152 bytes, no BERT).
func (s *Stream) PeerCSM() (CSM, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peer, s.gotCSM
}

// WaitCSM waits for the other side's CSM and returns it; it fails with
// ctx's error, or with Err's once the stream ended.
func (s *Stream) WaitCSM(ctx context.Context) (CSM, error) {
	select {
	case <-s.csmIn:
		c, _ := s.PeerCSM()
		return c, nil
	case <-s.done:
		return CSM{}, s.Err()
	case <-ctx.Done():
		return CSM{}, ctx.Err()
	}
}

// Err returns why the stream ended, nil while it has not: ErrClosed after
// Close or Release, else an error matching ErrReleased, ErrAborted or
// ErrConnLost.
func (s *Stream) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close ends the stream: every exchange in flight ends with ErrClosed, and
// later ones fail at once. It sends nothing (Release does); the owner
// closes the connection.
func (s *Stream) Close() { s.end(ErrClosed) }

// Release ends the stream as Close does, after telling the other side
// with a Release message (RFC 8323 5.5), whose error it returns.
func (s *Stream) Release() error {
	if err := s.Err(); err != nil {
		return err
	}
	err := s.writeMsg(context.Background(), &coap.Message{Code: coap.Release})
	s.end(ErrClosed)
	return err
}

// end ends the stream for reason, once.
func (s *Stream) end(reason error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return
	}
	s.err = reason
	close(s.done)
	clear(s.byToken)
}

// Do sends req and waits for the response with its token, which the caller
// owns. req's Token is set by the Stream; its Type and MessageID mean
// nothing over a stream and are not sent. The wait ends with ErrTimeout
// after StreamConfig.Timeout, with ctx's error, or with Err's when the
// stream ends. A request larger than the other side's Max-Message-Size is
// not sent: the error matches coap.ErrTooLarge.
func (s *Stream) Do(ctx context.Context, req *coap.Message) (*coap.Message, error) {
	return s.exchange(ctx, req, false)
}

// Ping sends a Ping and waits for its Pong (RFC 8323 5.4), as Do waits for
// a response: a liveness check of the connection and of the other side.
func (s *Stream) Ping(ctx context.Context) error {
	_, err := s.exchange(ctx, &coap.Message{Code: coap.Ping}, true)
	return err
}

func (s *Stream) exchange(ctx context.Context, m *coap.Message, ping bool) (*coap.Message, error) {
	tok, x, err := s.begin(ctx, ping)
	if err != nil {
		return nil, err
	}
	defer s.forget(tok, x)
	m.Token = []byte(tok)
	// Timeout bounds the whole exchange: the wait for the turn to write
	// (behind a write that does not end) as well as the response's.
	tctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	timedOut := func(err error) error {
		if ctx.Err() == nil && tctx.Err() != nil && !errors.Is(err, ErrTimeout) {
			return fmt.Errorf("%w within %v: %w", ErrTimeout, s.timeout, err)
		}
		return err
	}
	if err := s.sendWithin(tctx, m); err != nil {
		return nil, timedOut(err)
	}
	select {
	case resp := <-x.ch:
		return resp, nil
	case <-tctx.Done():
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w within %v", ErrTimeout, s.timeout)
	case <-s.done:
		select {
		case resp := <-x.ch: // it came just before the end
			return resp, nil
		default:
			return nil, s.Err()
		}
	}
}

// begin draws a token no exchange in flight uses and registers the
// exchange under it.
func (s *Stream) begin(ctx context.Context, ping bool) (string, *streamExchange, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return "", nil, s.err
	}
	if err := ctx.Err(); err != nil {
		return "", nil, err // sent anyway, a request the caller gave up on would still act
	}
	var b [8]byte
	for {
		binary.BigEndian.PutUint64(b[:], draw(s.rng))
		if _, used := s.byToken[string(b[:])]; !used {
			break
		}
	}
	x := &streamExchange{ping: ping, ch: make(chan *coap.Message, 1)}
	s.byToken[string(b[:])] = x
	return string(b[:]), x, nil
}

func (s *Stream) forget(tok string, x *streamExchange) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byToken[tok] == x {
		delete(s.byToken, tok)
	}
}

// Notify sends m (a notification, or any message the other side expects
// without asking) under the token m carries, and returns once it is
// written. confirmable is accepted for the Peer's signature and means
// nothing here: over a stream every message is delivered or the
// connection fails (RFC 8323 2), and there is no Reset to reject one.
func (s *Stream) Notify(ctx context.Context, m *coap.Message, confirmable bool) error {
	if err := s.Err(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.sendWithin(ctx, m)
}

// sendWithin writes m, waiting for the other side's CSM first if m is
// larger than what RFC 8323 lets us assume before it.
func (s *Stream) sendWithin(ctx context.Context, m *coap.Message) error {
	wire, err := coap.AppendTCP(nil, m)
	if err != nil {
		return err
	}
	peerMax, got := s.peerMax()
	if len(wire) > peerMax && !got {
		wctx, cancel := context.WithTimeout(ctx, s.timeout)
		_, err := s.WaitCSM(wctx)
		cancel()
		if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			// Our Timeout, not the caller's deadline: ErrTimeout, as
			// for a response that never comes.
			err = fmt.Errorf("%w within %v: %w", ErrTimeout, s.timeout, err)
		}
		if err != nil {
			return fmt.Errorf("waiting for the peer's CSM to send %d bytes: %w", len(wire), err)
		}
		peerMax, _ = s.peerMax()
	}
	if len(wire) > peerMax {
		return fmt.Errorf("%w: a frame of %d bytes, the peer's Max-Message-Size is %d", coap.ErrTooLarge, len(wire), peerMax)
	}
	s.traceMsg("send", m)
	return s.write(ctx, wire)
}

func (s *Stream) peerMax() (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peer.MaxMessageSize, s.gotCSM
}

// writeMsg encodes and writes a frame of our own making (signals, and
// responses already checked against the other side's limit).
func (s *Stream) writeMsg(ctx context.Context, m *coap.Message) error {
	wire, err := coap.AppendTCP(nil, m)
	if err != nil {
		return err
	}
	s.traceMsg("send", m)
	return s.write(ctx, wire)
}

// write writes one frame. A failed write leaves the stream with part of a
// frame, perhaps, so it ends the stream. Waiting for another frame's write
// to finish ends with ctx or with the stream; a write under way is the
// owner's to bound (a deadline on the connection, or closing it).
func (s *Stream) write(ctx context.Context, wire []byte) error {
	select {
	case s.wsem <- struct{}{}:
	case <-s.done:
		return s.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.wsem }()
	if err := s.Err(); err != nil {
		return err
	}
	s.count(func(st *StreamStats) { st.Sent++ })
	if err := s.send(wire); err != nil {
		err = fmt.Errorf("%w: %w", ErrConnLost, err)
		s.end(err)
		return err
	}
	return nil
}

// Input takes bytes read from the connection, any amount, and handles the
// frames they complete: a response goes to its exchange, a request to the
// Handler (whose answer is written before Input returns), a signal is
// acted on. It returns nil while the stream goes on, and Err's error once
// it ended, the other side's Release or Abort, or an Abort of this side's
// for a protocol error; the owner then closes the connection.
func (s *Stream) Input(b []byte) error {
	if err := s.Err(); err != nil {
		return err
	}
	for {
		if err := s.drain(); err != nil {
			return err
		}
		if len(b) == 0 {
			return nil
		}
		n := copy(s.framer.Space(), b)
		s.framer.Advance(n)
		b = b[n:]
	}
}

// Serve reads the connection with read (conn.Read, a socket's Receive)
// straight into the Stream's buffer and handles what comes, as Input does,
// until the stream ends or read fails; the stream then ends too, and Serve
// returns why (Err). The end of the other side's stream, io.EOF or a read
// of no bytes and no error (how a sock.Socket's Receive reports it), is
// ErrConnLost wrapping io.EOF; a read timeout ends the stream like any
// other error, so an owner that wants idle reads to go on loops over
// Input itself.
func (s *Stream) Serve(read func([]byte) (int, error)) error {
	for {
		if err := s.drain(); err != nil {
			return err
		}
		if err := s.Err(); err != nil {
			return err
		}
		n, err := read(s.framer.Space())
		if n > 0 {
			s.framer.Advance(n)
		} else if err == nil {
			err = io.EOF
		}
		if err != nil {
			if n > 0 {
				if derr := s.drain(); derr != nil {
					return derr
				}
			}
			s.end(fmt.Errorf("%w: %w", ErrConnLost, err))
			return s.Err()
		}
	}
}

// drain handles every whole frame buffered.
func (s *Stream) drain() error {
	for {
		ok, err := s.framer.Next(&s.m)
		if err != nil {
			s.count(func(st *StreamStats) { st.Received++ })
			return s.abort(0, err.Error())
		}
		if !ok {
			return nil
		}
		if err := s.frame(&s.m); err != nil {
			return err
		}
	}
}

// frame handles one frame; m aliases the buffer until it returns.
func (s *Stream) frame(m *coap.Message) error {
	s.count(func(st *StreamStats) { st.Received++ })
	s.traceMsg("recv", m)
	if !s.first {
		s.first = true
		// A Release or an Abort may come first: the end needs no CSM.
		if m.Code != coap.CSM && m.Code != coap.Release && m.Code != coap.Abort {
			return s.abort(0, "the first message was "+coap.CodeString(m.Code)+", not a CSM")
		}
	}
	switch {
	case m.Code == coap.Empty:
		// Ignored (RFC 8323 3.4): a keepalive of sorts.
	case m.Code>>5 == 7:
		return s.signal(m)
	case coap.IsResponse(m.Code):
		s.response(m)
	case m.Code>>5 == 0:
		return s.request(m)
	default:
		s.junk("a frame of a reserved class", m)
	}
	return nil
}

// signal acts on a signaling message (RFC 8323 5).
func (s *Stream) signal(m *coap.Message) error {
	// Every option these signals define is elective (even); an odd one is
	// critical and unknown, a connection error (RFC 8323 5.3, 5.1).
	for _, o := range m.Options {
		if o.ID&1 == 1 {
			bad := 0
			if m.Code == coap.CSM {
				bad = int(o.ID)
			}
			return s.abort(bad, fmt.Sprintf("unknown critical option %d in %s", o.ID, coap.CodeString(m.Code)))
		}
	}
	switch m.Code {
	case coap.CSM:
		s.mu.Lock()
		if v, ok := coap.Uint(m.Options, coap.MaxMessageSize); ok && v >= 64 {
			// Beyond a 32-bit int, int's largest, not a negative limit.
			s.peer.MaxMessageSize = int(min(uint64(v), math.MaxInt))
		}
		if _, ok := coap.Bytes(m.Options, coap.BlockWiseTransfer); ok {
			s.peer.BlockWise = true
		}
		if !s.gotCSM {
			s.gotCSM = true
			close(s.csmIn)
		}
		s.mu.Unlock()
	case coap.Ping:
		if err := s.writeMsg(context.Background(), &coap.Message{Code: coap.Pong, Token: m.Token}); err != nil {
			return err
		}
	case coap.Pong:
		s.mu.Lock()
		x := s.byToken[string(m.Token)]
		if x != nil && x.ping {
			delete(s.byToken, string(m.Token))
		}
		s.mu.Unlock()
		if x == nil || !x.ping {
			s.junk("a Pong for no Ping", m)
			return nil
		}
		x.ch <- nil
	case coap.Release:
		s.end(fmt.Errorf("%w: %q", ErrReleased, m.Payload))
		return s.Err()
	case coap.Abort:
		s.end(fmt.Errorf("%w by the peer: %q", ErrAborted, m.Payload))
		return s.Err()
	default:
		s.junk("an unknown signal", m)
	}
	return nil
}

// abort sends an Abort with diag as its diagnostic payload (and, for an
// option of a CSM, Bad-CSM-Option) and ends the stream.
func (s *Stream) abort(badOption int, diag string) error {
	a := &coap.Message{Code: coap.Abort, Payload: []byte(diag)}
	if badOption > 0 {
		a.Options = coap.Options{coap.UintOption(optBadCSMOption, uint32(badOption))}
	}
	s.log.Debug("coap: aborting the connection", "why", diag)
	_ = s.writeMsg(context.Background(), a)
	s.end(fmt.Errorf("%w: %s", ErrAborted, diag))
	return s.Err()
}

// response hands a response to the exchange with its token, or to
// OnResponse.
func (s *Stream) response(m *coap.Message) {
	s.mu.Lock()
	x := s.byToken[string(m.Token)]
	if x != nil && !x.ping {
		delete(s.byToken, string(m.Token))
	}
	s.mu.Unlock()
	switch {
	case x != nil && !x.ping:
		x.ch <- clone(m)
	case s.onResp != nil && s.onResp(m):
	default:
		s.junk("a response that matches no request", m)
	}
}

// request answers a request of the other side's. An answer larger than
// the other side takes is replaced by a bare 4.13, as coap/fileserver
// does, so that the client hears something.
func (s *Stream) request(m *coap.Message) error {
	resp := s.serve(m)
	if resp.Code == coap.Empty {
		resp.Code = coap.InternalServerError
	}
	resp.Token = m.Token
	wire, err := coap.AppendTCP(nil, &resp)
	if err != nil {
		s.log.Debug("coap: encoding a response", "err", err)
		resp = coap.Message{Code: coap.InternalServerError, Token: m.Token}
		wire, _ = coap.AppendTCP(nil, &resp)
	}
	if peerMax, _ := s.peerMax(); len(wire) > peerMax {
		s.log.Debug("coap: a response larger than the peer takes", "bytes", len(wire), "max", peerMax)
		resp = coap.Message{Code: coap.RequestEntityTooLarge, Token: m.Token}
		wire, _ = coap.AppendTCP(nil, &resp)
	}
	s.traceMsg("send", &resp)
	return s.write(context.Background(), wire)
}

// serve runs the handler; a panic is answered 5.00 and logged.
func (s *Stream) serve(m *coap.Message) coap.Message { return serveSafely(s.handler, s.log, m) }

func (s *Stream) junk(what string, m *coap.Message) {
	s.count(func(st *StreamStats) { st.Junk++ })
	s.log.Debug("coap: dropped "+what, "code", coap.CodeString(m.Code), "token", hex.EncodeToString(m.Token))
}

func (s *Stream) count(f func(*StreamStats)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}

// traceMsg logs m when the wire trace is on.
func (s *Stream) traceMsg(dir string, m *coap.Message) {
	if !s.trace {
		return
	}
	s.log.LogAttrs(context.Background(), LevelTrace, "coap+tcp "+dir,
		slog.String("code", coap.CodeString(m.Code)), slog.String("token", hex.EncodeToString(m.Token)),
		slog.Int("payload", len(m.Payload)))
}

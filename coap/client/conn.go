// Package client is tether's CoAP client: an exchange engine that runs over
// any sock.Socket (a netsock or simnet socket, a modem driver), never over
// net.Conn directly, so a custom socket carries CoAP too.
//
// # Usage
//
// The caller owns the socket: it connects it, and shuts it down or closes
// it. A Conn adds CoAP on top:
//
//	s, _ := netsock.New("udp", nil)
//	_ = s.Connect(ctx, "coap.example", "5683")
//	c, _ := client.NewUDP(s, nil)
//	err := c.GetBlocks(ctx, client.BlockRequest{Path: "/fw.bin", BlockSize: 1024},
//		func(ch client.Chunk) error { _, err := f.WriteAt(ch.Payload, ch.Offset); return err })
//
// Over UDP, confirmable requests are retransmitted on RFC 7252's schedule:
// the first timeout is drawn from [ACK_TIMEOUT, ACK_TIMEOUT*ACK_RANDOM_FACTOR],
// each next one doubles, MAX_RETRANSMIT times; separate responses are
// acknowledged, duplicates re-acknowledged, unexpected confirmable messages
// (and CoAP pings) answered with Reset. Over TCP (NewTCP), the CSM exchange
// comes first and the peer's Max-Message-Size is honoured; there is no
// retransmission, and pings are answered with pongs.
//
// A Conn runs one exchange at a time (NSTART 1) and is not safe for
// concurrent use. Cancelling the context abandons the exchange; it is
// noticed within 100 ms, or at once when the socket is shut down or closed.
// A response aliases the Conn's buffers and is valid until the next call.
//
// client depends on packages coap and sock only.
package client

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/sock"
)

// Config configures a Conn; the zero value (or nil) is RFC 7252's defaults.
type Config struct {
	// Params are the transmission parameters; zero means
	// coap.DefaultParams.
	Params coap.Params
	// MaxMessageSize is the largest message this side accepts, advertised
	// in the CSM over TCP; zero means 17408 over TCP (16 KiB BERT
	// payloads) and 1280 over UDP (a 1024-byte block and headers).
	MaxMessageSize int
	// NoBERT stops a TCP Conn from offering and using BERT.
	NoBERT bool
	// Rand draws tokens, message IDs and initial timeouts; nil means a
	// generator seeded from crypto/rand. Tests give a seeded one.
	Rand *rand.Rand
	// Logger receives debug records of retransmissions and odd messages;
	// nil means none.
	Logger *slog.Logger
	// QBlock are the congestion control parameters of Q-Block2 transfers
	// (BlockRequest.QBlock); zero fields are RFC 9177's defaults. They
	// should be the server's: MaxPayloads is when the client says
	// Continue.
	QBlock coap.NonParams
}

// Errors of an exchange. Timeouts match sock.ErrTimeout (and so
// os.ErrDeadlineExceeded and context.DeadlineExceeded).
var (
	// ErrReset reports that the peer answered with a Reset message.
	ErrReset = errors.New("coap: peer reset the exchange")
	// ErrReleased reports a TCP peer's Release or Abort signal.
	ErrReleased = errors.New("coap: peer released the connection")
	// ErrPeerClosed reports a TCP peer that closed the connection.
	ErrPeerClosed = errors.New("coap: peer closed the connection")
	// ErrTooLarge reports a request larger than the peer accepts. It is
	// permanent (sock.IsPermanent).
	ErrTooLarge = sock.Permanent(errors.New("coap: request larger than the peer's Max-Message-Size"))
)

// ackedIDs is how many confirmable responses a Conn remembers having
// acknowledged, so that their retransmissions are acknowledged again
// rather than reset: enough for a window's worth over several
// retransmission intervals.
const ackedIDs = 256

// cancelPoll bounds each wait, so a cancelled context is noticed even while
// the socket stays open.
const cancelPoll = 100 * time.Millisecond

// Conn is a CoAP client endpoint over one connected socket.
type Conn struct {
	s      sock.Socket
	stream bool
	params coap.Params
	non    coap.NonParams // with defaults
	rng    *rand.Rand
	log    *slog.Logger
	trace  bool // the logger takes LevelTrace: every message is logged
	max    int  // the largest message we accept

	// UDP state.
	mid  uint16
	acks *coap.Dedup // confirmable responses acknowledged, to acknowledge their copies again

	// TCP state.
	peerMax  int  // the peer's Max-Message-Size
	peerBERT bool // the peer offered BERT, and we use it
	framer   *coap.Framer

	// The block-wise transfer's Uri-Host and Uri-Query.
	host  []byte
	query [][]byte

	// Buffers reused by every exchange.
	req     coap.Message
	resp    coap.Message
	tx      []byte
	optBuf  []byte
	token   [8]byte
	rx      []byte
	scratch coap.Message

	stats Stats
}

// Stats counts what a Conn did.
type Stats struct {
	Requests        uint64 // exchanges started
	Retransmissions uint64 // confirmable requests sent again
	Junk            uint64 // datagrams or frames that were malformed or unexpected
	Duplicates      uint64 // duplicate separate responses re-acknowledged
}

// Stats returns the counters so far.
func (c *Conn) Stats() Stats { return c.stats }

func newConn(s sock.Socket, cfg *Config, stream bool) (*Conn, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	p := cfg.Params
	if p == (coap.Params{}) {
		p = coap.DefaultParams
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.QBlock.Validate(); err != nil {
		return nil, err
	}
	c := &Conn{s: s, stream: stream, params: p, non: cfg.QBlock.WithDefaults(), rng: cfg.Rand, log: cfg.Logger, max: cfg.MaxMessageSize}
	if c.rng == nil {
		var seed [32]byte
		crand.Read(seed[:])
		c.rng = rand.New(rand.NewChaCha8(seed))
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.trace = c.log.Enabled(context.Background(), LevelTrace)
	if c.max == 0 {
		c.max = 1280
		if stream {
			c.max = 17408
		}
	}
	if c.max < 64 {
		return nil, fmt.Errorf("coap: MaxMessageSize %d is too small", c.max)
	}
	c.mid = uint16(c.rng.Uint32())
	c.acks = coap.NewDedup(ackedIDs)
	c.req.Options = make(coap.Options, 0, 16)
	c.resp.Options = make(coap.Options, 0, 16)
	c.scratch.Options = make(coap.Options, 0, 16)
	c.optBuf = make([]byte, 0, 512)
	c.tx = make([]byte, 0, 512)
	c.rx = make([]byte, c.max+1) // one more, so an oversized datagram shows
	return c, nil
}

// NewUDP returns a Conn over a connected datagram socket.
func NewUDP(s sock.Socket, cfg *Config) (*Conn, error) {
	return newConn(s, cfg, false)
}

// newToken fills the Conn's token with fresh random bytes.
func (c *Conn) newToken() []byte {
	v := c.rng.Uint64()
	for i := range c.token {
		c.token[i] = byte(v >> (8 * i))
	}
	return c.token[:]
}

// Do runs one request and waits for its response, which aliases the Conn's
// buffers and is valid until the next call. req's Type and MessageID are
// set by the Conn; a nil or empty Token gets a random one.
func (c *Conn) Do(ctx context.Context, req *coap.Message) (*coap.Message, error) {
	if len(req.Token) == 0 {
		req.Token = c.newToken()
	}
	c.stats.Requests++
	if c.stream {
		return c.doTCP(ctx, req)
	}
	return c.doUDP(ctx, req)
}

// ResponseError is a response whose code is not the one the request needs.
// It classifies itself for whoever retries: Permanent and RetryAfter.
type ResponseError struct {
	Code       coap.Code
	Diagnostic string        // the payload of an error response, if any
	MaxAge     time.Duration // the Max-Age option; 60 s when absent (RFC 7252 5.10.5)
}

// responseError describes an error response; resp aliases the Conn's
// buffers, so the error copies what it keeps.
func responseError(resp *coap.Message) *ResponseError {
	e := &ResponseError{Code: resp.Code, Diagnostic: diagnostic(resp), MaxAge: 60 * time.Second}
	if v, ok := coap.Uint(resp.Options, coap.MaxAge); ok {
		e.MaxAge = time.Duration(v) * time.Second
	}
	return e
}

// Error implements error: the code in CoAP's dotted notation and its name,
// "coap: 4.04 Not Found".
func (e *ResponseError) Error() string {
	s := "coap: " + coap.CodeString(e.Code)
	if e.Diagnostic != "" {
		s += fmt.Sprintf(": %q", e.Diagnostic)
	}
	return s
}

// Permanent reports whether asking again cannot help: every client error
// (4.xx) but 4.29 Too Many Requests, and the server errors that describe
// the server rather than a moment (5.01 Not Implemented, 5.05 Proxying Not
// Supported). 5.00, 5.02, 5.03, 5.04 and 4.29 are transient.
func (e *ResponseError) Permanent() bool {
	switch e.Code {
	case coap.TooManyRequests, coap.InternalServerError, coap.BadGateway, coap.ServiceUnavailable, coap.GatewayTimeout:
		return false
	}
	return true
}

// RetryAfter is how long the server asked the client to wait before it
// tries again: the Max-Age of a 5.03 Service Unavailable or a 4.29 Too Many
// Requests (RFC 7252 5.9.3.4, RFC 8516); zero for any other code.
func (e *ResponseError) RetryAfter() time.Duration {
	if e.Code == coap.ServiceUnavailable || e.Code == coap.TooManyRequests {
		return e.MaxAge
	}
	return 0
}

package peer_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/peer"
)

// sent is one datagram a Peer sent, decoded, and when (bubble time).
type sent struct {
	at time.Time
	b  []byte
	m  coap.Message
}

// wire is the other side of a Peer the test drives by hand: it records
// what the Peer sends, and the test answers through Input.
type wire struct {
	out chan sent
}

func (w *wire) send(b []byte) error {
	w.out <- sent{at: time.Now(), b: bytes.Clone(b)}
	return nil
}

// next returns the oldest datagram the Peer sent and the test has not read,
// once every goroutine of the bubble has settled; none is a failure.
func (w *wire) next(t *testing.T) sent {
	t.Helper()
	synctest.Wait()
	select {
	case s := <-w.out:
		if err := coap.DecodeUDP(s.b, &s.m); err != nil {
			t.Fatalf("the peer sent a malformed datagram % x: %v", s.b, err)
		}
		return s
	default:
		t.Fatal("the peer sent nothing")
		panic("unreachable")
	}
}

// none fails the test if the Peer sent anything the test has not read.
func (w *wire) none(t *testing.T) {
	t.Helper()
	synctest.Wait()
	select {
	case s := <-w.out:
		t.Fatalf("the peer sent % x, want nothing", s.b)
	default:
	}
}

// all returns every datagram sent and not read yet.
func (w *wire) all(t *testing.T) []sent {
	t.Helper()
	var out []sent
	for {
		synctest.Wait()
		select {
		case s := <-w.out:
			if err := coap.DecodeUDP(s.b, &s.m); err != nil {
				t.Fatalf("the peer sent a malformed datagram % x: %v", s.b, err)
			}
			out = append(out, s)
		default:
			return out
		}
	}
}

// newPeer returns a Peer, closed when the test ends, and the wire it sends
// on. Its random draws are seeded.
func newPeer(t *testing.T, cfg *peer.Config) (*peer.Peer, *wire) {
	t.Helper()
	c := peer.Config{}
	if cfg != nil {
		c = *cfg
	}
	if c.Rand == nil {
		c.Rand = rand.New(rand.NewPCG(1, 2))
	}
	w := &wire{out: make(chan sent, 256)}
	p := peer.New(w.send, &c)
	t.Cleanup(p.Close)
	return p, w
}

// in hands the Peer the datagram of m, then overwrites the buffer as a
// reader reusing it would: whatever the Peer kept must be its own copy.
func in(t *testing.T, p *peer.Peer, m coap.Message) {
	t.Helper()
	b, err := coap.AppendUDP(nil, &m)
	if err != nil {
		t.Fatalf("encoding %v: %v", m, err)
	}
	inRaw(p, b)
}

func inRaw(p *peer.Peer, b []byte) {
	p.Input(b)
	for i := range b {
		b[i] = 0xee
	}
}

// msg builds a message for in.
func msg(typ coap.Type, code coap.Code, mid int32, token, payload string) coap.Message {
	m := coap.Message{Type: typ, Code: code, MessageID: mid}
	if token != "" {
		m.Token = []byte(token)
	}
	if payload != "" {
		m.Payload = []byte(payload)
	}
	return m
}

// result is how an exchange ended, and when (bubble time).
type result struct {
	resp *coap.Message
	err  error
	at   time.Time
}

// startDo runs p.Do on its own goroutine.
func startDo(ctx context.Context, p *peer.Peer, req *coap.Message) <-chan result {
	c := make(chan result, 1)
	go func() {
		resp, err := p.Do(ctx, req)
		c <- result{resp, err, time.Now()}
	}()
	return c
}

// startNotify runs p.Notify on its own goroutine.
func startNotify(ctx context.Context, p *peer.Peer, m *coap.Message, confirmable bool) <-chan result {
	c := make(chan result, 1)
	go func() {
		err := p.Notify(ctx, m, confirmable)
		c <- result{nil, err, time.Now()}
	}()
	return c
}

// waiting fails the test if the exchange has ended.
func waiting(t *testing.T, c <-chan result) {
	t.Helper()
	synctest.Wait()
	select {
	case r := <-c:
		t.Fatalf("the exchange ended (%v, %v); want it still waiting", r.resp, r.err)
	default:
	}
}

// ended returns how the exchange ended, without letting time pass.
func ended(t *testing.T, c <-chan result) result {
	t.Helper()
	synctest.Wait()
	select {
	case r := <-c:
		return r
	default:
		t.Fatal("the exchange is still waiting")
		panic("unreachable")
	}
}

// settled fails the test if p still tracks an exchange.
func settled(t *testing.T, p *peer.Peer) {
	t.Helper()
	if pending, byToken := p.InFlight(); pending != 0 || byToken != 0 {
		t.Errorf("%d exchanges pending by message ID, %d by token; want none", pending, byToken)
	}
}

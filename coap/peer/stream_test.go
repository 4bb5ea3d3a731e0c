package peer_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/peer"
)

// frames is the other side of a Stream the test drives by hand: it keeps
// every frame the Stream writes, and the test answers through Input.
type frames struct {
	out chan []byte
}

func (f *frames) send(b []byte) error {
	f.out <- bytes.Clone(b)
	return nil
}

// next returns the oldest frame the Stream wrote and the test has not
// read, once the bubble settled; none is a failure. Each write must be
// one whole frame.
func (f *frames) next(t *testing.T) coap.Message {
	t.Helper()
	synctest.Wait()
	select {
	case b := <-f.out:
		var m coap.Message
		n, err := coap.DecodeTCP(b, &m, 1<<20)
		if err != nil || n != len(b) {
			t.Fatalf("the stream wrote % x: %d of %d bytes a frame, %v", b, n, len(b), err)
		}
		return m
	default:
		t.Fatal("the stream wrote nothing")
		panic("unreachable")
	}
}

// none fails the test if the Stream wrote a frame the test has not read.
func (f *frames) none(t *testing.T) {
	t.Helper()
	synctest.Wait()
	select {
	case b := <-f.out:
		t.Fatalf("the stream wrote % x, want nothing", b)
	default:
	}
}

// newStream returns a Stream (closed when the test ends) after reading
// its CSM, and the frames it writes. Its tokens are seeded.
func newStream(t *testing.T, cfg *peer.StreamConfig) (*peer.Stream, *frames) {
	t.Helper()
	c := peer.StreamConfig{}
	if cfg != nil {
		c = *cfg
	}
	if c.Rand == nil {
		c.Rand = rand.New(rand.NewPCG(1, 2))
	}
	f := &frames{out: make(chan []byte, 256)}
	s, err := peer.NewStream(f.send, &c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if m := f.next(t); m.Code != coap.CSM {
		t.Fatalf("the first frame is %s, want a CSM", coap.CodeString(m.Code))
	}
	return s, f
}

// tcp encodes m as a frame.
func tcp(t *testing.T, m coap.Message) []byte {
	t.Helper()
	b, err := coap.AppendTCP(nil, &m)
	if err != nil {
		t.Fatalf("encoding %v: %v", m, err)
	}
	return b
}

// feed hands the Stream b, then overwrites it as a reader reusing its
// buffer would: whatever the Stream kept must be its own copy.
func feed(s *peer.Stream, b []byte) error {
	err := s.Input(b)
	for i := range b {
		b[i] = 0xee
	}
	return err
}

// csm is the other side's CSM.
func csm(t *testing.T, max uint32, bert bool) []byte {
	m := coap.Message{Code: coap.CSM, Options: coap.Options{coap.UintOption(coap.MaxMessageSize, max)}}
	if bert {
		m.Options = append(m.Options, coap.Option{ID: coap.BlockWiseTransfer})
	}
	return tcp(t, m)
}

// startStreamDo runs s.Do on its own goroutine.
func startStreamDo(ctx context.Context, s *peer.Stream, req *coap.Message) <-chan result {
	c := make(chan result, 1)
	go func() {
		resp, err := s.Do(ctx, req)
		c <- result{resp, err, time.Now()}
	}()
	return c
}

// TestStreamCSM: the first frame a Stream writes is its CSM, with the
// Max-Message-Size it takes and Block-Wise-Transfer when it does BERT.
func TestStreamCSM(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     peer.StreamConfig
		max     uint32
		bert    bool
		options int
	}{
		{"defaults", peer.StreamConfig{}, coap.DefaultMaxMessageSize, false, 1},
		{"larger, BERT", peer.StreamConfig{MaxMessageSize: 8192, BlockWise: true}, 8192, true, 2},
		{"too small", peer.StreamConfig{MaxMessageSize: 10}, 64, false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &frames{out: make(chan []byte, 4)}
			s, err := peer.NewStream(f.send, &tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var m coap.Message
			b := <-f.out
			if _, err := coap.DecodeTCP(b, &m, 1<<20); err != nil || m.Code != coap.CSM {
				t.Fatalf("first frame % x: %v", b, err)
			}
			max, _ := coap.Uint(m.Options, coap.MaxMessageSize)
			_, bert := coap.Bytes(m.Options, coap.BlockWiseTransfer)
			if max != tc.max || bert != tc.bert || len(m.Options) != tc.options || len(m.Token) != 0 {
				t.Errorf("CSM: Max-Message-Size %d, BERT %v, %d options, token %x; want %d, %v, %d, none",
					max, bert, len(m.Options), m.Token, tc.max, tc.bert, tc.options)
			}
		})
	}
	t.Run("a failed write", func(t *testing.T) {
		boom := errors.New("boom")
		if s, err := peer.NewStream(func([]byte) error { return boom }, nil); s != nil || !errors.Is(err, boom) {
			t.Errorf("NewStream over a failing writer: %v, %v; want no Stream and the write's error", s, err)
		}
	})
}

// TestStreamDo: a request is matched to its response by token alone, and
// every other way the wait can end ends it with the right error.
func TestStreamDo(t *testing.T) {
	tests := []struct {
		name string
		// answer is what the other side sends once the request is out; nil
		// frames mean nothing.
		answer func(t *testing.T, s *peer.Stream, req coap.Message) []byte
		act    func(s *peer.Stream, cancel func())
		err    error
		code   coap.Code
	}{
		{"response", func(t *testing.T, _ *peer.Stream, req coap.Message) []byte {
			return tcp(t, coap.Message{Code: coap.Content, Token: req.Token, Payload: []byte("22.5")})
		}, nil, nil, coap.Content},
		{"another token, then the response", func(t *testing.T, _ *peer.Stream, req coap.Message) []byte {
			other := tcp(t, coap.Message{Code: coap.Content, Token: []byte("other"), Payload: []byte("no")})
			return append(other, tcp(t, coap.Message{Code: coap.Created, Token: req.Token})...)
		}, nil, nil, coap.Created},
		{"a Pong with its token is no response", func(t *testing.T, _ *peer.Stream, req coap.Message) []byte {
			return tcp(t, coap.Message{Code: coap.Pong, Token: req.Token})
		}, nil, peer.ErrTimeout, 0},
		{"nothing", func(*testing.T, *peer.Stream, coap.Message) []byte { return nil }, nil, peer.ErrTimeout, 0},
		{"Release", func(t *testing.T, _ *peer.Stream, _ coap.Message) []byte {
			return tcp(t, coap.Message{Code: coap.Release, Payload: []byte("bye")})
		}, nil, peer.ErrReleased, 0},
		{"Abort", func(t *testing.T, _ *peer.Stream, _ coap.Message) []byte {
			return tcp(t, coap.Message{Code: coap.Abort, Payload: []byte("no")})
		}, nil, peer.ErrAborted, 0},
		{"Close", nil, func(s *peer.Stream, _ func()) { s.Close() }, peer.ErrClosed, 0},
		{"cancelled", nil, func(_ *peer.Stream, cancel func()) { cancel() }, context.Canceled, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s, f := newStream(t, &peer.StreamConfig{Timeout: time.Minute})
				if err := feed(s, csm(t, 1152, false)); err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				start := time.Now()
				done := startStreamDo(ctx, s, &coap.Message{Code: coap.GET, Options: coap.Options{{ID: coap.URIPath, Value: []byte("3")}}})
				req := f.next(t)
				if req.Code != coap.GET || len(req.Token) == 0 || string(req.Options[0].Value) != "3" {
					t.Fatalf("sent %s token %x, want the GET with a token", coap.CodeString(req.Code), req.Token)
				}
				waiting(t, done)
				if tt.answer != nil {
					if b := tt.answer(t, s, req); b != nil {
						_ = feed(s, b)
					}
				}
				if tt.act != nil {
					tt.act(s, cancel)
				}
				r := <-done
				if !errors.Is(r.err, tt.err) || (tt.err == nil && r.err != nil) {
					t.Fatalf("Do: %v, want %v", r.err, tt.err)
				}
				if tt.err == nil && r.resp.Code != tt.code {
					t.Errorf("response %s, want %s", coap.CodeString(r.resp.Code), coap.CodeString(tt.code))
				}
				if errors.Is(tt.err, peer.ErrTimeout) && r.at.Sub(start) != time.Minute {
					t.Errorf("timed out after %v, want StreamConfig.Timeout, 1m", r.at.Sub(start))
				}
				if n := s.StreamInFlight(); n != 0 {
					t.Errorf("%d exchanges still tracked", n)
				}
				f.none(t)
			})
		})
	}
}

// TestStreamEnded: once a stream ended, Do, Notify and Ping fail at once
// with why it ended, and Input reports it too.
func TestStreamEnded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, f := newStream(t, nil)
		if err := feed(s, tcp(t, coap.Message{Code: coap.Release, Payload: []byte("maintenance")})); !errors.Is(err, peer.ErrReleased) {
			t.Fatalf("Input of the first frame, a Release: %v, want ErrReleased", err)
		}
		if err := s.Err(); !errors.Is(err, peer.ErrReleased) || !strings.Contains(err.Error(), "maintenance") {
			t.Errorf("Err() = %v, want ErrReleased with the diagnostic", err)
		}
		if _, err := s.Do(t.Context(), &coap.Message{Code: coap.GET}); !errors.Is(err, peer.ErrReleased) {
			t.Errorf("Do: %v", err)
		}
		if err := s.Notify(t.Context(), &coap.Message{Code: coap.Content}, false); !errors.Is(err, peer.ErrReleased) {
			t.Errorf("Notify: %v", err)
		}
		if err := s.Ping(t.Context()); !errors.Is(err, peer.ErrReleased) {
			t.Errorf("Ping: %v", err)
		}
		if err := feed(s, csm(t, 1152, false)); !errors.Is(err, peer.ErrReleased) {
			t.Errorf("Input after the end: %v", err)
		}
		f.none(t)
	})
}

// TestStreamSignals: what each signaling message (and each protocol
// error) makes a Stream do.
func TestStreamSignals(t *testing.T) {
	tests := []struct {
		name     string
		in       func(t *testing.T) []byte // after the other side's CSM, unless noCSM
		noCSM    bool
		err      error     // what Input returns
		sent     coap.Code // what the Stream writes in answer, 0 for nothing
		token    string    // its token
		badOpt   uint32    // its Bad-CSM-Option
		junk     uint64
		peerMax  int
		peerBERT bool
	}{
		{name: "Ping answered with a Pong", in: func(t *testing.T) []byte {
			return tcp(t, coap.Message{Code: coap.Ping, Token: []byte{1, 2}, Options: coap.Options{{ID: 2}}})
		}, sent: coap.Pong, token: "\x01\x02", peerMax: 1152, peerBERT: true},
		{name: "an empty message ignored", in: func(t *testing.T) []byte { return []byte{0, 0} }, peerMax: 1152, peerBERT: true},
		{name: "a Pong for no Ping", in: func(t *testing.T) []byte { return tcp(t, coap.Message{Code: coap.Pong}) }, junk: 1, peerMax: 1152, peerBERT: true},
		{name: "an unknown signal", in: func(t *testing.T) []byte { return tcp(t, coap.Message{Code: 7<<5 | 9}) }, junk: 1, peerMax: 1152, peerBERT: true},
		{name: "a reserved class", in: func(t *testing.T) []byte { return tcp(t, coap.Message{Code: 1 << 5}) }, junk: 1, peerMax: 1152, peerBERT: true},
		{name: "a second CSM changes the size, BERT stays", in: func(t *testing.T) []byte {
			return tcp(t, coap.Message{Code: coap.CSM, Options: coap.Options{coap.UintOption(coap.MaxMessageSize, 4096)}})
		}, peerMax: 4096, peerBERT: true},
		{name: "a Max-Message-Size under 64 ignored", in: func(t *testing.T) []byte {
			return tcp(t, coap.Message{Code: coap.CSM, Options: coap.Options{coap.UintOption(coap.MaxMessageSize, 10)}})
		}, peerMax: 1152, peerBERT: true},
		{name: "Release", in: func(t *testing.T) []byte { return tcp(t, coap.Message{Code: coap.Release}) }, err: peer.ErrReleased, peerMax: 1152, peerBERT: true},
		{name: "Abort", in: func(t *testing.T) []byte { return tcp(t, coap.Message{Code: coap.Abort}) }, err: peer.ErrAborted, peerMax: 1152, peerBERT: true},
		{name: "an unknown critical option in a CSM", in: func(t *testing.T) []byte {
			return tcp(t, coap.Message{Code: coap.CSM, Options: coap.Options{{ID: 5, Value: []byte{1}}}})
		}, err: peer.ErrAborted, sent: coap.Abort, badOpt: 5, peerMax: 1152, peerBERT: true},
		{name: "an unknown critical option in a Ping", in: func(t *testing.T) []byte {
			return tcp(t, coap.Message{Code: coap.Ping, Options: coap.Options{{ID: 1}}})
		}, err: peer.ErrAborted, sent: coap.Abort, peerMax: 1152, peerBERT: true},
		{name: "a malformed frame", in: func(t *testing.T) []byte {
			return []byte{0x09, 0x45} // a 9-byte token, more than CoAP allows
		}, err: peer.ErrAborted, sent: coap.Abort, peerMax: 1152, peerBERT: true},
		{name: "a frame over our Max-Message-Size", in: func(t *testing.T) []byte {
			return tcp(t, coap.Message{Code: coap.POST, Token: []byte{1}, Payload: make([]byte, 2000)})[:10]
		}, err: peer.ErrAborted, sent: coap.Abort, peerMax: 1152, peerBERT: true},
		{name: "the first frame not a CSM", noCSM: true, in: func(t *testing.T) []byte {
			return tcp(t, coap.Message{Code: coap.GET, Token: []byte{1}})
		}, err: peer.ErrAborted, sent: coap.Abort, peerMax: 1152},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s, f := newStream(t, nil)
				if !tt.noCSM {
					if err := feed(s, csm(t, 1152, true)); err != nil {
						t.Fatal(err)
					}
				}
				if err := feed(s, tt.in(t)); !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
					t.Fatalf("Input: %v, want %v", err, tt.err)
				}
				if tt.sent == 0 {
					f.none(t)
				} else {
					m := f.next(t)
					bad, _ := coap.Uint(m.Options, 2)
					if m.Code != tt.sent || string(m.Token) != tt.token || bad != tt.badOpt {
						t.Errorf("wrote %s token %x Bad-CSM-Option %d, want %s token %x, %d",
							coap.CodeString(m.Code), m.Token, bad, coap.CodeString(tt.sent), tt.token, tt.badOpt)
					}
					if m.Code == coap.Abort && len(m.Payload) == 0 {
						t.Error("an Abort without a diagnostic")
					}
					f.none(t)
				}
				if st := s.Stats(); st.Junk != tt.junk {
					t.Errorf("junk %d, want %d", st.Junk, tt.junk)
				}
				if c, _ := s.PeerCSM(); c.MaxMessageSize != tt.peerMax || c.BlockWise != tt.peerBERT {
					t.Errorf("PeerCSM %+v, want %d bytes, BERT %v", c, tt.peerMax, tt.peerBERT)
				}
			})
		})
	}
}

// TestStreamServe: the Handler answers the other side's requests under
// their tokens; what it cannot answer is still answered.
func TestStreamServe(t *testing.T) {
	tests := []struct {
		name    string
		handler peer.Handler
		peerMax uint32
		code    coap.Code
		payload string
	}{
		{"answered", func(req *coap.Message) coap.Message {
			return coap.Message{Code: coap.Content, Payload: append([]byte("got "), req.Payload...)}
		}, 1152, coap.Content, "got ping"},
		{"no code", func(*coap.Message) coap.Message { return coap.Message{} }, 1152, coap.InternalServerError, ""},
		{"a panic", func(*coap.Message) coap.Message { panic("bug") }, 1152, coap.InternalServerError, ""},
		{"larger than the peer takes", func(*coap.Message) coap.Message {
			return coap.Message{Code: coap.Content, Payload: make([]byte, 200)}
		}, 100, coap.RequestEntityTooLarge, ""},
		{"nil", nil, 1152, coap.NotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s, f := newStream(t, &peer.StreamConfig{Handler: tt.handler})
				if err := feed(s, csm(t, tt.peerMax, false)); err != nil {
					t.Fatal(err)
				}
				if err := feed(s, tcp(t, coap.Message{Code: coap.POST, Token: []byte("tk"), Payload: []byte("ping")})); err != nil {
					t.Fatal(err)
				}
				m := f.next(t)
				if m.Code != tt.code || string(m.Token) != "tk" || string(m.Payload) != tt.payload {
					t.Errorf("answered %s token %q %q, want %s token \"tk\" %q", coap.CodeString(m.Code), m.Token, m.Payload, coap.CodeString(tt.code), tt.payload)
				}
				f.none(t)
			})
		})
	}
}

// TestStreamInputSplit: frames are found however the bytes are cut: one
// byte at a time, all at once, and at every cut in between.
func TestStreamInputSplit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var wire []byte
		wire = append(wire, csm(t, 2048, true)...)
		wire = append(wire, tcp(t, coap.Message{Code: coap.Ping, Token: []byte{9}})...)
		wire = append(wire, tcp(t, coap.Message{Code: coap.PUT, Token: []byte("a"), Payload: bytes.Repeat([]byte("x"), 300)})...)
		wire = append(wire, tcp(t, coap.Message{Code: coap.GET, Token: []byte("b")})...)
		want := []string{"7.03 Pong 09", "2.04 Changed 61", "2.05 Content 62"}
		cuts := [][]int{{1}, {len(wire)}}
		for i := 1; i < len(wire); i += 7 {
			cuts = append(cuts, []int{i, len(wire) - i})
		}
		for _, cut := range cuts {
			s, f := newStream(t, &peer.StreamConfig{Handler: func(req *coap.Message) coap.Message {
				if req.Code == coap.PUT && len(req.Payload) != 300 {
					return coap.Message{Code: coap.BadRequest}
				}
				if req.Code == coap.PUT {
					return coap.Message{Code: coap.Changed}
				}
				return coap.Message{Code: coap.Content}
			}})
			rest := bytes.Clone(wire)
			for i := 0; len(rest) > 0; i++ {
				n := min(cut[i%len(cut)], len(rest))
				if err := feed(s, bytes.Clone(rest[:n])); err != nil {
					t.Fatalf("cut %v: %v", cut, err)
				}
				rest = rest[n:]
			}
			for _, w := range want {
				m := f.next(t)
				if got := coap.CodeString(m.Code) + " " + hexs(m.Token); got != w {
					t.Errorf("cut %v: wrote %s, want %s", cut, got, w)
				}
			}
			f.none(t)
			if c, ok := s.PeerCSM(); !ok || c != (peer.CSM{MaxMessageSize: 2048, BlockWise: true}) {
				t.Errorf("cut %v: PeerCSM %+v %v", cut, c, ok)
			}
			s.Close()
		}
	})
}

func hexs(b []byte) string {
	const digits = "0123456789abcdef"
	var sb strings.Builder
	for _, c := range b {
		sb.WriteByte(digits[c>>4])
		sb.WriteByte(digits[c&15])
	}
	return sb.String()
}

// TestStreamPeerMaxMessageSize: a frame larger than RFC 8323's default
// waits for the other side's CSM; one larger than what the CSM says is
// refused without being sent.
func TestStreamPeerMaxMessageSize(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, f := newStream(t, &peer.StreamConfig{Timeout: time.Minute})
		big := &coap.Message{Code: coap.POST, Payload: make([]byte, 3000)}
		done := startStreamDo(t.Context(), s, big)
		waiting(t, done)
		f.none(t) // held back until the CSM says how much the peer takes
		if err := feed(s, csm(t, 4096, false)); err != nil {
			t.Fatal(err)
		}
		if m := f.next(t); len(m.Payload) != 3000 {
			t.Fatalf("sent %d bytes of payload, want 3000", len(m.Payload))
		}
		s.Close()
		<-done

		s, f = newStream(t, &peer.StreamConfig{Timeout: time.Minute})
		if err := feed(s, csm(t, 512, false)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Do(t.Context(), &coap.Message{Code: coap.POST, Payload: make([]byte, 600)}); !errors.Is(err, coap.ErrTooLarge) {
			t.Errorf("Do of a request over the peer's Max-Message-Size: %v, want coap.ErrTooLarge", err)
		}
		if err := s.Notify(t.Context(), &coap.Message{Code: coap.Content, Payload: make([]byte, 600)}, false); !errors.Is(err, coap.ErrTooLarge) {
			t.Errorf("Notify over the peer's Max-Message-Size: %v, want coap.ErrTooLarge", err)
		}
		f.none(t)
		if n := s.StreamInFlight(); n != 0 {
			t.Errorf("%d exchanges still tracked", n)
		}

		// No CSM ever: the wait for it is bounded like a response's.
		s, f = newStream(t, &peer.StreamConfig{Timeout: time.Minute})
		if _, err := s.Do(t.Context(), &coap.Message{Code: coap.POST, Payload: make([]byte, 2000)}); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Do of a large request with no CSM: %v, want a deadline", err)
		}
		f.none(t)
	})
}

// pipe joins two Streams in the bubble: what one writes, the other's
// reader gets, in order.
func pipe(t *testing.T, a, b *peer.StreamConfig) (*peer.Stream, *peer.Stream) {
	t.Helper()
	ab, ba := make(chan []byte, 64), make(chan []byte, 64)
	sa, err := peer.NewStream(func(p []byte) error { ab <- bytes.Clone(p); return nil }, a)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := peer.NewStream(func(p []byte) error { ba <- bytes.Clone(p); return nil }, b)
	if err != nil {
		t.Fatal(err)
	}
	pump := func(s *peer.Stream, in chan []byte) {
		for p := range in {
			if s.Input(p) != nil {
				return
			}
		}
	}
	go pump(sb, ab)
	go pump(sa, ba)
	t.Cleanup(func() {
		sa.Close()
		sb.Close()
		close(ab)
		close(ba)
	})
	return sa, sb
}

// TestStreamPair: two Streams over one connection, each client and server
// of the other at once, as an LwM2M device and its server are: requests
// both ways, notifications of an observation, Ping.
func TestStreamPair(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		notes := make(chan string, 4)
		var dev *peer.Stream
		server, dev := pipe(t,
			&peer.StreamConfig{
				Handler: func(req *coap.Message) coap.Message { return coap.Message{Code: coap.Created} },
				OnResponse: func(m *coap.Message) bool {
					if _, ok := coap.Uint(m.Options, coap.Observe); !ok {
						return false
					}
					notes <- string(m.Payload)
					return true
				},
			},
			&peer.StreamConfig{Handler: func(req *coap.Message) coap.Message {
				return coap.Message{Code: coap.Content, Options: coap.Options{coap.UintOption(coap.Observe, 1)}, Payload: []byte("20")}
			}})
		ctx := t.Context()
		if resp, err := dev.Do(ctx, &coap.Message{Code: coap.POST}); err != nil || resp.Code != coap.Created {
			t.Fatalf("the device's request: %v %v", resp, err)
		}
		req := &coap.Message{Code: coap.GET, Options: coap.Options{coap.UintOption(coap.Observe, 0)}}
		resp, err := server.Do(ctx, req)
		if err != nil || string(resp.Payload) != "20" {
			t.Fatalf("the server's Observe: %v %v", resp, err)
		}
		for _, v := range []string{"21", "22"} {
			n := &coap.Message{Code: coap.Content, Token: req.Token, Options: coap.Options{coap.UintOption(coap.Observe, 2)}, Payload: []byte(v)}
			if err := dev.Notify(ctx, n, v == "22"); err != nil {
				t.Fatal(err)
			}
			if got := <-notes; got != v {
				t.Errorf("notification %q, want %q", got, v)
			}
		}
		// A response nobody takes is dropped, not answered.
		if err := dev.Notify(ctx, &coap.Message{Code: coap.Content, Token: []byte("stale")}, false); err != nil {
			t.Fatal(err)
		}
		if err := dev.Ping(ctx); err != nil {
			t.Errorf("Ping: %v", err)
		}
		synctest.Wait()
		if st := server.Stats(); st.Junk != 1 {
			t.Errorf("server junk %d, want 1 (the stale notification)", st.Junk)
		}
		if c, err := dev.WaitCSM(ctx); err != nil || c.MaxMessageSize != 1152 {
			t.Errorf("WaitCSM: %+v %v", c, err)
		}
		// Release ends both ends: the other's reader sees it.
		if err := dev.Release(); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if !errors.Is(server.Err(), peer.ErrReleased) || !errors.Is(dev.Err(), peer.ErrClosed) {
			t.Errorf("after Release: server %v, device %v", server.Err(), dev.Err())
		}
	})
}

// TestStreamServeConn: Serve reads a net.Conn until it ends, and the end
// of the connection ends the exchanges in flight with ErrConnLost.
func TestStreamServeConn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c1, c2 := net.Pipe()
		defer c2.Close()
		got := make(chan []byte, 16)
		go func() { // the other side's reader
			buf := make([]byte, 4096)
			for {
				n, err := c2.Read(buf)
				if err != nil {
					close(got)
					return
				}
				got <- bytes.Clone(buf[:n])
			}
		}()
		s, err := peer.NewStream(func(b []byte) error { _, err := c1.Write(b); return err }, &peer.StreamConfig{
			Handler: func(*coap.Message) coap.Message { return coap.Message{Code: coap.Valid} },
		})
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- s.Serve(c1.Read); c1.Close() }()
		<-got // the CSM
		if _, err := c2.Write(append(csm(t, 1152, false), tcp(t, coap.Message{Code: coap.GET, Token: []byte{3}})...)); err != nil {
			t.Fatal(err)
		}
		var m coap.Message
		if b := <-got; func() error { _, err := coap.DecodeTCP(b, &m, 4096); return err }() != nil || m.Code != coap.Valid {
			t.Fatalf("answer % x", b)
		}
		done := startStreamDo(t.Context(), s, &coap.Message{Code: coap.GET})
		<-got // the request
		c2.Close()
		if err := <-served; !errors.Is(err, peer.ErrConnLost) || !errors.Is(err, io.EOF) {
			t.Errorf("Serve: %v, want ErrConnLost wrapping io.EOF", err)
		}
		if r := <-done; !errors.Is(r.err, peer.ErrConnLost) {
			t.Errorf("Do in flight: %v, want ErrConnLost", r.err)
		}
	})
}

// TestStreamServeZeroRead: a read of no bytes and no error, how a
// sock.Socket's Receive reports the other side's close of a stream, ends
// the stream as io.EOF does.
func TestStreamServeZeroRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := newStream(t, nil)
		if err := s.Serve(func([]byte) (int, error) { return 0, nil }); !errors.Is(err, peer.ErrConnLost) || !errors.Is(err, io.EOF) {
			t.Errorf("Serve: %v, want ErrConnLost wrapping io.EOF", err)
		}
	})
}

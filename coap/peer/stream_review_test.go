package peer_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/peer"
)

// A hostile peer's attacks on a Stream: what must hold is no panic, no
// goroutine left behind, memory bounded by Max-Message-Size, every Do
// returning, and errors that match the package's sentinels.

// TestReviewStreamFirstFrameNotCSM: a first frame other than a CSM (a
// request, a Ping, an Empty) aborts the stream, and the request is never
// handed to the Handler.
func TestReviewStreamFirstFrameNotCSM(t *testing.T) {
	for _, m := range []coap.Message{
		{Code: coap.GET, Token: []byte("t")},
		{Code: coap.Ping},
		{Code: coap.Empty},
		{Code: coap.Content, Token: []byte("t")},
	} {
		t.Run(coap.CodeString(m.Code), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				handled := false
				s, f := newStream(t, &peer.StreamConfig{Handler: func(*coap.Message) coap.Message {
					handled = true
					return coap.Message{Code: coap.Content}
				}})
				if err := feed(s, tcp(t, m)); !errors.Is(err, peer.ErrAborted) {
					t.Fatalf("Input: %v, want ErrAborted", err)
				}
				if a := f.next(t); a.Code != coap.Abort {
					t.Errorf("wrote %s, want an Abort", coap.CodeString(a.Code))
				}
				if handled {
					t.Error("the handler ran for a first frame that is no CSM")
				}
				if _, err := s.Do(t.Context(), &coap.Message{Code: coap.GET}); !errors.Is(err, peer.ErrAborted) {
					t.Errorf("Do after the abort: %v, want ErrAborted", err)
				}
			})
		})
	}
}

// TestReviewStreamCSMUnknownCritical: a CSM with an unknown critical option
// is answered by an Abort naming it (Bad-CSM-Option).
func TestReviewStreamCSMUnknownCritical(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, f := newStream(t, nil)
		m := coap.Message{Code: coap.CSM, Options: coap.Options{
			coap.UintOption(coap.MaxMessageSize, 2000), {ID: 9, Value: []byte{1}},
		}}
		if err := feed(s, tcp(t, m)); !errors.Is(err, peer.ErrAborted) {
			t.Fatalf("Input: %v, want ErrAborted", err)
		}
		a := f.next(t)
		if v, _ := coap.Uint(a.Options, 2); a.Code != coap.Abort || v != 9 {
			t.Errorf("wrote %s with Bad-CSM-Option %d, want an Abort naming 9", coap.CodeString(a.Code), v)
		}
	})
}

// TestReviewStreamHugeLength: a frame header claiming 4 GiB (and every
// large length) aborts the stream at once, before anything is buffered.
func TestReviewStreamHugeLength(t *testing.T) {
	for _, ext := range []uint32{0xffffffff, 0xfffeffff, 0x80000000, 0x7fffffff, 1 << 20} {
		synctest.Test(t, func(t *testing.T) {
			s, f := newStream(t, nil)
			if err := feed(s, csm(t, 1152, false)); err != nil {
				t.Fatal(err)
			}
			h := []byte{15 << 4, 0, 0, 0, 0, byte(coap.POST)}
			binary.BigEndian.PutUint32(h[1:], ext)
			if err := feed(s, h); !errors.Is(err, peer.ErrAborted) {
				t.Fatalf("a header claiming %d bytes: %v, want ErrAborted", ext, err)
			}
			if a := f.next(t); a.Code != coap.Abort {
				t.Errorf("wrote %s, want an Abort", coap.CodeString(a.Code))
			}
		})
	}
}

// TestReviewStreamCutEverywhere: a stream of frames cut at every position,
// the extended lengths included, yields the same frames.
func TestReviewStreamCutEverywhere(t *testing.T) {
	var stream []byte
	stream = append(stream, csm(t, 100000, false)...)
	for _, n := range []int{0, 5, 20, 300, 70000} {
		stream = append(stream, tcp(t, coap.Message{Code: coap.POST, Token: []byte{byte(n), 1}, Payload: make([]byte, n)})...)
	}
	for cut := 1; cut < len(stream); cut += max(1, (cut-2000)/64) { // every cut in the headers and the first 2000 bytes
		synctest.Test(t, func(t *testing.T) {
			var got []int
			s, f := newStream(t, &peer.StreamConfig{MaxMessageSize: 80000, Handler: func(m *coap.Message) coap.Message {
				got = append(got, len(m.Payload))
				return coap.Message{Code: coap.Changed}
			}})
			b := bytes.Clone(stream)
			if err := feed(s, b[:cut]); err != nil {
				t.Fatalf("cut at %d: %v", cut, err)
			}
			if err := feed(s, b[cut:]); err != nil {
				t.Fatalf("cut at %d: %v", cut, err)
			}
			if len(got) != 5 || got[4] != 70000 {
				t.Fatalf("cut at %d: handled %v", cut, got)
			}
			for range 5 {
				f.next(t)
			}
		})
	}
}

// TestReviewStreamResponses: a response with a token never sent, or sent
// twice, is junk, and the second copy never reaches a later exchange.
func TestReviewStreamResponses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, f := newStream(t, &peer.StreamConfig{Timeout: time.Minute})
		if err := feed(s, csm(t, 1152, false)); err != nil {
			t.Fatal(err)
		}
		if err := feed(s, tcp(t, coap.Message{Code: coap.Content, Token: []byte("never")})); err != nil {
			t.Fatal(err)
		}
		done := startStreamDo(t.Context(), s, &coap.Message{Code: coap.GET})
		req := f.next(t)
		resp := tcp(t, coap.Message{Code: coap.Content, Token: req.Token, Payload: []byte("1")})
		if err := feed(s, append(bytes.Clone(resp), resp...)); err != nil {
			t.Fatal(err)
		}
		if r := ended(t, done); r.err != nil || string(r.resp.Payload) != "1" {
			t.Fatalf("Do: %v, %v", r.resp, r.err)
		}
		if st := s.Stats(); st.Junk != 2 {
			t.Errorf("%d junk frames, want 2", st.Junk)
		}
		if n := s.StreamInFlight(); n != 0 {
			t.Errorf("%d exchanges tracked", n)
		}
	})
}

// TestReviewStreamHandlerPanics: a panicking handler is answered 5.00 and
// the stream goes on.
func TestReviewStreamHandlerPanics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, f := newStream(t, &peer.StreamConfig{Handler: func(*coap.Message) coap.Message { panic("boom") }})
		if err := feed(s, csm(t, 1152, false)); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if err := feed(s, tcp(t, coap.Message{Code: coap.GET, Token: []byte("a")})); err != nil {
				t.Fatal(err)
			}
			if m := f.next(t); m.Code != coap.InternalServerError || string(m.Token) != "a" {
				t.Errorf("answered %s %q, want 5.00 a", coap.CodeString(m.Code), m.Token)
			}
		}
	})
}

// TestReviewStreamAbortMidExchange: an Abort ends every waiting Do at once
// with ErrAborted, a large one waiting for the CSM too.
func TestReviewStreamAbortMidExchange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, f := newStream(t, &peer.StreamConfig{Timeout: time.Minute})
		var dos []<-chan result
		for range 5 {
			dos = append(dos, startStreamDo(t.Context(), s, &coap.Message{Code: coap.GET}))
		}
		big := startStreamDo(t.Context(), s, &coap.Message{Code: coap.POST, Payload: make([]byte, 2000)})
		for range 5 {
			f.next(t)
		}
		if err := feed(s, tcp(t, coap.Message{Code: coap.Abort, Payload: []byte("bye")})); !errors.Is(err, peer.ErrAborted) {
			t.Fatalf("Input: %v", err)
		}
		for _, d := range append(dos, big) {
			if r := ended(t, d); !errors.Is(r.err, peer.ErrAborted) {
				t.Errorf("Do: %v, want ErrAborted", r.err)
			}
		}
		if n := s.StreamInFlight(); n != 0 {
			t.Errorf("%d exchanges tracked", n)
		}
	})
}

// TestReviewStreamEndedCalls: Notify after Close, and Do with a context
// already cancelled, fail at once without writing.
func TestReviewStreamEndedCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, f := newStream(t, nil)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := s.Do(ctx, &coap.Message{Code: coap.GET}); !errors.Is(err, context.Canceled) {
			t.Errorf("Do with a cancelled context: %v", err)
		}
		s.Close()
		if err := s.Notify(t.Context(), &coap.Message{Code: coap.Content}, false); !errors.Is(err, peer.ErrClosed) {
			t.Errorf("Notify after Close: %v, want ErrClosed", err)
		}
		if err := s.Input(csm(t, 1152, false)); !errors.Is(err, peer.ErrClosed) {
			t.Errorf("Input after Close: %v, want ErrClosed", err)
		}
		f.none(t)
	})
}

// TestReviewStreamNoCSMTimeout: a large frame waiting for a CSM that never
// comes fails after StreamConfig.Timeout with an error matching
// ErrTimeout, as a response that never comes does: the caller's own
// deadline is not the Stream's.
func TestReviewStreamNoCSMTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := newStream(t, &peer.StreamConfig{Timeout: time.Minute})
		start := time.Now()
		_, err := s.Do(t.Context(), &coap.Message{Code: coap.POST, Payload: make([]byte, 2000)})
		if !errors.Is(err, peer.ErrTimeout) {
			t.Errorf("Do of a large request with no CSM: %v, want ErrTimeout", err)
		}
		if d := time.Since(start); d != time.Minute {
			t.Errorf("failed after %v, want 1m", d)
		}
		err = s.Notify(t.Context(), &coap.Message{Code: coap.Content, Payload: make([]byte, 2000)}, false)
		if !errors.Is(err, peer.ErrTimeout) {
			t.Errorf("Notify of a large message with no CSM: %v, want ErrTimeout", err)
		}
	})
}

// TestReviewStreamBlockedWrite: while one frame's write is stuck (the
// other side reads nothing), a second Do still ends with its context, and
// Close ends a third at once: the wait for the stream is bounded like the
// wait for the response. Real time, not a bubble: a goroutine blocked on a
// mutex would keep a bubble's clock still. The 10 s are a bound on a hang,
// not a measure of speed.
func TestReviewStreamBlockedWrite(t *testing.T) {
	stuck, entered := make(chan struct{}), make(chan struct{}, 1)
	var mu sync.Mutex
	writes := 0
	s, err := peer.NewStream(func([]byte) error {
		mu.Lock()
		writes++
		n := writes
		mu.Unlock()
		if n > 1 { // the CSM goes; later writes hang until the test ends
			entered <- struct{}{}
			<-stuck
			return errors.New("connection closed")
		}
		return nil
	}, &peer.StreamConfig{Timeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	first := startStreamDo(t.Context(), s, &coap.Message{Code: coap.GET})
	<-entered
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	second := startStreamDo(ctx, s, &coap.Message{Code: coap.GET})
	within := func(c <-chan result) result {
		t.Helper()
		select {
		case r := <-c:
			return r
		case <-time.After(10 * time.Second):
			close(stuck)
			s.Close()
			t.Fatal("Do still waiting for a stuck write")
			panic("unreachable")
		}
	}
	if r := within(second); !errors.Is(r.err, context.DeadlineExceeded) {
		t.Errorf("Do behind a stuck write, its context expired: %v, want its deadline", r.err)
	}
	third := startStreamDo(t.Context(), s, &coap.Message{Code: coap.GET})
	s.Close()
	if r := within(third); !errors.Is(r.err, peer.ErrClosed) {
		t.Errorf("Do behind a stuck write, after Close: %v, want ErrClosed", r.err)
	}
	close(stuck)
	<-first
}

// TestReviewStreamTimeoutCoversTheWrite: StreamConfig.Timeout bounds the
// whole exchange, the wait for the turn to write included: a Do with no
// deadline of its own queued behind a stuck write ends with ErrTimeout
// after Timeout, not never. (Two Streams whose readers both block writing
// answers, each to the other, otherwise hang every Do for good.)
func TestReviewStreamTimeoutCoversTheWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		stuck := make(chan struct{})
		writes := 0
		s, err := peer.NewStream(func([]byte) error {
			writes++ // calls never overlap
			if writes > 1 {
				<-stuck
				return errors.New("connection closed")
			}
			return nil
		}, &peer.StreamConfig{Timeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		first := startStreamDo(context.Background(), s, &coap.Message{Code: coap.GET})
		waiting(t, first)
		start := time.Now()
		second := startStreamDo(context.Background(), s, &coap.Message{Code: coap.GET})
		pinged := make(chan error, 1)
		go func() { pinged <- s.Ping(context.Background()) }()
		time.Sleep(time.Minute)
		r := ended(t, second)
		if !errors.Is(r.err, peer.ErrTimeout) || r.at.Sub(start) != time.Minute {
			t.Errorf("Do behind a stuck write: %v after %v, want ErrTimeout after 1m", r.err, r.at.Sub(start))
		}
		if err := <-pinged; !errors.Is(err, peer.ErrTimeout) {
			t.Errorf("Ping behind a stuck write: %v, want ErrTimeout", err)
		}
		close(stuck)
		if r := <-first; !errors.Is(r.err, peer.ErrConnLost) {
			t.Errorf("the stuck Do: %v, want ErrConnLost", r.err)
		}
	})
}

// TestReviewStreamFloods: a thousand Pings, each answered by one Pong (no
// amplification), and a thousand requests with distinct tokens, each
// answered on Input's goroutine: nothing is kept per frame.
func TestReviewStreamFloods(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 1000
		f := &frames{out: make(chan []byte, 2*n+4)}
		s, err := peer.NewStream(f.send, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		<-f.out
		in := csm(t, 1152, false)
		for i := range n {
			tok := binary.BigEndian.AppendUint32(nil, uint32(i))
			in = append(in, tcp(t, coap.Message{Code: coap.Ping, Token: tok})...)
			in = append(in, tcp(t, coap.Message{Code: coap.GET, Token: tok})...)
		}
		if err := feed(s, in); err != nil {
			t.Fatal(err)
		}
		if got := len(f.out); got != 2*n {
			t.Errorf("%d frames written for %d Pings and %d requests", got, n, n)
		}
		if st := s.Stats(); st.Received != 2*n+1 || st.Junk != 0 {
			t.Errorf("stats %+v", st)
		}
		if k := s.StreamInFlight(); k != 0 {
			t.Errorf("%d exchanges tracked", k)
		}
	})
}

// TestReviewStreamRelease: a Release with an Alternative-Address and a
// Hold-Off (both elective) ends every waiting Do with ErrReleased.
func TestReviewStreamRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, f := newStream(t, &peer.StreamConfig{Timeout: time.Minute})
		if err := feed(s, csm(t, 1152, false)); err != nil {
			t.Fatal(err)
		}
		done := startStreamDo(t.Context(), s, &coap.Message{Code: coap.GET})
		f.next(t)
		rel := coap.Message{Code: coap.Release, Options: coap.Options{
			{ID: 2, Value: []byte("coap+tcp://[2001:db8::1]")}, coap.UintOption(4, 30),
		}, Payload: []byte("moving")}
		if err := feed(s, tcp(t, rel)); !errors.Is(err, peer.ErrReleased) {
			t.Fatalf("Input: %v, want ErrReleased", err)
		}
		if r := ended(t, done); !errors.Is(r.err, peer.ErrReleased) {
			t.Errorf("Do: %v, want ErrReleased", r.err)
		}
		f.none(t)
	})
}

// TestReviewStreamCloseRaces: Close while Do, Ping, Notify and Input run,
// for the race detector; every call returns.
func TestReviewStreamCloseRaces(t *testing.T) {
	for range 20 {
		f := &frames{out: make(chan []byte, 1024)}
		s, err := peer.NewStream(f.send, &peer.StreamConfig{Timeout: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(3)
			go func() { defer wg.Done(); _, _ = s.Do(context.Background(), &coap.Message{Code: coap.GET}) }()
			go func() { defer wg.Done(); _ = s.Ping(context.Background()) }()
			go func() {
				defer wg.Done()
				_ = s.Notify(context.Background(), &coap.Message{Code: coap.Content, Token: []byte{1}}, false)
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := csm(t, 1152, false)
			for i := range 50 {
				in = append(in, tcp(t, coap.Message{Code: coap.GET, Token: []byte{byte(i)}})...)
				in = append(in, tcp(t, coap.Message{Code: coap.Content, Token: make([]byte, 8)})...)
			}
			for len(in) > 0 {
				k := min(len(in), 7)
				if s.Input(in[:k]) != nil {
					return
				}
				in = in[k:]
			}
		}()
		s.Close()
		wg.Wait()
		if !errors.Is(s.Err(), peer.ErrClosed) {
			t.Fatalf("Err after Close: %v", s.Err())
		}
	}
}

// TestReviewStreamHugeMaxMessageSize: a CSM saying 2^32-1 bytes (more than
// an int holds on a 32-bit device) lets every frame through; it must not
// wrap to a negative limit that refuses them all. Run with GOARCH=386 or
// arm to see it on the current code's platforms.
func TestReviewStreamHugeMaxMessageSize(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, f := newStream(t, nil)
		if err := feed(s, csm(t, 0xffffffff, false)); err != nil {
			t.Fatal(err)
		}
		if c, _ := s.PeerCSM(); c.MaxMessageSize < 1<<30 {
			t.Errorf("Max-Message-Size %d after a CSM of 2^32-1", c.MaxMessageSize)
		}
		if err := s.Notify(t.Context(), &coap.Message{Code: coap.Content, Token: []byte{1}, Payload: make([]byte, 2000)}, false); err != nil {
			t.Errorf("Notify of 2000 bytes to a peer that takes 2^32-1: %v", err)
		}
		f.next(t)
	})
}

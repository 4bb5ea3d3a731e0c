package dtlssock_test

import (
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pion/dtls/v3"

	"github.com/tether-iot/tether/sock/dtlssock"
	"github.com/tether-iot/tether/sock/simnet"
)

// TestIdleSessionsLeaveMemory: sessions (a handshake and one echo each,
// then the client gone without a close_notify, as a device that goes
// offline) are let go after the idle time: no goroutine is left of them,
// and what stays (the store of their secrets) takes at most 2 KiB each.
// The measurement behind the README's figure, with 10,000 sessions:
//
//	TETHER_IDLE_SESSIONS=10000 go test -run TestIdleSessionsLeaveMemory -v ./sock/dtlssock
//
// By default it runs 300 sessions and checks the goroutines only: the heap
// of so few is within the collector's noise.
func TestIdleSessionsLeaveMemory(t *testing.T) {
	sessions, measure := 300, false
	if v := os.Getenv("TETHER_IDLE_SESSIONS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("TETHER_IDLE_SESSIONS=%q", v)
		}
		sessions, measure = n, true
	}
	synctest.Test(t, func(t *testing.T) {
		n := simnet.New(12)
		pc, err := n.AddHost("server", "10.0.0.1").ListenPacket("udp", ":5684")
		if err != nil {
			t.Fatal(err)
		}
		cfg := pskConfig()
		cfg.ConnectionIDs = true
		cfg.Limits.IdleTimeout = time.Minute
		ln, err := dtlssock.Listen(pc, cfg)
		if err != nil {
			t.Fatal(err)
		}
		echoEach(t, ln)
		const perHost, parallel = 250, 16
		hosts := make([]*simnet.Host, (sessions+perHost-1)/perHost)
		for i := range hosts {
			a := "10.1." + strconv.Itoa(i/250) + "." + strconv.Itoa(1+i%250)
			hosts[i] = n.AddHost(a, a)
		}
		heap := func() uint64 {
			runtime.GC()
			runtime.GC()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			return m.HeapAlloc
		}
		// The runtime keeps the descriptor of every goroutine that ended
		// (about 500 B), to reuse: a server that once ran as many
		// goroutines as the sessions need at their peak (three each, and
		// their idle timers' callbacks) keeps that pool, sessions or
		// not. The baseline holds it already.
		pool := make(chan struct{})
		for range 5 * sessions {
			go func() { <-pool }()
		}
		synctest.Wait()
		close(pool)
		synctest.Wait()
		heap0, g0 := heap(), runtime.NumGoroutine()

		start := time.Now()
		var wg sync.WaitGroup
		next := make(chan int)
		for range parallel {
			wg.Go(func() {
				for i := range next {
					s, err := connectEcho(t.Context(), t, hosts[i%len(hosts)], "hello")
					if err != nil {
						t.Error(err)
						continue
					}
					s.Shutdown() // offline: no close_notify
					s.Close()
				}
			})
		}
		for i := range sessions {
			next <- i
		}
		close(next)
		wg.Wait()
		synctest.Wait()
		heapLive, gLive := heap(), runtime.NumGoroutine()
		st := dtlssock.Stats(ln)
		if st.Live != sessions {
			t.Fatalf("%d live sessions after %d handshakes", st.Live, sessions)
		}
		t.Logf("%d handshakes in %v of simulated time", sessions, time.Since(start))
		time.Sleep(time.Minute + time.Second) // past every session's idle time
		synctest.Wait()
		heapIdle, gIdle := heap(), runtime.NumGoroutine()
		st = dtlssock.Stats(ln)
		per := func(h uint64) float64 { return float64(int64(h)-int64(heap0)) / float64(sessions) }
		t.Logf("%d sessions live: %.0f B of heap and %.2f goroutines each", sessions, per(heapLive), float64(gLive-g0)/float64(sessions))
		t.Logf("after the idle time: %d live, %d stored, %d idled; %.0f B of heap and %d goroutines more than before them",
			st.Live, st.Stored, st.Idled, per(heapIdle), gIdle-g0)
		if st.Live != 0 || st.Stored != sessions || st.Idled != sessions {
			t.Fatalf("after the idle time: %+v", st)
		}
		if gIdle > g0 {
			t.Errorf("%d goroutines more after the idle time than before the sessions", gIdle-g0)
		}
		if measure && per(heapIdle) > 2048 {
			t.Errorf("%.0f B of heap per idle session, want at most 2 KiB", per(heapIdle))
		}
	})
}

// echoEach serves ln as an echo peer that, unlike sockrig.EchoStreams,
// keeps no connection once it ends, as a server does: each one's goroutine
// ends with it and lets it go. It stops when the test ends.
func echoEach(t *testing.T, ln net.Listener) {
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				io.Copy(c, c)
			})
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
}

// TestSessionStore: the listener's store of session secrets keeps at most
// its bound, the least recently used leaving first, and forgets a session
// after its lifetime.
func TestSessionStore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := dtlssock.NewServerSessions(2, time.Hour)
		sess := func(id string) dtls.Session { return dtls.Session{ID: []byte(id), Secret: make([]byte, 48)} }
		has := func(id string) bool {
			got, _ := s.Get([]byte(id))
			return string(got.ID) == id
		}
		s.Set([]byte("a"), sess("a"))
		s.Set([]byte("b"), sess("b"))
		has("a") // a is used: b is the least recently used
		s.Set([]byte("c"), sess("c"))
		if !has("a") || has("b") || !has("c") {
			t.Fatalf("after a third session: a %v, b %v, c %v; want a and c", has("a"), has("b"), has("c"))
		}
		time.Sleep(time.Hour + time.Second)
		if has("a") || has("c") {
			t.Fatal("a session outlived its lifetime")
		}
		s.Set([]byte("d"), sess("d"))
		s.Del([]byte("d"))
		if has("d") {
			t.Fatal("Del left the session")
		}
	})
}

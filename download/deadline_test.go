package download_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/download"
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/simnet"
)

// silentUDP is a server host that reads datagrams and never answers.
func silentUDP(t *testing.T, h *simnet.Host, port string) {
	pc, err := h.ListenPacket("udp", ":"+port)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		b := make([]byte, 2048)
		for {
			if _, _, err := pc.ReadFrom(b); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { pc.Close() })
}

// silentTCP accepts connections and reads them, and never answers.
func silentTCP(t *testing.T, h *simnet.Host, port string) {
	ln, err := h.Listen("tcp", ":"+port)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { io.Copy(io.Discard, c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}

// httpOnSim serves h over HTTP on a simulated host's port 80.
func httpOnSim(t *testing.T, host *simnet.Host, h http.Handler) {
	ln, err := host.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// TestGiveUpBoundsWhatIsInFlight: whatever the download waits for, the
// give-up deadline ends it on time (simulated time: exactly), with an error
// that says what it was waiting for.
func TestGiveUpBoundsWhatIsInFlight(t *testing.T) {
	const giveUp = 5 * time.Second
	stall := func(headers bool) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !headers {
				<-r.Context().Done()
				return
			}
			w.Header().Set("Content-Length", "100000")
			w.Write(make([]byte, 10000))
			w.(http.Flusher).Flush()
			<-r.Context().Done() // and then nothing
		})
	}
	tests := []struct {
		name, url string
		serve     func(t *testing.T, h *simnet.Host)
		opts      download.Options
		waiting   string
	}{
		{"silent UDP server", "coap://fw.sim/fw.bin", func(t *testing.T, h *simnet.Host) { silentUDP(t, h, "5683") },
			download.Options{}, "waiting for the block at byte 0 from fw.sim:5683"},
		{"silent coap+tcp server", "coap+tcp://fw.sim/fw.bin", func(t *testing.T, h *simnet.Host) { silentTCP(t, h, "5683") },
			download.Options{}, "waiting for the CSM of fw.sim:5683"},
		{"silent DTLS server", "coaps://fw.sim/fw.bin", func(t *testing.T, h *simnet.Host) { silentUDP(t, h, "5684") },
			download.Options{DTLS: pskConfig()}, "connecting to fw.sim:5684 (DTLS handshake)"},
		{"no HTTP headers", "http://fw.sim/fw.bin", func(t *testing.T, h *simnet.Host) { httpOnSim(t, h, stall(false)) },
			download.Options{}, "waiting for the HTTP response headers from fw.sim:80"},
		{"stalled HTTP body", "http://fw.sim/fw.bin", func(t *testing.T, h *simnet.Host) { httpOnSim(t, h, stall(true)) },
			download.Options{}, "reading the HTTP body from fw.sim:80 at byte 10000"},
		{"server down, backing off", "coap+tcp://fw.sim/fw.bin", func(*testing.T, *simnet.Host) {},
			download.Options{RetryDelay: 2 * time.Second}, "waiting to try again after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(1)
				tt.serve(t, w.n.AddHost("a", "10.0.0.1"))
				w.name("fw.sim", "10.0.0.1")
				w.dev.SetLink(simnet.LinkConfig{Delay: 10 * time.Millisecond})
				opts := tt.opts
				opts.NewSocket, opts.GiveUpAfter = w.socket, giveUp
				start := time.Now()
				d, err := download.Start(context.Background(), tt.url, &memSink{}, &opts)
				if err != nil {
					t.Fatal(err)
				}
				err = d.Wait()
				took := time.Since(start)
				if !errors.Is(err, download.ErrGaveUp) || !strings.Contains(err.Error(), tt.waiting) {
					t.Fatalf("after %v: %v; want ErrGaveUp, %q", took, err, tt.waiting)
				}
				if took < giveUp || took > giveUp+time.Second {
					t.Fatalf("gave up after %v, want %v (+1 s at most)", took, giveUp)
				}
				if strings.Contains(tt.name, "backing off") && !errors.Is(err, sock.ErrConnRefused) {
					t.Fatalf("%v: the last failure (a refusal) is not in the chain", err)
				}
				t.Logf("after %v: %v", took, err)
			})
		})
	}
}

// TestGiveUpCountsOnlineTime: a download suspended for much longer than
// GiveUpAfter resumes and completes, and so does one that is slow but
// never stops for that long.
func TestGiveUpCountsOnlineTime(t *testing.T) {
	data := testrig.Bytes(64<<10, 93)
	synctest.Test(t, func(t *testing.T) {
		w, _ := serving(t, data, 5*time.Millisecond)
		var sink memSink
		opts := &download.Options{NewSocket: w.socket, GiveUpAfter: 2 * time.Second}
		d, err := download.Start(context.Background(), fileURL, &sink, opts)
		if err != nil {
			t.Fatal(err)
		}
		for d.Written() < int64(len(data)/2) {
			time.Sleep(time.Millisecond)
		}
		d.Suspend()
		time.Sleep(time.Hour)
		d.Resume()
		if err := d.Wait(); err != nil {
			t.Fatalf("resumed after an hour offline, with a 2 s give-up: %v", err)
		}

		// 64 blocks at one every 1.5 s: 96 s in all, never 2 s without a block.
		w.dev.SetLink(simnet.LinkConfig{Delay: 750 * time.Millisecond})
		start := time.Now()
		d, err = download.Start(context.Background(), fileURL, &memSink{}, opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Wait(); err != nil || time.Since(start) < 90*time.Second {
			t.Fatalf("slow and steady: %v after %v", err, time.Since(start))
		}
	})
}

// TestContextDeadlineSaysWhatItWaitedFor: a deadline on the context (tether
// get --max-time) ends the download on time, online or not, with an error
// that matches the context's and says what the download waited for.
func TestContextDeadlineSaysWhatItWaitedFor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(1)
		silentUDP(t, w.n.AddHost("a", "10.0.0.1"), "5683")
		w.name("fw.sim", "10.0.0.1")
		cause := errors.New("--max-time 3s reached")
		ctx, cancel := context.WithTimeoutCause(context.Background(), 3*time.Second, cause)
		defer cancel()
		start := time.Now()
		d, err := download.Start(ctx, fileURL, &memSink{}, &download.Options{NewSocket: w.socket})
		if err != nil {
			t.Fatal(err)
		}
		err = d.Wait()
		if took := time.Since(start); !errors.Is(err, cause) || !strings.Contains(err.Error(), "waiting for the block at byte 0") || took < 3*time.Second || took > 4*time.Second {
			t.Fatalf("after %v: %v", time.Since(start), err)
		}
	})
}

// TestConnectTimeoutRetries: a connect that does not complete (a TLS or
// DTLS handshake nobody answers, a CoAP-over-TCP server that sends no CSM)
// fails its attempt after ConnectTimeout with ErrConnectTimeout, saying
// what it waited for, and the download tries again, on the back-off
// schedule, until something else ends it (simulated time: exact).
func TestConnectTimeoutRetries(t *testing.T) {
	tests := []struct {
		name, url string
		serve     func(t *testing.T, h *simnet.Host)
		opts      download.Options
		waiting   string
	}{
		{"silent TLS server, https", "https://fw.sim/fw.bin", func(t *testing.T, h *simnet.Host) { silentTCP(t, h, "443") },
			download.Options{}, "connecting to fw.sim:443 (TLS handshake)"},
		{"silent TLS server, coaps+tcp", "coaps+tcp://fw.sim/fw.bin", func(t *testing.T, h *simnet.Host) { silentTCP(t, h, "5684") },
			download.Options{}, "connecting to fw.sim:5684 (TLS handshake)"},
		{"no CSM, coap+tcp", "coap+tcp://fw.sim/fw.bin", func(t *testing.T, h *simnet.Host) { silentTCP(t, h, "5683") },
			download.Options{}, "waiting for the CSM of fw.sim:5683"},
		{"silent DTLS server, coaps", "coaps://fw.sim/fw.bin", func(t *testing.T, h *simnet.Host) { silentUDP(t, h, "5684") },
			download.Options{DTLS: pskConfig()}, "connecting to fw.sim:5684 (DTLS handshake)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(1)
				tt.serve(t, w.n.AddHost("a", "10.0.0.1"))
				w.name("fw.sim", "10.0.0.1")
				w.dev.SetLink(simnet.LinkConfig{Delay: 10 * time.Millisecond})
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				var (
					mu       sync.Mutex
					attempts []time.Time // when each retry was scheduled
					last     error
				)
				start := time.Now()
				opts := tt.opts
				opts.NewSocket, opts.ConnectTimeout, opts.RetryDelay = w.socket, 2*time.Second, time.Second
				opts.Progress = func(p download.Progress) {
					mu.Lock()
					defer mu.Unlock()
					if p.Phase == download.BackingOff && len(attempts) < p.Retries {
						attempts, last = append(attempts, time.Now()), p.LastError
					}
				}
				d, err := download.Start(ctx, tt.url, &memSink{}, &opts)
				if err != nil {
					t.Fatal(err)
				}
				// Attempts of 2 s, waits of 1 s and 2 s: the third fails at 9 s,
				// the fourth would at 15 s.
				time.Sleep(10 * time.Second)
				cancel()
				d.Wait()
				mu.Lock()
				defer mu.Unlock()
				if len(attempts) != 3 {
					t.Fatalf("%d failed attempts in 10 s, want 3 (2 s each, then waits of 1 and 2 s): %v; the last: %v", len(attempts), attempts, last)
				}
				for i, want := range []time.Duration{2 * time.Second, 5 * time.Second, 9 * time.Second} {
					// pion ends a handshake some 50 ms after its context.
					if got := attempts[i].Sub(start); got < want || got > want+250*time.Millisecond {
						t.Errorf("attempt %d failed at %v, want %v", i+1, got, want)
					}
				}
				if !errors.Is(last, download.ErrConnectTimeout) || !strings.Contains(last.Error(), tt.waiting) || !strings.Contains(last.Error(), "after 2s") {
					t.Fatalf("last attempt: %v; want ErrConnectTimeout after 2s, while %s", last, tt.waiting)
				}
				t.Logf("the last attempt: %v", last)
			})
		})
	}
}

// TestConnectTimeoutOnLoopback: over the real network stack, an https
// server whose port takes the TCP connection (the kernel's backlog) but
// never answers the TLS handshake is given up on after ConnectTimeout, and
// tried again.
func TestConnectTimeoutOnLoopback(t *testing.T) {
	if _, err := download.Start(context.Background(), "https://127.0.0.1/fw.bin", &memSink{}, &download.Options{ConnectTimeout: -time.Second}); !errors.Is(err, download.ErrOptions) {
		t.Fatalf("a negative ConnectTimeout: %v, want ErrOptions", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0") // never accepted: the handshake is never answered
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	retried := make(chan error, 1)
	opts := &download.Options{ConnectTimeout: 100 * time.Millisecond, RetryDelay: 10 * time.Millisecond, MaxRetryDelay: 10 * time.Millisecond,
		Progress: func(p download.Progress) {
			if p.Phase == download.BackingOff && p.Retries == 2 {
				select {
				case retried <- p.LastError:
				default:
				}
			}
		}}
	d, err := download.Start(ctx, "https://"+ln.Addr().String()+"/fw.bin", &memSink{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case last := <-retried:
		if !errors.Is(last, download.ErrConnectTimeout) || !strings.Contains(last.Error(), "(TLS handshake)") {
			t.Errorf("the second attempt failed with %v, want ErrConnectTimeout in the TLS handshake", last)
		}
	case <-time.After(time.Minute):
		t.Fatal("no second failed attempt in a minute: the connect timeout did not bound the handshake")
	}
	cancel()
	if err := d.Wait(); !errors.Is(err, context.Canceled) {
		t.Fatalf("after cancel: %v", err)
	}
}

// TestConnectTimeoutEndsOnlyThroughGiveUp: connect timeouts alone never end
// a download; GiveUpAfter does, and its error keeps the connect timeout as
// the last attempt's failure.
func TestConnectTimeoutEndsOnlyThroughGiveUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(1)
		silentTCP(t, w.n.AddHost("a", "10.0.0.1"), "443")
		w.name("fw.sim", "10.0.0.1")
		opts := &download.Options{NewSocket: w.socket, ConnectTimeout: time.Second, RetryDelay: time.Second, MaxRetryDelay: time.Second, GiveUpAfter: 10 * time.Second}
		start := time.Now()
		d, err := download.Start(context.Background(), "https://fw.sim/fw.bin", &memSink{}, opts)
		if err != nil {
			t.Fatal(err)
		}
		err = d.Wait()
		if took := time.Since(start); !errors.Is(err, download.ErrGaveUp) || !errors.Is(err, download.ErrConnectTimeout) || took < 10*time.Second || took > 11*time.Second {
			t.Fatalf("after %v: %v; want ErrGaveUp at 10 s, with ErrConnectTimeout in its chain", took, err)
		}
	})
}

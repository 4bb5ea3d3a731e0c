package download_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/fileserver"
	"github.com/tether-iot/tether/download"
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/dtlssock"
	"github.com/tether-iot/tether/sock/simnet"
)

// refusing is a socket whose Connect says the stack cannot: a modem's
// socket without, say, the IP version asked for.
type refusing struct{ sock.Socket }

func (refusing) Connect(context.Context, string, string) error {
	return &net.OpError{Op: "connect", Net: "udp", Err: sock.ErrNotSupported}
}

// TestPermanentFailuresEndAtOnce: a failure that no retry can cure ends
// the download at once, with no retry, classified where it was made.
func TestPermanentFailuresEndAtOnce(t *testing.T) {
	data := testrig.Bytes(10<<10, 94)
	wrongKey := pskConfig()
	wrongKey.PSK = func([]byte) ([]byte, error) { return []byte("not the key"), nil }
	tests := []struct {
		name    string
		url     string
		opts    download.Options
		want    error
		retries int
	}{
		// DTLS servers answer a wrong key with silence: the refusal read
		// from it is final once a second handshake meets it too.
		{"wrong pre-shared key", "coaps://fw.sim/fw.bin", download.Options{DTLS: wrongKey}, sock.ErrAuth, 1},
		{"a socket that cannot", fileURL, download.Options{}, sock.ErrNotSupported, 0},
		{"4.04", "coap://fw.sim/nothing.bin", download.Options{}, nil, 0},
		{"announced size over the limit", fileURL, download.Options{MaxSize: 4 << 10}, download.ErrTooLarge, 0},
		{"announced size not the expected one", fileURL, download.Options{Size: 999}, download.ErrVerify, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(1)
				h := w.n.AddHost("a", "10.0.0.1")
				newServer(t, h, "fw.bin", data)
				dtlsOnSim(t, h, data)
				w.name("fw.sim", "10.0.0.1")
				w.dev.SetLink(simnet.LinkConfig{Delay: 10 * time.Millisecond})
				opts := tt.opts
				opts.NewSocket = w.socket
				if tt.want == sock.ErrNotSupported {
					opts.NewSocket = func(n string) (sock.Socket, error) { s, err := w.socket(n); return refusing{s}, err }
				}
				start := time.Now()
				d, err := download.Start(context.Background(), tt.url, &memSink{}, &opts)
				if err != nil {
					t.Fatal(err)
				}
				err = d.Wait()
				took := time.Since(start)
				if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) || (tt.want != sock.ErrAuth && !sock.IsPermanent(err)) {
					t.Fatalf("%v, want a permanent %v", err, tt.want)
				}
				if p := d.Progress(); p.Retries != tt.retries || took > 20*time.Second {
					t.Fatalf("ended after %v and %d retries: %v", took, p.Retries, err)
				}
				t.Logf("after %v: %v", took, err)
			})
		})
	}
	// Without Options.DTLS, the error says what to give: the program
	// brings its DTLS (download links none of its own).
	if _, err := download.Start(context.Background(), "coaps://fw.sim/fw.bin", &memSink{}, nil); !errors.Is(err, download.ErrOptions) ||
		!strings.Contains(err.Error(), "Options.DTLS") || !strings.Contains(err.Error(), "dtlssock.Config") {
		t.Fatalf("coaps without credentials: %v, want ErrOptions before any traffic, naming Options.DTLS and dtlssock.Config", err)
	}
}

// dtlsOnSim serves data as /fw.bin over DTLS (PSK) on a simulated host.
func dtlsOnSim(t *testing.T, h *simnet.Host, data []byte) {
	dir := t.TempDir()
	fs, err := fileserver.New(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "fw.bin", data)
	t.Cleanup(func() { fs.Close() })
	pc, err := h.ListenPacket("udp", ":5684")
	if err != nil {
		t.Fatal(err)
	}
	cfg := pskConfig()
	cfg.ConnectionIDs = true
	ln, err := dtlssock.Listen(pc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	go fs.ServeDatagramListener(ln)
}

// unavailable answers the first n requests a file server would get with
// 5.03 Service Unavailable and Max-Age, and hands the rest to it.
type unavailable struct {
	net.PacketConn
	n      atomic.Int32
	maxAge uint32
	m      coap.Message
}

func (u *unavailable) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, from, err := u.PacketConn.ReadFrom(b)
		if err != nil || u.n.Add(-1) < 0 || coap.DecodeUDP(b[:n], &u.m) != nil {
			return n, from, err
		}
		resp := coap.Message{Type: coap.Acknowledgement, Code: coap.ServiceUnavailable, MessageID: u.m.MessageID, Token: u.m.Token}
		resp.Options, _ = coap.AppendUint(resp.Options, nil, coap.MaxAge, u.maxAge)
		out, _ := coap.AppendUDP(nil, &resp)
		u.PacketConn.WriteTo(out, from)
	}
}

// TestServerSaysWhenToRetry: CoAP 5.03 with Max-Age and HTTP 503 with
// Retry-After are retried, after exactly the wait the server asked for.
func TestServerSaysWhenToRetry(t *testing.T) {
	data := testrig.Bytes(10<<10, 95)
	want := sha256.Sum256(data)
	t.Run("coap", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w, a := serving(t, data, 0)
			u := &unavailable{maxAge: 7}
			u.n.Store(2)
			a.wrap = func(pc net.PacketConn) net.PacketConn { u.PacketConn = pc; return u }
			a.restart(nil)
			var waits []time.Duration
			d, err := download.Start(context.Background(), fileURL, &memSink{}, &download.Options{NewSocket: w.socket, SHA256: want[:],
				Progress: func(p download.Progress) {
					if p.Phase == download.BackingOff {
						waits = append(waits, time.Until(p.NextAttempt))
						var re interface{ RetryAfter() time.Duration }
						if !errors.As(p.LastError, &re) {
							t.Errorf("backing off with LastError %v", p.LastError)
						}
					}
				}})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if err := d.Wait(); err != nil {
				t.Fatal(err)
			}
			if took := time.Since(start); len(waits) != 2 || waits[0] != 7*time.Second || waits[1] != 7*time.Second || took < 14*time.Second || took > 15*time.Second {
				t.Fatalf("two 5.03 with Max-Age 7: waits %v, done after %v", waits, took)
			}
		})
	})
	t.Run("http", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld(1)
			w.name("fw.sim", "10.0.0.1")
			var (
				mu    sync.Mutex
				times []time.Time
			)
			httpOnSim(t, w.n.AddHost("a", "10.0.0.1"), http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
				mu.Lock()
				times = append(times, time.Now())
				n := len(times)
				mu.Unlock()
				switch n {
				case 1:
					rw.Header().Set("Retry-After", "4")
					rw.WriteHeader(http.StatusServiceUnavailable)
				case 2:
					rw.WriteHeader(http.StatusInternalServerError) // transient: the back-off's wait
				default:
					http.ServeContent(rw, r, "fw.bin", time.Time{}, bytes.NewReader(data))
				}
			}))
			d, err := download.Start(context.Background(), "http://fw.sim/fw.bin", &memSink{},
				&download.Options{NewSocket: w.socket, SHA256: want[:], RetryDelay: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Wait(); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(times) != 3 || times[1].Sub(times[0]).Round(100*time.Millisecond) != 4*time.Second ||
				times[2].Sub(times[1]).Round(100*time.Millisecond) != 2*time.Second { // the second failure in a row: RetryDelay doubled
				t.Fatalf("requests at %v", times)
			}
		})
	})
}

// TestWakeUps: ExitOffline and Reconnect end the wait before the next
// attempt at once; Progress says when that attempt was due and why.
func TestWakeUps(t *testing.T) {
	data := testrig.Bytes(10<<10, 96)
	for _, how := range []string{"Reconnect", "ExitOffline"} {
		t.Run(how, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(1)
				a := newServer(t, w.n.AddHost("a", "10.0.0.1"), "fw.bin", data)
				a.stop() // down: connection refused (ICMP), and a long wait after it
				w.name("fw.sim", "10.0.0.1")
				w.dev.SetLink(simnet.LinkConfig{Delay: 5 * time.Millisecond})
				var c download.Controller
				backingOff := make(chan download.Progress, 1)
				d, err := c.Start(context.Background(), fileURL, &memSink{}, &download.Options{NewSocket: w.socket, RetryDelay: time.Hour,
					Progress: func(p download.Progress) {
						if p.Phase == download.BackingOff {
							select {
							case backingOff <- p:
							default:
							}
						}
					}})
				if err != nil {
					t.Fatal(err)
				}
				p := <-backingOff
				if p.LastError == nil || !errors.Is(p.LastError, sock.ErrConnRefused) || time.Until(p.NextAttempt) != time.Hour {
					t.Fatalf("backing off: %+v; want the refusal, and the next attempt in an hour", p)
				}
				a.start()
				woke := time.Now()
				switch how {
				case "Reconnect":
					d.Reconnect()
				case "ExitOffline":
					c.EnterOffline(download.UDP)
					if d.Phase() != download.Suspended {
						t.Fatal("EnterOffline did not suspend a download that was backing off")
					}
					c.ExitOffline(download.UDP)
				}
				if err := d.Wait(); err != nil {
					t.Fatal(err)
				}
				if took := time.Since(woke); took > time.Second {
					t.Fatalf("after %s the download took %v: it waited out its back-off", how, took)
				}
			})
		})
	}
}

// writeFile writes a test file.
func writeFile(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestResourceShrank: the resource became shorter than what a killed run
// wrote. The server answers the resume "no such block" (CoAP 4.02) or
// "range not satisfiable" (HTTP 416): that is a changed resource, not an
// error to keep failing on. With Fail it ends with ErrResourceChanged and
// the state is dropped; with Restart the new version is fetched.
func TestResourceShrank(t *testing.T) {
	old := testrig.Bytes(512<<10, 100)
	shorter := testrig.Bytes(16<<10, 101)
	for _, scheme := range []string{"coap", "http"} {
		for _, policy := range []download.ChangePolicy{download.Fail, download.Restart} {
			t.Run(fmt.Sprintf("%s/policy=%d", scheme, policy), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					w, a := serving(t, old, 0)
					var mu sync.Mutex
					body := old
					httpOnSim(t, a.host, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
						mu.Lock()
						b := body
						mu.Unlock()
						rw.Header().Set("ETag", fmt.Sprintf(`"%d"`, len(b)))
						http.ServeContent(rw, r, "fw.bin", time.Time{}, slowReader{bytes.NewReader(b)}) // a stop at 40 KiB comes before the end
					}))
					url := scheme + "://fw.sim/fw.bin"
					path := filepath.Join(t.TempDir(), "fw.bin")
					interrupted(t, w, url, path, 40<<10, download.Options{})
					a.write("fw.bin", shorter)
					mu.Lock()
					body = shorter
					mu.Unlock()
					time.Sleep(time.Second) // the file server notices the new file
					d, err := download.ToFile(context.Background(), url, path, &download.Options{NewSocket: w.socket, OnChange: policy})
					if err != nil {
						t.Fatal(err)
					}
					err = d.Wait()
					time.Sleep(time.Second) // the HTTP handler finishes the reply the download left
					if policy == download.Fail {
						if !errors.Is(err, download.ErrResourceChanged) {
							t.Fatalf("resume past the new end: %v, want ErrResourceChanged", err)
						}
						if _, serr := os.Stat(path + download.StateSuffix); !errors.Is(serr, os.ErrNotExist) {
							t.Fatal("the state of a changed resource was kept: every later run would fail the same way")
						}
						return
					}
					got, _ := os.ReadFile(path)
					if err != nil || !bytes.Equal(got, shorter) {
						t.Fatalf("with Restart: %v, %d bytes", err, len(got))
					}
				})
			})
		}
	}
}

// reconnectingError is a transient failure that, as it is classified, asks
// the download to reconnect: a Reconnect that arrives after the attempt
// has ended and before the back-off begins, as when an IP change both
// breaks the link and is reported.
type reconnectingError struct {
	d    *download.Download
	once *sync.Once
}

func (e reconnectingError) Error() string { return "network unreachable (the address changed)" }
func (e reconnectingError) Permanent() bool {
	e.once.Do(e.d.Reconnect)
	return false
}

// failingOnce fails its first Connect with a reconnectingError.
type failingOnce struct {
	sock.Socket
	fail *atomic.Pointer[reconnectingError]
}

func (f failingOnce) Connect(ctx context.Context, host, port string) error {
	if e := f.fail.Swap(nil); e != nil {
		return *e
	}
	return f.Socket.Connect(ctx, host, port)
}

// TestReconnectAsAnAttemptFails: a Reconnect between an attempt's failure
// and the back-off is not lost: the next attempt starts at once, not after
// the wait.
func TestReconnectAsAnAttemptFails(t *testing.T) {
	data := testrig.Bytes(10<<10, 102)
	synctest.Test(t, func(t *testing.T) {
		w, _ := serving(t, data, time.Millisecond)
		var fail atomic.Pointer[reconnectingError]
		factory := func(n string) (sock.Socket, error) {
			s, err := w.socket(n)
			return failingOnce{s, &fail}, err
		}
		start := time.Now()
		d, err := download.Start(context.Background(), fileURL, &memSink{},
			&download.Options{NewSocket: factory, RetryDelay: time.Hour, Progress: func(p download.Progress) {
				if p.Phase == download.BackingOff {
					t.Errorf("backing off (until %v) although a Reconnect was asked for", p.NextAttempt)
				}
			}})
		if err != nil {
			t.Fatal(err)
		}
		fail.Store(&reconnectingError{d: d, once: new(sync.Once)})
		d.Reconnect() // the first attempt, if it started already, starts again and meets the failure
		if err := d.Wait(); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > time.Minute {
			t.Fatalf("the download took %v: the Reconnect was lost and it waited out its back-off", took)
		}
	})
}

// etagFlipper answers every other response with another ETag, as two
// servers with two versions behind one name would.
type etagFlipper struct {
	net.PacketConn
	n atomic.Int32
	m coap.Message
}

func (e *etagFlipper) WriteTo(b []byte, to net.Addr) (int, error) {
	if coap.DecodeUDP(b, &e.m) == nil {
		if tag, ok := coap.Bytes(e.m.Options, coap.ETag); ok && e.n.Add(1)%2 == 0 {
			tag[0] ^= 0xff // the option aliases b: the datagram changes in place
		}
	}
	return e.PacketConn.WriteTo(b, to)
}

// TestRestartIsBounded: with OnChange: Restart, a resource that keeps
// changing under the download is not followed forever.
func TestRestartIsBounded(t *testing.T) {
	data := testrig.Bytes(10<<10, 103)
	synctest.Test(t, func(t *testing.T) {
		w, a := serving(t, data, time.Millisecond)
		a.wrap = func(pc net.PacketConn) net.PacketConn { return &etagFlipper{PacketConn: pc} }
		a.restart(nil)
		d, err := download.Start(context.Background(), fileURL, &memSink{}, &download.Options{NewSocket: w.socket, OnChange: download.Restart})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Wait(); !errors.Is(err, download.ErrResourceChanged) || !strings.Contains(err.Error(), "changed 4 times") {
			t.Fatalf("a resource that changes at every block, with Restart: %v", err)
		}
	})
}

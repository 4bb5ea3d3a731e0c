package download_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pion/dtls/v3"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/fileserver"
	"github.com/tether-iot/tether/download"
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
	data := randomBytes(10<<10, 94)
	wrongKey := pskConfig()
	wrongKey.PSK = func([]byte) ([]byte, error) { return []byte("not the key"), nil }
	tests := []struct {
		name string
		url  string
		opts download.Options
		want error
	}{
		{"wrong pre-shared key", "coaps://fw.sim/fw.bin", download.Options{DTLS: wrongKey}, sock.ErrAuth},
		{"a socket that cannot", fileURL, download.Options{}, sock.ErrNotSupported},
		{"4.04", "coap://fw.sim/nothing.bin", download.Options{}, nil},
		{"announced size over the limit", fileURL, download.Options{MaxSize: 4 << 10}, download.ErrTooLarge},
		{"announced size not the expected one", fileURL, download.Options{Size: 999}, download.ErrVerify},
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
				if err == nil || !sock.IsPermanent(err) || (tt.want != nil && !errors.Is(err, tt.want)) {
					t.Fatalf("%v, want a permanent %v", err, tt.want)
				}
				if p := d.Progress(); p.Retries != 0 || took > 10*time.Second {
					t.Fatalf("ended after %v and %d retries: %v", took, p.Retries, err)
				}
				t.Logf("after %v: %v", took, err)
			})
		})
	}
	if _, err := download.Start(context.Background(), "coaps://fw.sim/fw.bin", &memSink{}, nil); !errors.Is(err, download.ErrOptions) {
		t.Fatalf("coaps without credentials: %v, want ErrOptions before any traffic", err)
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
	cfg.ConnectionIDGenerator = dtls.RandomCIDGenerator(8)
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
	data := randomBytes(10<<10, 95)
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
	data := randomBytes(10<<10, 96)
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
					if !d.IsSuspended() {
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

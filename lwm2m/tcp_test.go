package lwm2m_test

import (
	"context"
	"crypto/tls"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/peer"
	"github.com/tether-iot/tether/download"
	"github.com/tether-iot/tether/internal/testpki"
	"github.com/tether-iot/tether/lwm2m"
	"github.com/tether-iot/tether/lwm2m/content"
	"github.com/tether-iot/tether/lwm2m/lwm2mtest"
)

// tcpServer starts an LwM2M test server over TCP (TLS with tlsCfg) on the
// world's server host, port 5693.
func tcpServer(t *testing.T, w *world, tlsCfg *tls.Config) *lwm2mtest.Server {
	t.Helper()
	ln, err := w.host.Listen("tcp", ":5693")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := lwm2mtest.NewTCPServer(ln, &lwm2mtest.Options{TLS: tlsCfg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// TestTCPBinding runs the story over the TCP binding (RFC 8323), plain
// and TLS: the client registers with binding T, is read, written and
// observed; offline mode on UDP leaves it be, offline on TCP silences it,
// and back online it registers again; Stop deregisters. A second server
// over UDP registers beside it.
func TestTCPBinding(t *testing.T) {
	pki := testpki.Get()
	for _, tc := range []struct {
		name   string
		url    string
		server *tls.Config
		client *tls.Config
	}{
		{"coap+tcp", "coap+tcp://10.0.0.1:5693", nil, nil},
		{"coaps+tcp", "coaps+tcp://10.0.0.1:5693", &tls.Config{Certificates: []tls.Certificate{pki.Server}}, &tls.Config{RootCAs: pki.Pool}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t, false, nil)
				srv := tcpServer(t, w, tc.server)
				cfg := w.config("dev-t", t.TempDir(), nil)
				cfg.ServerURL, cfg.TLS = tc.url, tc.client
				cfg.Servers = []lwm2m.Server{{URL: "coap://10.0.0.1:5683", ShortServerID: 2}}
				c, _, m := startWatched(t, cfg)
				ctx := context.Background()
				reg, err := srv.WaitRegistered(ctx, "dev-t", 0)
				if err != nil {
					t.Fatal(err)
				}
				if reg.Binding != "T" || reg.Version != "1.1" {
					t.Errorf("registration %+v, want binding T", reg)
				}
				if _, err := w.srv.WaitRegistered(ctx, "dev-t", 0); err != nil {
					t.Fatalf("the UDP server: %v", err)
				}
				if got := text(t)(srv.Read(ctx, "dev-t", "/1/0/7")); got != "T" {
					t.Errorf("/1/0/7 %q, want T", got)
				}
				if got := text(t)(srv.Read(ctx, "dev-t", "/3/0/16")); got != "UT" {
					t.Errorf("/3/0/16 %q, want UT", got)
				}
				o, err := srv.Observe(ctx, "dev-t", "/1/0/3")
				if err != nil {
					t.Fatal(err)
				}
				want(t, coap.Changed)(srv.Write(ctx, "dev-t", "/1/0/3", content.Text, []byte("77")))
				waitNotified(t, o, "77")
				updates := srv.Stats().Updates
				want(t, coap.Changed)(srv.Execute(ctx, "dev-t", "/1/0/8", nil))
				for srv.Stats().Updates == updates {
					time.Sleep(100 * time.Millisecond)
				}

				// Offline per transport: UDP leaves the TCP registration
				// be; TCP silences it.
				if err := c.EnterOffline(ctx, download.UDP); err != nil {
					t.Fatal(err)
				}
				if got := text(t)(srv.Read(ctx, "dev-t", "/3/0/0")); got != "tether" {
					t.Errorf("/3/0/0 over TCP with UDP offline: %q", got)
				}
				if err := c.ExitOffline(ctx, download.UDP); err != nil {
					t.Fatal(err)
				}
				before := srv.Stats()
				if err := c.EnterOffline(ctx, download.TCP); err != nil {
					t.Fatal(err)
				}
				synctest.Wait()
				time.Sleep(5 * time.Minute)
				if got := srv.Stats(); got.BytesIn != before.BytesIn {
					t.Errorf("%d bytes from the device while TCP was offline", got.BytesIn-before.BytesIn)
				}
				if err := c.ExitOffline(ctx, download.TCP); err != nil {
					t.Fatal(err)
				}
				if _, err := srv.WaitRegistered(ctx, "dev-t", before.Registers); err != nil {
					t.Fatalf("back online over TCP: %v", err)
				}
				if got := text(t)(srv.Read(ctx, "dev-t", "/3/0/0")); got != "tether" {
					t.Errorf("/3/0/0 after offline: %q", got)
				}

				sctx, cancel := context.WithTimeout(ctx, time.Minute)
				defer cancel()
				if err := c.Stop(sctx); err != nil {
					t.Fatal(err)
				}
				if err := srv.WaitDeregistered(sctx, "dev-t"); err != nil {
					t.Fatal(err)
				}
				if err := w.srv.WaitDeregistered(sctx, "dev-t"); err != nil {
					t.Fatal(err)
				}
				reg2, _ := m.states()
				if len(reg2) == 0 || reg2[len(reg2)-1] != lwm2m.Stopped {
					t.Errorf("states %v", reg2)
				}
			})
		})
	}
}

// TestTCPConfigChecked: coaps+tcp needs certificates.
func TestTCPConfigChecked(t *testing.T) {
	_, err := lwm2m.New(lwm2m.Config{Endpoint: "x", ServerURL: "coaps+tcp://10.0.0.1", PSKIdentity: []byte("id"), PSK: []byte("key")})
	if err == nil {
		t.Fatal("coaps+tcp with a PSK only: no error")
	}
	if _, err := lwm2m.New(lwm2m.Config{Endpoint: "x", ServerURL: "coap+tcp://10.0.0.1"}); err != nil {
		t.Fatalf("coap+tcp: %v", err)
	}
}

// TestTCPBootstrapServerCloses: a coap+tcp bootstrap
// server that takes the Bootstrap-Request and closes the connection; the
// client notices at once and asks again after its back-off, not after the
// bootstrap's timeout (186 s).
func TestTCPBootstrapServerCloses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		requests := closingTCPServer(t, w, ":5695", coap.Message{Code: coap.Changed})
		cfg := w.config("dev-tbs", t.TempDir(), nil)
		cfg.ServerURL = ""
		cfg.Bootstrap = &lwm2m.Bootstrap{URL: "coap+tcp://10.0.0.1:5695", StateDir: t.TempDir()}
		_, stop := start(t, cfg)
		time.Sleep(30 * time.Second)
		if n := requests.Load(); n < 2 {
			t.Errorf("%d Bootstrap-Requests in 30 s, want 2 or more: the closed connection went unnoticed", n)
		}
		stop()
	})
}

// closingTCPServer serves coap+tcp on the world's server host at port: it
// answers each request with answer, counts the requests, and closes the
// connection just after its first answer, as a broken or hostile server
// does.
func closingTCPServer(t *testing.T, w *world, port string, answer coap.Message) *atomic.Int32 {
	t.Helper()
	ln, err := w.host.Listen("tcp", port)
	if err != nil {
		t.Fatal(err)
	}
	var requests atomic.Int32
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer conn.Close()
				answered := make(chan struct{}, 1)
				st, err := peer.NewStream(func(b []byte) error { _, err := conn.Write(b); return err }, &peer.StreamConfig{
					Handler: func(*coap.Message) coap.Message {
						requests.Add(1)
						select {
						case answered <- struct{}{}:
						default:
						}
						return answer
					},
				})
				if err != nil {
					return
				}
				go func() { <-answered; time.Sleep(time.Millisecond); conn.Close() }()
				_ = st.Serve(conn.Read)
				st.Close()
			})
		}
	})
	return &requests
}

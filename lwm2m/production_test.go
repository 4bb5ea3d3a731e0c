package lwm2m_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/internal/testpki"
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/lwm2m"
	"github.com/tether-iot/tether/lwm2m/content"
	"github.com/tether-iot/tether/sock/dtlssock"
)

// TestFirmwareVersionAfterUpdate: the product's Device object reports the
// version it runs now (Device.FirmwareVersionFunc); after a successful
// update the server's observation of /3/0/3 hears the new one, and a Read
// shows it.
func TestFirmwareVersionAfterUpdate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		image := testrig.Bytes(10_000, 11)
		w := newWorld(t, false, image)
		var running atomic.Value
		running.Store("1.0")
		cfg := w.config("dev-v", t.TempDir(), nil)
		cfg.Device.FirmwareVersion = ""
		cfg.Device.FirmwareVersionFunc = func() string { return running.Load().(string) }
		cfg.Firmware.Install = func(context.Context, string) error { running.Store("2.0"); return nil }
		start(t, cfg)
		ctx := context.Background()
		if _, err := w.srv.WaitRegistered(ctx, "dev-v", 0); err != nil {
			t.Fatal(err)
		}
		if got := readText(ctx, w, "dev-v", "/3/0/3"); got != "1.0" {
			t.Fatalf("/3/0/3 %q before the update, want 1.0", got)
		}
		ov, err := w.srv.Observe(ctx, "dev-v", "/3/0/3")
		if err != nil {
			t.Fatal(err)
		}
		o, err := w.srv.Observe(ctx, "dev-v", "/5/0/3")
		if err != nil {
			t.Fatal(err)
		}
		want(t, coap.Changed)(w.srv.Write(ctx, "dev-v", "/5/0/1", content.Text, []byte("coap://10.0.0.1:5690/fw.bin")))
		waitState(t, o, "1", "2")
		want(t, coap.Changed)(w.srv.Execute(ctx, "dev-v", "/5/0/2", nil))
		waitState(t, o, "3", "0")
		waitState(t, ov, "2.0")
		if got := readText(ctx, w, "dev-v", "/3/0/3"); got != "2.0" {
			t.Errorf("/3/0/3 %q after the update, want 2.0", got)
		}
	})
}

// TestCertificateSecuredServer: an LwM2M server secured by an X.509
// certificate (Security Mode 2): the client trusts its CA through
// Config.DTLS, registers, and is served; a client that trusts another CA
// never registers, and says why.
func TestCertificateSecuredServer(t *testing.T) {
	pki := testpki.Get()
	for _, tc := range []struct {
		name    string
		trusted bool
	}{{"trusted", true}, {"a stranger's CA", false}} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorldWith(t, true, nil, &dtlssock.Config{Certificates: []tls.Certificate{pki.Server}})
				cfg := w.config("dev-x", t.TempDir(), nil)
				cfg.PSK, cfg.PSKIdentity = nil, nil
				pool := pki.Pool
				if !tc.trusted {
					pool = x509.NewCertPool()
					pool.AppendCertsFromPEM(pki.StrangerPEM)
				}
				cfg.DTLS = &dtlssock.Config{RootCAs: pool}
				var authFailed atomic.Bool
				cfg.OnEvent = func(ev lwm2m.Event) {
					if ev.Kind == "error" && strings.Contains(ev.Detail, "certificate") {
						authFailed.Store(true)
					}
				}
				c, _ := start(t, cfg)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				defer cancel()
				if tc.trusted {
					if _, err := w.srv.WaitRegistered(ctx, "dev-x", 0); err != nil {
						t.Fatal(err)
					}
					if got := readText(ctx, w, "dev-x", "/3/0/0"); got != "tether" {
						t.Errorf("/3/0/0 over the certificate-secured session: %q", got)
					}
					if st := c.Status(); st.Handshakes != 1 || !st.Registered {
						t.Errorf("status %+v, want registered after one handshake", st)
					}
					return
				}
				time.Sleep(2 * time.Minute)
				if st := c.Status(); st.Registered || w.srv.Stats().Registers != 0 {
					t.Errorf("registered with a server whose certificate it does not trust: %+v", st)
				}
				if !authFailed.Load() {
					t.Error("no event said the server's certificate was refused")
				}
			})
		})
	}
}

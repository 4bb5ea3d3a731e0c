package download_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/download"
	"github.com/tether-iot/tether/internal/testpki"
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/sock/simnet"
)

// TestOfflineByPhysicalTransport: offline mode works per physical
// transport, as in Anjay: UDP takes coap and coaps (DTLS) offline, TCP
// takes coap+tcp and http (and TLS over them); each leaves the other's
// downloads alone.
func TestOfflineByPhysicalTransport(t *testing.T) {
	data := testrig.Bytes(64<<10, 97)
	want := sha256.Sum256(data)
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(1)
		h := w.n.AddHost("a", "10.0.0.1")
		newServer(t, h, "fw.bin", data)
		dtlsOnSim(t, h, data)
		httpOnSim(t, h, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			http.ServeContent(rw, r, "fw.bin", time.Time{}, bytes.NewReader(data))
		}))
		w.name("fw.sim", "10.0.0.1")
		w.dev.SetLink(simnet.LinkConfig{Delay: 5 * time.Millisecond})
		var c download.Controller
		c.EnterOffline(download.UDP, download.TCP)
		urls := map[string]download.Transport{
			"coap://fw.sim/fw.bin":     download.UDP,
			"coaps://fw.sim/fw.bin":    download.UDP,
			"coap+tcp://fw.sim/fw.bin": download.TCP,
			"http://fw.sim/fw.bin":     download.TCP,
		}
		ds := map[string]*download.Download{}
		sinks := map[string]*memSink{}
		for url, tr := range urls {
			sinks[url] = &memSink{}
			d, err := c.Start(context.Background(), url, sinks[url], &download.Options{NewSocket: w.socket, DTLS: pskConfig()})
			if err != nil {
				t.Fatal(err)
			}
			if d.Transport() != tr {
				t.Fatalf("%s runs over %s, want %s", url, d.Transport(), tr)
			}
			ds[url] = d
		}
		check := func(when string, offline download.Transport) {
			t.Helper()
			time.Sleep(time.Minute)
			for url, d := range ds {
				if (d.Phase() == download.Suspended) != (urls[url] == offline) {
					t.Fatalf("%s: %s is %v", when, url, d.Phase())
				}
			}
		}
		c.ExitOffline(download.TCP)
		check("UDP offline", download.UDP)
		for url, d := range ds {
			if urls[url] == download.TCP {
				if err := d.Wait(); err != nil {
					t.Fatalf("%s: %v", url, err)
				}
			} else if d.Written() != 0 {
				t.Fatalf("%s wrote while its transport was offline", url)
			}
		}
		c.ExitOffline(download.UDP)
		for url, d := range ds {
			if err := d.Wait(); err != nil || sinks[url].sum() != want {
				t.Fatalf("%s: %v", url, err)
			}
		}
	})
}

// TestHTTPSResumesItsSession: every reconnect of an https download after an
// offline period resumes the TLS session (the download keeps a session
// cache of its own): one full handshake in all.
func TestHTTPSResumesItsSession(t *testing.T) {
	data := testrig.Bytes(2<<20, 98)
	want := sha256.Sum256(data)
	var (
		mu            sync.Mutex
		full, resumed int
	)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("ETag", `"v1"`)
		http.ServeContent(rw, r, "fw.bin", time.Time{}, slowReader{bytes.NewReader(data)})
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{testpki.Get().Server}, VerifyConnection: func(cs tls.ConnectionState) error {
		mu.Lock()
		defer mu.Unlock()
		if cs.DidResume {
			resumed++
		} else {
			full++
		}
		return nil
	}}
	srv.StartTLS()
	defer srv.Close()
	var c download.Controller
	offline := &offlineCycles{c: &c, tr: download.TCP, n: 5, every: 10, off: 10 * time.Millisecond}
	d, err := c.Start(context.Background(), srv.URL+"/fw.bin", &memSink{}, &download.Options{
		TLS: &tls.Config{RootCAs: testpki.Get().Pool}, SHA256: want[:], Progress: offline.progress})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Wait(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if offline.cycles() != 5 || full != 1 || resumed < 5 {
		t.Fatalf("%d offline cycles over https: %d full handshakes, %d resumed; want 1 full", offline.cycles(), full, resumed)
	}
}

package download_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/coap/fileserver"
	"github.com/tether-iot/tether/download"
	"github.com/tether-iot/tether/internal/testpki"
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/sock/simnet"
)

// handshakes wraps a TLS listener and records, per connection, whether its
// handshake resumed a session.
type handshakes struct {
	net.Listener
	mu      sync.Mutex
	full    int
	resumed int
}

func (h *handshakes) Accept() (net.Conn, error) {
	c, err := h.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := c.(*tls.Conn)
	if err := tc.Handshake(); err == nil {
		h.mu.Lock()
		if tc.ConnectionState().DidResume {
			h.resumed++
		} else {
			h.full++
		}
		h.mu.Unlock()
	}
	return tc, nil
}

func (h *handshakes) counts() (full, resumed int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.full, h.resumed
}

// TestOfflineOverTLS: a coaps+tcp download suspended and resumed ten times
// needs one full TLS handshake in all; every reconnect resumes the session.
func TestOfflineOverTLS(t *testing.T) {
	data := testrig.Bytes(256<<10, 30)
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(1)
		srvHost := w.n.AddHost("a", "10.0.0.1")
		w.name("fw.sim", "10.0.0.1")
		w.dev.SetLink(simnet.LinkConfig{Delay: 5 * time.Millisecond})
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "fw.bin"), data, 0o644)
		srv, err := fileserver.New(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		ln, err := srvHost.Listen("tcp", ":5684")
		if err != nil {
			t.Fatal(err)
		}
		hs := &handshakes{Listener: tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{testpki.Get().Server}})}
		go srv.ServeTCP(hs)

		var (
			c    download.Controller
			sink memSink
		)
		want := sha256.Sum256(data)
		offline := &offlineCycles{c: &c, tr: download.TCP, n: 10, every: 1, off: time.Second}
		d, err := c.Start(context.Background(), "coaps+tcp://fw.sim/fw.bin", &sink, &download.Options{
			NewSocket: w.socket, TLS: &tls.Config{RootCAs: testpki.Get().Pool}, SHA256: want[:], Progress: offline.progress,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Wait(); err != nil {
			t.Fatal(err)
		}
		if sink.sum() != want {
			t.Fatal("SHA-256 differs")
		}
		full, resumed := hs.counts()
		cycles := offline.cycles()
		if cycles != 10 || full != 1 || resumed < cycles {
			t.Fatalf("%d offline cycles: %d full handshakes, %d resumed; want 1 full in all", cycles, full, resumed)
		}
		t.Logf("%d offline cycles over TLS: %d full handshake, %d resumed", cycles, full, resumed)
	})
}

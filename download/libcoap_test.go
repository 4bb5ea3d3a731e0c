package download_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/pion/dtls/v3"

	"github.com/tether-iot/tether/coap/fileserver"
	"github.com/tether-iot/tether/download"
	"github.com/tether-iot/tether/internal/peertest"
)

// TestResumeAgainstLibcoap: libcoap's ETag is a per-transfer counter, absent
// from a request for block N > 0 outside an ongoing transfer, so a resume
// from a new process cannot be verified. The default policy reports that
// and never renames the partial file; the Restart policy starts over and
// ends with the right SHA-256.
func TestResumeAgainstLibcoap(t *testing.T) {
	data := randomBytes(256<<10, 20)
	port := peertest.LibcoapServer(t, "fw.bin", data)
	url := "coap://127.0.0.1:" + strconv.Itoa(port) + "/fw.bin"
	path := filepath.Join(t.TempDir(), "fw.bin")

	interrupt := func() {
		ctx, cancel := context.WithCancel(context.Background())
		fd, err := download.ToFile(ctx, url, path, &download.Options{Progress: func(p download.Progress) {
			if p.Written >= int64(len(data)/2) {
				cancel() // the process dies halfway
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		if err := fd.Wait(); !errors.Is(err, context.Canceled) {
			t.Fatalf("first run: %v", err)
		}
		st, err := download.LoadState(path + download.StateSuffix)
		if err != nil || len(st.ETag) == 0 {
			t.Fatalf("first run saved %+v, %v; want libcoap's ETag in it", st, err)
		}
	}

	interrupt()
	fd, err := download.ToFile(context.Background(), url, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = fd.Wait()
	if !errors.Is(err, download.ErrResourceChanged) {
		t.Fatalf("resume that libcoap answers without an ETag: %v, want ErrResourceChanged", err)
	}
	if _, serr := os.Stat(path); !errors.Is(serr, os.ErrNotExist) {
		t.Fatal("an unverifiable download was renamed to its final name")
	}
	t.Logf("default policy: %v", err)

	interrupt()
	fd, err = download.ToFile(context.Background(), url, path, &download.Options{OnChange: download.Restart})
	if err != nil {
		t.Fatal(err)
	}
	if err := fd.Wait(); err != nil {
		t.Fatalf("Restart policy: %v", err)
	}
	got, _ := os.ReadFile(path)
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatal("SHA-256 differs")
	}
}

// TestDTLSAgainstLibcoap: a coaps download (PSK) from libcoap's OpenSSL
// server, and libcoap's OpenSSL client downloading from tether's file
// server behind a DTLS listener. SHA-256 checked both ways.
func TestDTLSAgainstLibcoap(t *testing.T) {
	data := randomBytes(1<<20, 41)
	want := sha256.Sum256(data)
	t.Run("tether<-libcoap", func(t *testing.T) {
		port := peertest.LibcoapServerWith(t, "coap-server-openssl", "fw.bin", data, "-k", "tether test key!", "-h", "CoAP")
		url := "coaps://127.0.0.1:" + strconv.Itoa(port+1) + "/fw.bin"
		var sink memSink
		cfg := pskConfig()
		d, err := download.Start(context.Background(), url, &sink, &download.Options{DTLS: cfg, SHA256: want[:]})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Wait(); err != nil {
			t.Fatal(err)
		}
		if sink.sum() != want {
			t.Fatal("SHA-256 differs")
		}
	})
	t.Run("libcoap<-tether", func(t *testing.T) {
		cli := peertest.Require(t, "coap-client-openssl")
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "fw.bin"), data, 0o644)
		srv, err := fileserver.New(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		cfg := pskConfig()
		cfg.CipherSuites = []dtls.CipherSuiteID{dtls.TLS_PSK_WITH_AES_128_CCM_8, dtls.TLS_PSK_WITH_AES_128_CCM, dtls.TLS_PSK_WITH_AES_128_GCM_SHA256}
		ln, err := dtls.Listen("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		go srv.ServeDatagramListener(ln)
		out := filepath.Join(t.TempDir(), "out")
		cmd := exec.Command(cli, "-u", "device-1", "-k", "tether test key!", "-b", "1024", "-B", "60", "-o", out,
			"coaps://127.0.0.1:"+strconv.Itoa(ln.Addr().(*net.UDPAddr).Port)+"/fw.bin")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("coap-client-openssl: %v\n%s", err, b)
		}
		got, err := os.ReadFile(out)
		if err != nil || sha256.Sum256(got) != want {
			t.Fatalf("libcoap's client got %d bytes, SHA-256 match %v (%v)", len(got), err == nil && sha256.Sum256(got) == want, err)
		}
	})
}

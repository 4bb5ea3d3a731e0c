package download_test

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/pion/dtls/v3"

	"github.com/tether-iot/tether/download"
	"github.com/tether-iot/tether/internal/peertest"
	"github.com/tether-iot/tether/internal/testpki"
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/dtlssock"
)

// TestResumeAgainstLibcoap: libcoap's ETag is a per-transfer counter, absent
// from a request for block N > 0 outside an ongoing transfer, so a resume
// from a new process cannot be verified. The default policy reports that
// and never renames the partial file; the Restart policy starts over and
// ends with the right SHA-256.
func TestResumeAgainstLibcoap(t *testing.T) {
	data := testrig.Bytes(256<<10, 20)
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
	if !errors.Is(err, download.ErrUnverified) {
		t.Fatalf("resume that libcoap answers without an ETag: %v, want ErrUnverified", err)
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
	data := testrig.Bytes(1<<20, 41)
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
		// A wrong key: OpenSSL drops our Finished without an alert; the
		// download tells it from the server's repeated hellos, and ends
		// when a second handshake meets the same refusal.
		wrong := pskConfig()
		wrong.PSK = func([]byte) ([]byte, error) { return []byte("not the key"), nil }
		start := time.Now()
		d, err = download.Start(context.Background(), url, &memSink{}, &download.Options{DTLS: wrong})
		if err != nil {
			t.Fatal(err)
		}
		err = d.Wait()
		if !errors.Is(err, sock.ErrAuth) || d.Progress().Retries != 1 {
			t.Fatalf("a wrong key against libcoap: %v after %v and %d retries; want sock.ErrAuth after one retry", err, time.Since(start), d.Progress().Retries)
		}
		t.Logf("wrong key refused after %v: %v", time.Since(start).Round(time.Millisecond), err)
	})
	t.Run("libcoap<-tether", func(t *testing.T) {
		cli := peertest.Require(t, "coap-client-openssl")
		addr := dtlsFileServer(t, data, pskServer(
			dtls.WithCipherSuites(dtls.TLS_PSK_WITH_AES_128_CCM_8, dtls.TLS_PSK_WITH_AES_128_CCM, dtls.TLS_PSK_WITH_AES_128_GCM_SHA256))...)
		out := filepath.Join(t.TempDir(), "out")
		cmd := exec.Command(cli, "-u", "device-1", "-k", "tether test key!", "-b", "1024", "-B", "60", "-o", out,
			"coaps://"+addr+"/fw.bin")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("coap-client-openssl: %v\n%s", err, b)
		}
		got, err := os.ReadFile(out)
		if err != nil || sha256.Sum256(got) != want {
			t.Fatalf("libcoap's client got %d bytes, SHA-256 match %v (%v)", len(got), err == nil && sha256.Sum256(got) == want, err)
		}
	})
}

// TestDTLSCertificatesAgainstLibcoap: coaps with X.509 certificates from a
// CA the test makes, both ways: a tether download verifies libcoap's OpenSSL
// server against the CA, and libcoap's OpenSSL client verifies tether's
// server (-R names the CA as its only trust root). SHA-256 checked. A
// download that trusts another CA fails with an x509 error and writes
// nothing.
func TestDTLSCertificatesAgainstLibcoap(t *testing.T) {
	pki := testpki.Get()
	dir := t.TempDir()
	ca, cert, key := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for name, b := range map[string][]byte{ca: pki.CAPEM, cert: pki.CertPEM, key: pki.KeyPEM} {
		if err := os.WriteFile(name, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	data := testrig.Bytes(1<<20, 44)
	want := sha256.Sum256(data)

	t.Run("tether<-libcoap", func(t *testing.T) {
		// -n: libcoap asks the client for no certificate.
		port := peertest.LibcoapServerWith(t, "coap-server-openssl", "fw.bin", data, "-c", cert, "-j", key, "-n")
		url := "coaps://127.0.0.1:" + strconv.Itoa(port+1) + "/fw.bin"
		var sink memSink
		d, err := download.Start(context.Background(), url, &sink,
			&download.Options{DTLS: &dtlssock.Config{RootCAs: pki.Pool}, SHA256: want[:]})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Wait(); err != nil {
			t.Fatal(err)
		}
		if sink.sum() != want {
			t.Fatal("SHA-256 differs")
		}

		var none memSink
		d, err = download.Start(context.Background(), url, &none,
			&download.Options{DTLS: &dtlssock.Config{RootCAs: x509.NewCertPool()}})
		if err != nil {
			t.Fatal(err)
		}
		err = d.Wait()
		var ue x509.UnknownAuthorityError
		if !errors.As(err, &ue) || none.len() != 0 {
			t.Fatalf("download trusting another CA: %v, %d bytes written; want an x509 unknown-authority error and nothing", err, none.len())
		}
	})
	t.Run("libcoap<-tether", func(t *testing.T) {
		cli := peertest.Require(t, "coap-client-openssl")
		addr := dtlsFileServer(t, data, dtls.WithCertificates(pki.Server))
		out := filepath.Join(t.TempDir(), "out")
		cmd := exec.Command(cli, "-R", ca, "-b", "1024", "-B", "60", "-o", out, "coaps://"+addr+"/fw.bin")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("coap-client-openssl: %v\n%s", err, b)
		}
		got, err := os.ReadFile(out)
		if err != nil || sha256.Sum256(got) != want {
			t.Fatalf("libcoap's client got %d bytes, SHA-256 match %v (%v)", len(got), err == nil && sha256.Sum256(got) == want, err)
		}
	})
}

// TestOfflineOverDTLSAgainstLibcoap: libcoap's OpenSSL server has no
// Connection IDs, so a resume from a new port cannot restore the DTLS
// state; it resumes the session by ID in an abbreviated handshake instead.
// Five offline cycles, no exchange lost to a session the server does not
// know (no retry), and the right SHA-256. libcoap drops its ETag when a
// new session asks for block N, so the resumes are taken unverified; the
// SHA-256 checks the whole.
func TestOfflineOverDTLSAgainstLibcoap(t *testing.T) {
	data := testrig.Bytes(512<<10, 46)
	want := sha256.Sum256(data)
	port := peertest.LibcoapServerWith(t, "coap-server-openssl", "fw.bin", data, "-k", "tether test key!", "-h", "CoAP")
	url := "coaps://127.0.0.1:" + strconv.Itoa(port+1) + "/fw.bin"
	var (
		c    download.Controller
		sink memSink
	)
	offline := &offlineCycles{c: &c, tr: download.UDP, n: 5, every: 64, off: 20 * time.Millisecond}
	d, err := c.Start(context.Background(), url, &sink,
		&download.Options{DTLS: pskConfig(), SHA256: want[:], AllowUnverified: true, Progress: offline.progress})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Wait(); err != nil {
		t.Fatal(err)
	}
	if n := offline.cycles(); n != 5 {
		t.Fatalf("%d offline cycles, want 5", n)
	}
	if sink.sum() != want {
		t.Fatal("SHA-256 differs")
	}
	if p := d.Progress(); p.Retries != 0 {
		t.Fatalf("%d exchanges failed and were retried: a resume went to a session the server did not know; %+v", p.Retries, p)
	}
	t.Logf("5 offline cycles against libcoap over DTLS: %+v", d.Progress())
}

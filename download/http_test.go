package download_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tether-iot/tether/download"
	"github.com/tether-iot/tether/internal/testrig"
)

// slowReader makes a body take long enough to suspend in the middle.
type slowReader struct{ io.ReadSeeker }

func (r slowReader) Read(p []byte) (int, error) {
	time.Sleep(200 * time.Microsecond)
	return r.ReadSeeker.Read(p[:min(len(p), 8<<10)])
}

// httpServer serves the current version of a body; ranges, If-Range and
// ETag come from net/http's ServeContent unless ignoreRange is set.
type httpServer struct {
	mu          sync.Mutex
	body        []byte
	etag        string
	ignoreRange bool
	ranges      []string
}

func (h *httpServer) set(body []byte, etag string) {
	h.mu.Lock()
	h.body, h.etag = body, etag
	h.mu.Unlock()
}

func (h *httpServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	body, etag, ignore := h.body, h.etag, h.ignoreRange
	if rg := r.Header.Get("Range"); rg != "" {
		h.ranges = append(h.ranges, rg)
	}
	h.mu.Unlock()
	w.Header().Set("ETag", etag)
	if ignore {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		io.Copy(w, slowReader{bytes.NewReader(body)})
		return
	}
	http.ServeContent(w, r, "fw.bin", time.Time{}, slowReader{bytes.NewReader(body)})
}

// suspendTwice downloads url, suspending and resuming at a third and at
// two thirds of the body, and returns the error.
func suspendTwice(t *testing.T, url string, total int, sink *memSink, opts *download.Options, between func()) error {
	t.Helper()
	marks := make(chan int64, 4)
	o := *opts
	var next = int64(total / 3)
	var mu sync.Mutex
	o.Progress = func(p download.Progress) {
		mu.Lock()
		defer mu.Unlock()
		if next > 0 && p.Written >= next {
			marks <- p.Written
			if next < int64(2*total/3) {
				next = int64(2 * total / 3)
			} else {
				next = 0
			}
		}
	}
	d, err := download.Start(context.Background(), url, sink, &o)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case <-marks:
		case <-d.Done():
			return d.Err()
		}
		if err := d.Suspend(); err != nil {
			t.Fatal(err)
		}
		if between != nil {
			between()
		}
		time.Sleep(10 * time.Millisecond)
		d.Resume()
	}
	return d.Wait()
}

func TestHTTPResumeWithRange(t *testing.T) {
	data := testrig.Bytes(1<<20, 50)
	h := &httpServer{}
	h.set(data, `"v1"`)
	srv := httptest.NewServer(h)
	defer srv.Close()
	var sink memSink
	want := sha256.Sum256(data)
	if err := suspendTwice(t, srv.URL+"/fw.bin", len(data), &sink, &download.Options{SHA256: want[:]}, nil); err != nil {
		t.Fatal(err)
	}
	if sink.sum() != want {
		t.Fatal("SHA-256 differs")
	}
	if len(h.ranges) < 2 || !strings.HasPrefix(h.ranges[0], "bytes=") || h.ranges[0] == "bytes=0-" {
		t.Fatalf("resumes asked for ranges %q", h.ranges)
	}
	t.Logf("resumed with %q", h.ranges)
}

func TestHTTPServerIgnoresRange(t *testing.T) {
	data := testrig.Bytes(1<<20, 51)
	h := &httpServer{ignoreRange: true}
	h.set(data, `"v1"`)
	srv := httptest.NewServer(h)
	defer srv.Close()
	var sink memSink
	want := sha256.Sum256(data)
	if err := suspendTwice(t, srv.URL+"/fw.bin", len(data), &sink, &download.Options{SHA256: want[:]}, nil); err != nil {
		t.Fatal(err)
	}
	if sink.sum() != want {
		t.Fatal("SHA-256 differs: the skipped prefix was written twice or not at all")
	}
}

func TestHTTPResourceChanged(t *testing.T) {
	data := testrig.Bytes(1<<20, 52)
	h := &httpServer{}
	h.set(data, `"v1"`)
	srv := httptest.NewServer(h)
	defer srv.Close()
	path := filepath.Join(t.TempDir(), "fw.bin")
	ctx := context.Background()
	half := make(chan struct{})
	var once sync.Once
	fd, err := download.ToFile(ctx, srv.URL+"/fw.bin", path, &download.Options{Progress: func(p download.Progress) {
		if p.Written >= int64(len(data)/2) {
			once.Do(func() { close(half) })
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	<-half
	fd.Suspend()
	h.set(testrig.Bytes(len(data), 53), `"v2"`)
	fd.Resume()
	if err := fd.Wait(); !errors.Is(err, download.ErrResourceChanged) {
		t.Fatalf("resume after the resource changed: %v, want ErrResourceChanged", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a download of two versions was renamed to its final name")
	}
}

func TestHTTPS(t *testing.T) {
	data := testrig.Bytes(512<<10, 54)
	h := &httpServer{}
	h.set(data, `"v1"`)
	srv := httptest.NewTLSServer(h)
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	var sink memSink
	want := sha256.Sum256(data)
	opts := &download.Options{SHA256: want[:], TLS: &tls.Config{RootCAs: pool}}
	if err := suspendTwice(t, srv.URL+"/fw.bin", len(data), &sink, opts, nil); err != nil {
		t.Fatal(err)
	}
	if sink.sum() != want {
		t.Fatal("SHA-256 differs")
	}
}

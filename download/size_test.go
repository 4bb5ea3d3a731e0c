package download_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/download"
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/sock"
)

// TestSizeLimits: a body with no announced length is bounded by MaxSize, an
// announced one is refused at once when over it, and the default bound
// applies when none is set.
func TestSizeLimits(t *testing.T) {
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/endless": // chunked, no length, never ends
			chunk := make([]byte, 32<<10)
			for r.Context().Err() == nil {
				n, err := w.Write(chunk)
				served.Add(int64(n))
				if err != nil {
					return
				}
			}
		case "/huge": // announces 600 MiB, more than the default bound
			w.Header().Set("Content-Length", strconv.Itoa(600<<20))
			w.Write(make([]byte, 1<<20))
		}
	}))
	defer srv.Close()
	for _, tt := range []struct {
		path    string
		maxSize int64
		most    int // bytes the sink may hold
	}{
		{"/endless", 1 << 20, 1 << 20},
		{"/huge", 0, 0},
	} {
		var sink memSink
		d, err := download.Start(context.Background(), srv.URL+tt.path, &sink, &download.Options{MaxSize: tt.maxSize})
		if err != nil {
			t.Fatal(err)
		}
		err = d.Wait()
		if !errors.Is(err, download.ErrTooLarge) || !sock.IsPermanent(err) || sink.len() > tt.most {
			t.Fatalf("%s: %v with %d bytes written; want ErrTooLarge and at most %d", tt.path, err, sink.len(), tt.most)
		}
		t.Logf("%s: %v (%d bytes written, %d served)", tt.path, err, sink.len(), served.Load())
	}
}

// TestHTTPIdentityEncoding: the download asks for the bytes as they are,
// so a gzip-capable server sends them raw and a range resume is exact; a
// server that compresses anyway is refused rather than stored compressed.
func TestHTTPIdentityEncoding(t *testing.T) {
	data := bytes.Repeat([]byte("firmware "), 20000) // compresses well
	want := sha256.Sum256(data)
	var forced atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if forced.Load() || bytes.Contains([]byte(r.Header.Get("Accept-Encoding")), []byte("gzip")) {
			w.Header().Set("Content-Encoding", "gzip")
			gz := gzip.NewWriter(w)
			gz.Write(data)
			gz.Close()
			return
		}
		http.ServeContent(w, r, "fw.bin", time.Time{}, bytes.NewReader(data))
	}))
	defer srv.Close()
	var sink memSink
	d, err := download.Start(context.Background(), srv.URL+"/fw.bin", &sink, &download.Options{SHA256: want[:]})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Wait(); err != nil || sink.sum() != want {
		t.Fatalf("from a server that gzips when asked: %v", err)
	}
	forced.Store(true)
	d, err = download.Start(context.Background(), srv.URL+"/fw.bin", &memSink{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Wait(); err == nil || !sock.IsPermanent(err) {
		t.Fatalf("a body gzipped against Accept-Encoding: identity: %v, want a permanent error", err)
	}
}

// TestOverTheLimitKeepsItsPart: a partial download whose body is larger
// than this run's MaxSize is refused, and kept: a run with a larger bound
// continues it.
func TestOverTheLimitKeepsItsPart(t *testing.T) {
	data := testrig.Bytes(40<<10, 104)
	synctest.Test(t, func(t *testing.T) {
		w, _ := serving(t, data, 0)
		path := filepath.Join(t.TempDir(), "fw.bin")
		written := interrupted(t, w, fileURL, path, 20<<10, download.Options{})
		_, err := download.ToFile(context.Background(), fileURL, path, &download.Options{NewSocket: w.socket, MaxSize: 30 << 10})
		if !errors.Is(err, download.ErrTooLarge) {
			t.Fatalf("over the bound: %v, want ErrTooLarge", err)
		}
		if st, err := download.LoadState(path + download.StateSuffix); err != nil || st.Written != written {
			t.Fatalf("the partial download was touched: %+v, %v", st, err)
		}
		d, from := resumed(t, w, path, sha256.Sum256(data))
		if got, _ := os.ReadFile(path); from != written || !bytes.Equal(got, data) {
			t.Fatalf("with the default bound: continued from %d (want %d); %+v", from, written, d.Progress())
		}
	})
}

package download_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/tether-iot/tether/download"
	"github.com/tether-iot/tether/internal/testrig"
)

// redirector answers every request with a redirect to where it points
// now, and counts the requests and the ranges they asked for.
type redirector struct {
	mu     sync.Mutex
	to     string
	hits   int
	ranges []string
}

func (r *redirector) point(to string) {
	r.mu.Lock()
	r.to = to
	r.mu.Unlock()
}

func (r *redirector) counts() (hits int, ranges []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hits, append([]string(nil), r.ranges...)
}

func (r *redirector) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.hits++
	if rg := req.Header.Get("Range"); rg != "" {
		r.ranges = append(r.ranges, rg)
	}
	to := r.to
	r.mu.Unlock()
	http.Redirect(w, req, to, http.StatusFound)
}

// trusting returns a TLS configuration that trusts srv's certificate.
func trusting(srv *httptest.Server) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return &tls.Config{RootCAs: pool}
}

// TestHTTPRedirectsFollowed: with FollowRedirects a download follows a
// redirect to another server, from http to https too, and every resume
// starts again at the URL given, follows the redirect anew and asks the
// final server for the rest with Range and If-Range: the bytes are exact,
// and the final server saw the ranges.
func TestHTTPRedirectsFollowed(t *testing.T) {
	for _, secureTarget := range []bool{false, true} {
		name := "to http"
		if secureTarget {
			name = "from http to https"
		}
		t.Run(name, func(t *testing.T) {
			data := testrig.Bytes(1<<20, 60)
			h := &httpServer{}
			h.set(data, `"v1"`)
			opts := &download.Options{FollowRedirects: 10}
			var target *httptest.Server
			if secureTarget {
				target = httptest.NewTLSServer(h)
				opts.TLS = trusting(target)
			} else {
				target = httptest.NewServer(h)
			}
			defer target.Close()
			r := &redirector{to: target.URL + "/files/fw.bin"}
			front := httptest.NewServer(r)
			defer front.Close()
			want := sha256.Sum256(data)
			opts.SHA256 = want[:]
			var sink memSink
			if err := suspendTwice(t, front.URL+"/fw.bin", len(data), &sink, opts, nil); err != nil {
				t.Fatal(err)
			}
			if sink.sum() != want {
				t.Fatal("SHA-256 differs")
			}
			hits, frontRanges := r.counts()
			h.mu.Lock()
			ranges := append([]string(nil), h.ranges...)
			h.mu.Unlock()
			if hits < 3 || len(frontRanges) < 2 || len(ranges) < 2 || ranges[0] == "bytes=0-" {
				t.Fatalf("the redirector saw %d requests, ranges %q; the final server ranges %q: want every resume through the redirect, with its range", hits, frontRanges, ranges)
			}
			t.Logf("redirected %d times; the final server was asked for %q", hits, ranges)
		})
	}
}

// TestHTTPRedirectsRefused: without FollowRedirects a redirect ends the
// download at once with an *HTTPError that names the Location; a loop
// ends after FollowRedirects redirects with ErrTooManyRedirects; a
// redirect from https to http, or to a scheme that is not HTTP, is
// refused with ErrRedirectRefused before anything is asked of it. None is
// retried.
func TestHTTPRedirectsRefused(t *testing.T) {
	plain := &httpServer{}
	plain.set([]byte("firmware"), `"v1"`)
	plainSrv := httptest.NewServer(plain)
	defer plainSrv.Close()

	tests := []struct {
		name      string
		tls       bool   // the redirector serves https
		to        string // where it points; "" is itself: a loop
		follow    int
		wantErr   error
		wantHits  int    // requests the redirector sees
		wantInErr string // in the error's text
	}{
		{"not followed", false, plainSrv.URL + "/fw.bin", 0, nil, 1, "302 Found, a redirect to " + plainSrv.URL + "/fw.bin, not followed"},
		{"a loop", false, "", 3, download.ErrTooManyRedirects, 4, "4 in a row"},
		{"https to http", true, plainSrv.URL + "/fw.bin", 10, download.ErrRedirectRefused, 1, "does not go on without TLS"},
		{"to another scheme", false, "coap://127.0.0.1/fw.bin", 10, download.ErrRedirectRefused, 1, "only http and https"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &redirector{to: tt.to}
			var front *httptest.Server
			if tt.tls {
				front = httptest.NewTLSServer(r)
			} else {
				front = httptest.NewServer(r)
			}
			defer front.Close()
			if tt.to == "" {
				r.point(front.URL + "/fw.bin")
			}
			opts := &download.Options{FollowRedirects: tt.follow}
			if tt.tls {
				opts.TLS = trusting(front)
			}
			plain.mu.Lock()
			plain.ranges = nil
			plain.mu.Unlock()
			d, err := download.Start(context.Background(), front.URL+"/fw.bin", &memSink{}, opts)
			if err != nil {
				t.Fatal(err)
			}
			err = d.Wait()
			var he *download.HTTPError
			switch {
			case tt.wantErr == nil && (!errors.As(err, &he) || he.Code != http.StatusFound || he.Location != plainSrv.URL+"/fw.bin"):
				t.Fatalf("%v; want an *HTTPError 302 with Location %s", err, plainSrv.URL+"/fw.bin")
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("%v; want %v", err, tt.wantErr)
			case !strings.Contains(err.Error(), tt.wantInErr):
				t.Fatalf("%v; want it to say %q", err, tt.wantInErr)
			}
			if hits, _ := r.counts(); hits != tt.wantHits {
				t.Errorf("the redirector saw %d requests, want %d", hits, tt.wantHits)
			}
			if p := d.Progress(); p.Retries != 0 {
				t.Errorf("retried %d times: %v", p.Retries, p.LastError)
			}
			t.Logf("%v", err)
		})
	}
}

// TestHTTPRedirectToAnotherVersion: a resume that a redirect now sends to
// another version of the file (a mirror that has moved on) is refused by
// its validator (If-Range), never spliced: ErrResourceChanged.
func TestHTTPRedirectToAnotherVersion(t *testing.T) {
	data := testrig.Bytes(1<<20, 61)
	v1, v2 := &httpServer{}, &httpServer{}
	v1.set(data, `"v1"`)
	v2.set(testrig.Bytes(len(data), 62), `"v2"`)
	s1, s2 := httptest.NewServer(v1), httptest.NewServer(v2)
	defer s1.Close()
	defer s2.Close()
	r := &redirector{to: s1.URL + "/fw.bin"}
	front := httptest.NewServer(r)
	defer front.Close()
	var sink memSink
	err := suspendTwice(t, front.URL+"/fw.bin", len(data), &sink, &download.Options{FollowRedirects: 10},
		func() { r.point(s2.URL + "/fw.bin") })
	if !errors.Is(err, download.ErrResourceChanged) {
		t.Fatalf("resumed through a redirect to another version: %v, want ErrResourceChanged", err)
	}
}

// TestFollowRedirectsOption: a negative count is a usage error.
func TestFollowRedirectsOption(t *testing.T) {
	_, err := download.Start(context.Background(), "http://127.0.0.1/fw.bin", &memSink{}, &download.Options{FollowRedirects: -1})
	if !errors.Is(err, download.ErrOptions) {
		t.Fatalf("FollowRedirects -1: %v, want ErrOptions", err)
	}
}

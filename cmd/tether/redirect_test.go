package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tether-iot/tether/internal/testrig"
)

// TestGetFollowsRedirects: get -L follows a redirect to the file; without
// -L the redirect ends the run with exit 22, naming where it points and
// -L; a loop ends after --max-redirs with exit 47; a redirect to a scheme
// that is not HTTP is refused with exit 1.
func TestGetFollowsRedirects(t *testing.T) {
	data := testrig.Bytes(100<<10, 70)
	sum := sha256.Sum256(data)
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		http.ServeContent(w, r, "fw.bin", time.Time{}, bytes.NewReader(data))
	}))
	defer files.Close()
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/fw.bin":
			http.Redirect(w, r, files.URL+"/files/fw.bin", http.StatusFound)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusMovedPermanently)
		case "/coap":
			http.Redirect(w, r, "coap://127.0.0.1/fw.bin", http.StatusTemporaryRedirect)
		default:
			http.NotFound(w, r)
		}
	}))
	defer front.Close()
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"followed", []string{"get", "-L", front.URL + "/fw.bin", "--sha256", hex.EncodeToString(sum[:])}, exitOK, ""},
		{"not followed", []string{"get", front.URL + "/fw.bin"}, exitServer, "302 Found, a redirect to " + files.URL + "/files/fw.bin, not followed (-L follows redirects)"},
		{"a loop", []string{"get", "--location", "--max-redirs", "3", front.URL + "/loop"}, exitRedirects, "4 in a row"},
		{"to CoAP", []string{"get", "-L", front.URL + "/coap"}, exitFailure, "only http and https are followed"},
		{"--max-redirs 0", []string{"get", "-L", "--max-redirs", "0", front.URL + "/fw.bin"}, exitUsage, "--max-redirs 0: want 1 or more"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"))
			code, _, stderr := runCmd(append(tt.args, "-o", out, "-q")...)
			if code != tt.code || !strings.Contains(stderr, tt.want) {
				t.Fatalf("tether %q: exit %d, stderr %q; want %d and %q", tt.args, code, stderr, tt.code, tt.want)
			}
			got, err := os.ReadFile(out)
			if (tt.code == exitOK) != (err == nil) || (err == nil && sha256.Sum256(got) != sum) {
				t.Fatalf("%s: %d bytes (%v)", out, len(got), err)
			}
		})
	}
}

package download

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestParseURL: CoAP URLs become options as RFC 7252 section 6.4 says, and
// what tether cannot handle is refused with the reason.
func TestParseURL(t *testing.T) {
	tests := []struct {
		raw         string
		path        string
		query       []string
		host, uri   string
		port, error string
	}{
		{raw: "coap://fw.example/fw/image.bin", path: "fw/image.bin", host: "fw.example", uri: "fw.example", port: "5683"},
		{raw: "coaps://FW.Example:7000/a%20b/%C3%A9?v=2&x=a%26b&y=1+1", path: "a b/é", query: []string{"v=2", "x=a&b", "y=1+1"},
			host: "FW.Example", uri: "fw.example", port: "7000"},
		{raw: "coap+tcp://[::1]/x", path: "x", host: "::1", port: "5683"},
		{raw: "coaps+tcp://[fe80::1%25eth0]:99/x", path: "x", host: "fe80::1%eth0", port: "99"},
		{raw: "coap://192.0.2.1/x?", path: "x", host: "192.0.2.1", port: "5683"},
		{raw: "http://fw.example/x?a=b", host: "fw.example", port: "80"},
		{raw: "coap://fw.example/a%2Fb", error: "encoded '/'"},
		{raw: "coap://fw.example//x", error: "empty path segment"},
		{raw: "coap://fw.example/x/", error: "empty path segment"},
		{raw: "coap://fw.example/x#frag", error: "fragment"},
		{raw: "coap://user@fw.example/x", error: "user name"},
		{raw: "coap://fw.example", error: "no path"},
		{raw: "coap://fw.example/", error: "no path"},
		{raw: "coap://fw.example/x?%zz", error: "invalid URL escape"},
		{raw: "mqtt://fw.example/x", error: "scheme"},
	}
	for _, tt := range tests {
		got, err := parseURL(tt.raw)
		if tt.error != "" {
			if !errors.Is(err, ErrBadURL) || !strings.Contains(err.Error(), tt.error) {
				t.Errorf("parseURL(%q) = %v, want ErrBadURL saying %q", tt.raw, err, tt.error)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseURL(%q): %v", tt.raw, err)
			continue
		}
		if got.path != tt.path || !slices.Equal(got.query, tt.query) || got.host != tt.host || got.uriHost != tt.uri || got.port != tt.port {
			t.Errorf("parseURL(%q) = path %q query %q host %q Uri-Host %q port %q", tt.raw, got.path, got.query, got.host, got.uriHost, got.port)
		}
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"coap://fw.example/fw.bin?a=b&c", "coaps://[fe80::1%25eth0]:99/a%20b", "http://x/y?z#w", "coap://%zz/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := parseURL(raw)
		if err != nil {
			if !errors.Is(err, ErrBadURL) {
				t.Fatalf("parseURL(%q): %v is not ErrBadURL", raw, err)
			}
			return
		}
		if got.host == "" || got.port == "" || (!got.scheme.http && (got.path == "" || strings.HasPrefix(got.path, "/"))) {
			t.Fatalf("parseURL(%q) accepted %+v", raw, got)
		}
	})
}

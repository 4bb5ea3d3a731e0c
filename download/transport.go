package download

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"

	"github.com/tether-iot/tether/sock/sockkit"
)

// Transport is the physical transport a download runs over, the unit of
// offline mode, as in Anjay: UDP carries coap:// and coaps:// (DTLS runs
// over UDP), TCP carries coap+tcp://, coaps+tcp://, http:// and https://.
// Going offline on UDP suspends every coap and coaps download and leaves
// TCP's alone.
type Transport string

// Transports.
const (
	UDP Transport = "udp"
	TCP Transport = "tcp"
)

// scheme is a URL scheme tether downloads, with what it runs over.
type scheme struct {
	name      string    // "coaps+tcp"
	transport Transport // the physical one
	port      string    // the default port
	secure    bool      // TLS (over TCP) or DTLS (over UDP) on the raw socket
	http      bool
}

var schemes = []scheme{
	{"coap", UDP, "5683", false, false},
	{"coaps", UDP, "5684", true, false},
	{"coap+tcp", TCP, "5683", false, false},
	{"coaps+tcp", TCP, "5684", true, false},
	{"http", TCP, "80", false, true},
	{"https", TCP, "443", true, true},
}

// target is a parsed download URL.
type target struct {
	url        *url.URL
	scheme     scheme
	host, port string
	path       string   // CoAP: the Uri-Path segments, percent-decoded, joined by "/"
	query      []string // CoAP: the Uri-Query options, percent-decoded
	uriHost    string   // CoAP: Uri-Host, when the host is a name (RFC 7252 6.4 step 5)
}

// String is the URL, for messages.
func (t *target) String() string { return t.url.String() }

// parseURL checks a URL tether can download: a known scheme, a valid host
// (an IPv6 literal may name its zone: [fe80::1%25eth0]) and port, a path.
// A CoAP URL becomes options as RFC 7252 section 6.4 says: the path's
// segments and the query's parts, each percent-decoded, become Uri-Path and
// Uri-Query, and a host name becomes Uri-Host.
func parseURL(raw string) (*target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadURL, err)
	}
	t := &target{url: u}
	var names []string
	for _, s := range schemes {
		names = append(names, s.name)
		if u.Scheme == s.name {
			t.scheme = s
		}
	}
	if t.scheme.name == "" {
		return nil, fmt.Errorf("%w: scheme %q (want %s)", ErrBadURL, u.Scheme, strings.Join(names, ", "))
	}
	t.host, t.port = u.Hostname(), u.Port()
	if t.port == "" {
		t.port = t.scheme.port
	}
	if err := sockkit.CheckHost(t.host); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadURL, err)
	}
	if _, err := sockkit.ParsePort(t.port, false); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadURL, err)
	}
	switch {
	case u.User != nil:
		return nil, fmt.Errorf("%w: %q: a user name has no place in a download URL", ErrBadURL, raw)
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return nil, fmt.Errorf("%w: %q: a fragment is not sent to the server (RFC 7252 6.4)", ErrBadURL, raw)
	case strings.Trim(u.Path, "/") == "":
		return nil, fmt.Errorf("%w: %q names no file (it has no path)", ErrBadURL, raw)
	}
	if t.scheme.http {
		return t, nil
	}
	var segs []string
	for _, esc := range strings.Split(strings.TrimPrefix(u.EscapedPath(), "/"), "/") {
		if esc == "" {
			return nil, fmt.Errorf("%w: %q: an empty path segment is not supported", ErrBadURL, raw)
		}
		seg, err := url.PathUnescape(esc)
		if err != nil {
			return nil, fmt.Errorf("%w: %q: %w", ErrBadURL, raw, err)
		}
		if strings.Contains(seg, "/") {
			return nil, fmt.Errorf("%w: %q: a path segment with an encoded '/' (%%2F) is not supported", ErrBadURL, raw)
		}
		segs = append(segs, seg)
	}
	t.path = strings.Join(segs, "/")
	if u.RawQuery != "" {
		for part := range strings.SplitSeq(u.RawQuery, "&") {
			q, err := url.QueryUnescape(strings.ReplaceAll(part, "+", "%2B")) // '+' is itself in CoAP, not a space
			if err != nil {
				return nil, fmt.Errorf("%w: %q: %w", ErrBadURL, raw, err)
			}
			t.query = append(t.query, q)
		}
	}
	if _, err := netip.ParseAddr(t.host); err != nil {
		t.uriHost = strings.ToLower(t.host)
	}
	return t, nil
}

// endpoint is the server as messages name it: host:port.
func (t *target) endpoint() string {
	return sockkit.UnresolvedAddr{Host: t.host, Port: t.port}.String()
}

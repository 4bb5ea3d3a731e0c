package download

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/tether-iot/tether/sock"
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
}

// String is the URL, for messages.
func (t *target) String() string { return t.url.String() }

// parseURL checks a URL tether can download: a known scheme, a valid host
// and port, a path; a query only for HTTP.
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
	if err := sock.CheckHost(t.host); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadURL, err)
	}
	if _, err := sock.ParsePort(t.port, false); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadURL, err)
	}
	query := u.RawQuery != "" && !t.scheme.http
	if u.User != nil || query || u.Fragment != "" || strings.Trim(u.Path, "/") == "" {
		return nil, fmt.Errorf("%w: %q needs a path, and no user, query or fragment", ErrBadURL, raw)
	}
	return t, nil
}

// endpoint is the server as messages name it: host:port.
func (t *target) endpoint() string { return sock.UnresolvedAddr{Host: t.host, Port: t.port}.String() }

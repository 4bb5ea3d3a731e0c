package sockkit_test

import (
	"context"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/sockkit"
)

// FuzzCheckHost: never panics; what it accepts fits in DNS or is a literal.
func FuzzCheckHost(f *testing.F) {
	for _, s := range []string{"localhost", "a.b.", "192.0.2.1", "fe80::1%eth0", "", "..", strings.Repeat("a", 300), "x\x00y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		if sockkit.CheckHost(host) != nil {
			return
		}
		if _, err := netip.ParseAddr(host); err == nil {
			return
		}
		name := strings.TrimSuffix(host, ".")
		if len(name) > 253 {
			t.Fatalf("accepted a %d-character name", len(name))
		}
		for _, l := range strings.Split(name, ".") {
			if len(l) == 0 || len(l) > 63 {
				t.Fatalf("accepted label %q", l)
			}
		}
	})
}

// FuzzParsePort: what it accepts is the canonical decimal of the result.
func FuzzParsePort(f *testing.F) {
	for _, s := range []string{"5683", "0", "", "65535", "65536", "+1", "-0", "007"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, allowZero bool) {
		p, err := sockkit.ParsePort(s, allowZero)
		if err != nil {
			return
		}
		if s == "" && allowZero && p == 0 {
			return
		}
		if strconv.Itoa(int(p)) != strings.TrimLeft(s, "0") && !(p == 0 && strings.Trim(s, "0") == "") {
			t.Fatalf("ParsePort(%q) = %d", s, p)
		}
		if p == 0 && !allowZero {
			t.Fatalf("ParsePort(%q, false) accepted port 0", s)
		}
	})
}

// FuzzPreferredEndpoint: text it accepts survives a round trip.
func FuzzPreferredEndpoint(f *testing.F) {
	for _, s := range []string{"192.0.2.1:5683", "[2001:db8::1]:5684", "[fe80::1%eth0]:1", "", "1.2.3.4:0", "[::ffff:1.2.3.4]:9"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		var a, b sock.PreferredEndpoint
		if a.UnmarshalText(text) != nil {
			return
		}
		out, err := a.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		if err := b.UnmarshalText(out); err != nil {
			t.Fatalf("re-parsing %q (from %q): %v", out, text, err)
		}
		x, _ := a.Load()
		y, _ := b.Load()
		if x != y {
			t.Fatalf("round trip %q -> %v -> %q -> %v", text, x, out, y)
		}
	})
}

// FuzzCandidates: any host and port give candidates of the asked family and
// port, or an error; never a panic.
func FuzzCandidates(f *testing.F) {
	var dns sockkit.StaticResolver
	dns.Set("dual.test", netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1"))
	for _, s := range []string{"dual.test", "192.0.2.9", "::1", "nowhere.test", ""} {
		f.Add(s, "5683", uint8(0), uint8(0))
	}
	f.Fuzz(func(t *testing.T, host, port string, only, prefer uint8) {
		pol := sockkit.Policy{Only: sock.Family(only % 3), Prefer: sock.Family(prefer % 3)}
		got, err := sockkit.Candidates(context.Background(), &dns, host, port, pol)
		if err != nil {
			return
		}
		p, perr := sockkit.ParsePort(port, false)
		if perr != nil || len(got) == 0 {
			t.Fatalf("Candidates(%q, %q) = %v with port error %v", host, port, got, perr)
		}
		for _, ap := range got {
			if ap.Port() != p || !pol.Only.Has(ap.Addr()) {
				t.Fatalf("candidate %v breaks port %d or family %v", ap, p, pol.Only)
			}
		}
	})
}

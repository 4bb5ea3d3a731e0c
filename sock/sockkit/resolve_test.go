package sockkit_test

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/sockkit"
)

func aps(s ...string) []netip.AddrPort {
	out := make([]netip.AddrPort, len(s))
	for i, x := range s {
		out[i] = netip.MustParseAddrPort(x)
	}
	return out
}

func TestCandidates(t *testing.T) {
	var dns sockkit.StaticResolver
	dns.Set("mixed.test",
		netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1"),
		netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("::ffff:192.0.2.3"))
	sticky := func(s string) *sock.PreferredEndpoint {
		var p sock.PreferredEndpoint
		p.Store(netip.MustParseAddrPort(s))
		return &p
	}
	tests := []struct {
		name, host string
		pol        sockkit.Policy
		want       []netip.AddrPort
		err        error
	}{
		{"resolver order, mapped unmapped", "mixed.test", sockkit.Policy{},
			aps("192.0.2.1:5683", "[2001:db8::1]:5683", "192.0.2.2:5683", "192.0.2.3:5683"), nil},
		{"prefer IPv6", "mixed.test", sockkit.Policy{Prefer: sock.IPv6},
			aps("[2001:db8::1]:5683", "192.0.2.1:5683", "192.0.2.2:5683", "192.0.2.3:5683"), nil},
		{"only IPv4", "mixed.test", sockkit.Policy{Only: sock.IPv4},
			aps("192.0.2.1:5683", "192.0.2.2:5683", "192.0.2.3:5683"), nil},
		{"sticky first", "mixed.test", sockkit.Policy{Sticky: sticky("192.0.2.2:5683")},
			aps("192.0.2.2:5683", "192.0.2.1:5683", "[2001:db8::1]:5683", "192.0.2.3:5683"), nil},
		{"sticky beats preferred family", "mixed.test", sockkit.Policy{Prefer: sock.IPv6, Sticky: sticky("192.0.2.3:5683")},
			aps("192.0.2.3:5683", "[2001:db8::1]:5683", "192.0.2.1:5683", "192.0.2.2:5683"), nil},
		{"sticky on another port is ignored", "mixed.test", sockkit.Policy{Sticky: sticky("192.0.2.2:5684")},
			aps("192.0.2.1:5683", "[2001:db8::1]:5683", "192.0.2.2:5683", "192.0.2.3:5683"), nil},
		{"sticky gone from DNS", "mixed.test", sockkit.Policy{Sticky: sticky("192.0.2.9:5683")},
			aps("192.0.2.1:5683", "[2001:db8::1]:5683", "192.0.2.2:5683", "192.0.2.3:5683"), nil},
		{"literal needs no resolver", "2001:db8::7", sockkit.Policy{}, aps("[2001:db8::7]:5683"), nil},
		{"literal of the wrong family", "192.0.2.7", sockkit.Policy{Only: sock.IPv6}, nil, sock.ErrAddrNotAvail},
		{"unknown name", "nowhere.test", sockkit.Policy{}, nil, sock.ErrAddrNotAvail},
		{"name too long", strings.Repeat("a.", 127) + "a", sockkit.Policy{}, nil, sock.ErrInvalidHost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := sockkit.Candidates(context.Background(), &dns, tt.host, "5683", tt.pol)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("Candidates = %v, %v\nwant %v", got, err, tt.want)
			}
		})
	}
}

func TestCheckHost(t *testing.T) {
	label63 := strings.Repeat("a", 63)
	name253 := label63 + "." + label63 + "." + label63 + "." + strings.Repeat("b", 61)
	tests := []struct {
		host string
		ok   bool
	}{
		{"localhost", true},
		{"coap.example.com", true},
		{"coap.example.com.", true},
		{"192.0.2.1", true},
		{"2001:db8::1", true},
		{"fe80::1%eth0", true},
		{name253, true},
		{name253 + ".", true},
		{name253 + "b", false},
		{label63 + ".example", true},
		{label63 + "a.example", false},
		{"", false},
		{"a..b", false},
		{".", false},
		{"has space", false},
		{"ctl\x00", false},
		{"[::1]", false},
		{"a/b", false},
	}
	for _, tt := range tests {
		err := sockkit.CheckHost(tt.host)
		if (err == nil) != tt.ok {
			t.Errorf("CheckHost(%.40q) = %v, want ok=%v", tt.host, err, tt.ok)
		}
		if err != nil && !errors.Is(err, sock.ErrInvalidHost) {
			t.Errorf("CheckHost(%.40q) = %v, not ErrInvalidHost", tt.host, err)
		}
	}
}

func TestParsePort(t *testing.T) {
	tests := []struct {
		in        string
		allowZero bool
		want      uint16
		ok        bool
	}{
		{"5683", false, 5683, true},
		{"1", false, 1, true},
		{"65535", false, 65535, true},
		{"65536", false, 0, false},
		{"0", false, 0, false},
		{"0", true, 0, true},
		{"", true, 0, true},
		{"", false, 0, false},
		{"+80", false, 0, false},
		{"-1", false, 0, false},
		{"coap", false, 0, false},
		{"000080", false, 0, false},
		{" 80", false, 0, false},
	}
	for _, tt := range tests {
		got, err := sockkit.ParsePort(tt.in, tt.allowZero)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParsePort(%q, %v) = %d, %v; want %d ok=%v", tt.in, tt.allowZero, got, err, tt.want, tt.ok)
		}
		if err != nil && !errors.Is(err, sock.ErrInvalidPort) {
			t.Errorf("ParsePort(%q) = %v, not ErrInvalidPort", tt.in, err)
		}
	}
}

func TestPreferredEndpointText(t *testing.T) {
	var pe sock.PreferredEndpoint
	if b, _ := pe.MarshalText(); len(b) != 0 {
		t.Fatalf("empty endpoint marshals to %q", b)
	}
	for _, s := range []string{"192.0.2.1:5683", "[2001:db8::1]:5684"} {
		if err := pe.UnmarshalText([]byte(s)); err != nil {
			t.Fatal(err)
		}
		if b, _ := pe.MarshalText(); string(b) != s {
			t.Errorf("round trip of %q gave %q", s, b)
		}
	}
	for _, bad := range []string{"192.0.2.1", "192.0.2.1:0", "host:5683", "[::1]:99999"} {
		if err := pe.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("UnmarshalText(%q) accepted it", bad)
		}
	}
	if err := pe.UnmarshalText(nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := pe.Load(); ok {
		t.Error("UnmarshalText of empty text left an endpoint")
	}
}

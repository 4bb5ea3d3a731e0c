package sockkit_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/sockkit"
)

func TestParseNetwork(t *testing.T) {
	for _, tt := range []struct {
		in, transport string
		only          sock.Family
	}{
		{"udp", "udp", sock.AnyFamily}, {"udp4", "udp", sock.IPv4}, {"udp6", "udp", sock.IPv6},
		{"tcp", "tcp", sock.AnyFamily}, {"tcp4", "tcp", sock.IPv4}, {"tcp6", "tcp", sock.IPv6},
	} {
		tr, only, err := sockkit.ParseNetwork(tt.in)
		if err != nil || tr != tt.transport || only != tt.only {
			t.Errorf("ParseNetwork(%q) = %q, %v, %v", tt.in, tr, only, err)
		}
	}
	for _, bad := range []string{"", "ip", "udp5", "unix", "UDP"} {
		var unknown net.UnknownNetworkError
		if _, _, err := sockkit.ParseNetwork(bad); !errors.As(err, &unknown) {
			t.Errorf("ParseNetwork(%q): %v, want a net.UnknownNetworkError", bad, err)
		}
	}
}

// TestConnect: the candidates are tried in order until one connects, whose
// endpoint is stored for stickiness; a bound socket tries only its family;
// a socket closed meanwhile stops the tries; the context gets a deadline.
func TestConnect(t *testing.T) {
	var dns sockkit.StaticResolver
	a4, b4, a6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("2001:db8::1")
	dns.Set("node.test", a6, a4, b4)
	ctx := context.Background()
	refused := sock.ErrConnRefused

	var tried []netip.AddrPort
	var sticky sock.PreferredEndpoint
	err := sockkit.Connect(ctx, &dns, "node.test", "5683", sockkit.Policy{Sticky: &sticky}, func(ctx context.Context, to netip.AddrPort) error {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("try got a context without a deadline")
		}
		tried = append(tried, to)
		if to.Addr() == b4 {
			return nil
		}
		return refused
	})
	if got, _ := sticky.Load(); err != nil || got.Addr() != b4 || len(tried) != 3 {
		t.Fatalf("Connect = %v after %v, stored %v; want the third, stored", err, tried, got)
	}

	tried = nil
	bound := netip.MustParseAddrPort("192.0.2.9:40000")
	err = sockkit.Connect(ctx, &dns, "node.test", "5683", sockkit.Policy{Bound: bound}, func(_ context.Context, to netip.AddrPort) error {
		tried = append(tried, to)
		return refused
	})
	if !errors.Is(err, refused) || slices.ContainsFunc(tried, func(ap netip.AddrPort) bool { return ap.Addr().Is6() }) {
		t.Fatalf("bound to IPv4: %v after %v; want refused, IPv4 only", err, tried)
	}

	tried = nil
	err = sockkit.Connect(ctx, &dns, "node.test", "5683", sockkit.Policy{}, func(_ context.Context, to netip.AddrPort) error {
		tried = append(tried, to)
		return net.ErrClosed
	})
	if !errors.Is(err, net.ErrClosed) || len(tried) != 1 {
		t.Fatalf("closed meanwhile: %v after %v; want one try", err, tried)
	}

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	err = sockkit.Connect(canceled, nil, "192.0.2.1", "5683", sockkit.Policy{}, func(context.Context, netip.AddrPort) error {
		t.Error("tried with a canceled context")
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v", err)
	}
	if err := sockkit.Connect(ctx, &dns, "node.test", "0", sockkit.Policy{}, nil); !errors.Is(err, sock.ErrInvalidPort) {
		t.Fatalf("port 0: %v", err)
	}
}

func TestBindEndpoint(t *testing.T) {
	var dns sockkit.StaticResolver
	dns.Set("me.test", netip.MustParseAddr("2001:db8::2"), netip.MustParseAddr("192.0.2.2"))
	ctx := context.Background()
	for _, tt := range []struct {
		host, port string
		pol        sockkit.Policy
		want       string
	}{
		{"", "0", sockkit.Policy{}, "0.0.0.0:0"},
		{"", "", sockkit.Policy{}, "0.0.0.0:0"},
		{"", "5683", sockkit.Policy{Only: sock.IPv6}, "[::]:5683"},
		{"me.test", "7", sockkit.Policy{}, "[2001:db8::2]:7"},
		{"me.test", "7", sockkit.Policy{Prefer: sock.IPv4}, "192.0.2.2:7"},
		{"192.0.2.3", "7", sockkit.Policy{}, "192.0.2.3:7"},
	} {
		got, err := sockkit.BindEndpoint(ctx, &dns, tt.host, tt.port, tt.pol)
		if err != nil || got.String() != tt.want {
			t.Errorf("BindEndpoint(%q, %q, %+v) = %v, %v; want %s", tt.host, tt.port, tt.pol, got, err, tt.want)
		}
	}
	if _, err := sockkit.BindEndpoint(ctx, &dns, "", "x", sockkit.Policy{}); !errors.Is(err, sock.ErrInvalidPort) {
		t.Errorf("port x: %v", err)
	}
	if _, err := sockkit.BindEndpoint(ctx, &dns, "nowhere.test", "0", sockkit.Policy{}); !errors.Is(err, sock.ErrAddrNotAvail) {
		t.Errorf("unknown host: %v", err)
	}
}

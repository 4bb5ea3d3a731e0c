package delayrelay_test

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tether-iot/tether/internal/delayrelay"
)

// TestRefusesNonLoopback: a listen or server address off loopback (or not
// known to be on it) is refused with ErrNotLoopback, before any socket is
// opened.
func TestRefusesNonLoopback(t *testing.T) {
	for _, tc := range []struct{ listen, server string }{
		{"0.0.0.0:0", "127.0.0.1:5683"},
		{":0", "127.0.0.1:5683"},
		{"[::]:0", "127.0.0.1:5683"},
		{"192.0.2.1:0", "127.0.0.1:5683"},
		{"example.com:0", "127.0.0.1:5683"},
		{"127.0.0.1:0", "10.1.2.3:5683"},
		{"127.0.0.1:0", "[2001:db8::1]:5683"},
		{"127.0.0.1:0", "[::ffff:10.0.0.1]:5683"},
		{"127.0.0.1:0", "0.0.0.0:5683"},
		{"127.0.0.1:0", "coap.example:5683"},
	} {
		r, err := delayrelay.Start(delayrelay.Config{Listen: tc.listen, Server: tc.server})
		if err == nil {
			r.Close()
			t.Errorf("listen %s, server %s: started", tc.listen, tc.server)
			continue
		}
		if !errors.Is(err, delayrelay.ErrNotLoopback) {
			t.Errorf("listen %s, server %s: %v, want ErrNotLoopback", tc.listen, tc.server, err)
		}
	}
}

// TestAcceptsLoopback: 127.0.0.0/8, ::1 and localhost are loopback; ::1
// relays like 127.0.0.1 when the machine has it.
func TestAcceptsLoopback(t *testing.T) {
	for _, tc := range []struct{ listen, server string }{
		{"127.0.0.1:0", "127.0.0.1:5683"},
		{"127.0.0.2:0", "127.0.0.1:5683"},
		{"localhost:0", "localhost:5683"},
		{"[::ffff:127.0.0.1]:0", "127.0.0.1:5683"},
	} {
		cfg := delayrelay.Config{Listen: tc.listen, Server: tc.server}
		if err := cfg.Validate(); err != nil {
			t.Errorf("listen %s, server %s: %v", tc.listen, tc.server, err)
		}
	}
	srv, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("no ::1 here: %v", err)
	}
	srv.SetReadBuffer(1 << 20)
	echo(t, srv, nil)
	r := start(t, delayrelay.Config{Listen: "[::1]:0", Server: srv.LocalAddr().String()})
	c, err := net.DialUDP("udp6", nil, net.UDPAddrFromAddrPort(r.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c, 6)
}

// TestRefusesBadConfigs: what is not a link or a bound is refused, and
// not for being off loopback.
func TestRefusesBadConfigs(t *testing.T) {
	ok := delayrelay.Config{Server: "127.0.0.1:5683"}
	for _, tc := range []struct {
		name string
		edit func(*delayrelay.Config)
		want string
	}{
		{"no server", func(c *delayrelay.Config) { c.Server = "" }, "no server"},
		{"server port 0", func(c *delayrelay.Config) { c.Server = "127.0.0.1:0" }, "no port"},
		{"no port", func(c *delayrelay.Config) { c.Server = "127.0.0.1" }, "IP:PORT"},
		{"itself", func(c *delayrelay.Config) { c.Listen = "127.0.0.1:5683" }, "itself"},
		{"loss above 1", func(c *delayrelay.Config) { c.Up.Loss = 1.5 }, "probability"},
		{"negative loss", func(c *delayrelay.Config) { c.Down.Loss = -0.1 }, "probability"},
		{"negative delay", func(c *delayrelay.Config) { c.Down.Delay = -time.Millisecond }, "negative"},
		{"negative jitter", func(c *delayrelay.Config) { c.Up.Jitter = -time.Millisecond }, "negative"},
		{"a day and more", func(c *delayrelay.Config) { c.Up.Delay, c.Up.Jitter = 23*time.Hour, 2*time.Hour }, "over 24h"},
		{"endless jitter", func(c *delayrelay.Config) { c.Down.Jitter = 1<<63 - 1 }, "over 24h"},
		{"negative bound", func(c *delayrelay.Config) { c.MaxQueued = -1 }, "negative"},
		{"negative rate", func(c *delayrelay.Config) { c.Up.Rate = -1 }, "rate"},
		{"rate over 1 Tbit/s", func(c *delayrelay.Config) { c.Down.Rate = 2e12 }, "rate"},
		{"negative queue", func(c *delayrelay.Config) { c.Down.Rate, c.Down.Queue = 64000, -1 }, "negative"},
		{"a queue without a rate", func(c *delayrelay.Config) { c.Up.Queue = 4096 }, "without a rate"},
		{"negative overhead", func(c *delayrelay.Config) { c.Up.Overhead = -28 }, "overhead"},
	} {
		cfg := ok
		tc.edit(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) || errors.Is(err, delayrelay.ErrNotLoopback) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
}

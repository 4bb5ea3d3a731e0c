package delayrelay

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// ErrNotLoopback is the error (wrapped, with the address) of a listen or
// server address that is not on loopback: the relay is a rig for tests that
// stay on this machine, and never opens a path to or from another one.
var ErrNotLoopback = errors.New("not a loopback address: the relay only joins programs on this machine (use 127.0.0.1 or ::1)")

// Link is what one direction does to the datagrams that cross it.
type Link struct {
	// Delay is the fixed one-way delay every datagram waits at least.
	Delay time.Duration
	// Jitter adds a delay drawn uniformly from [0, Jitter] to each datagram.
	Jitter time.Duration
	// Loss is the probability, 0 to 1, that a datagram is dropped.
	Loss float64

	// Rate, in bits per second, makes the direction a bottleneck: one
	// datagram at a time is serialised, in arrival order, taking
	// (its length + Overhead) × 8 / Rate, and only then starts its Delay
	// (and Jitter). Datagrams that arrive while the link is busy wait in
	// a drop-tail queue (Queue). Zero: no rate, every datagram starts its
	// Delay when it arrives.
	Rate int64
	// Queue bounds, in bytes (each datagram counting its length plus
	// Overhead), the datagrams waiting for a busy link, not counting the
	// one being serialised: one that arrives when it would not fit is
	// dropped (DirStats.Dropped), as a router's FIFO drops the tail. A
	// datagram that finds the link idle never waits, whatever its size.
	// Zero: unbounded (only Config.MaxQueuedBytes bounds it). Used only
	// with Rate.
	Queue int
	// Overhead is added to each datagram's length where Rate and Queue
	// count it: 28 counts the IPv4 and UDP headers, 48 IPv6's. Zero
	// counts the UDP payload only.
	Overhead int
}

// maxDelay bounds Delay + Jitter: longer is a mistake, and would
// overflow time arithmetic if unbounded.
const maxDelay = 24 * time.Hour

// maxRate bounds Link.Rate (1 Tbit/s), so that a datagram's serialisation
// time in nanoseconds never overflows.
const maxRate = 1e12

// Defaults of the bounds, per direction for the queue.
const (
	DefaultMaxQueued      = 10000
	DefaultMaxQueuedBytes = 64 << 20
	DefaultMaxClients     = 1024
	DefaultIdle           = time.Minute
)

// Config configures a Relay. Only Server is required.
type Config struct {
	// Listen is where clients send: a loopback IP and port ("127.0.0.1:0",
	// "[::1]:5683"; "localhost" means 127.0.0.1). Port 0 picks a free
	// one, which Relay.Addr tells. Empty means "127.0.0.1:0".
	Listen string
	// Server is the server's loopback IP and port.
	Server string

	Up   Link // client to server
	Down Link // server to client

	// Seed seeds the generators of loss and jitter: the same seed, the
	// same fate for the n-th datagram of each flow.
	Seed uint64
	// Reorder lets jitter reorder datagrams. Without it, a datagram is
	// never sent before the previous one of its client and direction.
	Reorder bool

	// MaxQueued and MaxQueuedBytes bound what waits in each direction
	// (defaults DefaultMaxQueued, DefaultMaxQueuedBytes); a datagram
	// beyond them is dropped and counted in DirStats.Overflow.
	MaxQueued      int
	MaxQueuedBytes int
	// MaxClients bounds the mappings (default DefaultMaxClients); a
	// datagram from a new client beyond it is dropped and counted in
	// Stats.Refused.
	MaxClients int
	// Idle is how long a mapping lives without a datagram in either
	// direction (default DefaultIdle). A mapping never expires while one
	// of its datagrams is waiting in the relay.
	Idle time.Duration
}

// Validate reports what is wrong with c, if anything: an address that is
// not a loopback IP and port (ErrNotLoopback), a negative delay, a loss
// outside 0..1, a negative bound.
func (c *Config) Validate() error {
	_, _, err := c.addrs()
	if err != nil {
		return err
	}
	for _, l := range []struct {
		name string
		Link
	}{{"up", c.Up}, {"down", c.Down}} {
		switch {
		case l.Delay < 0:
			return fmt.Errorf("%s delay %v is negative", l.name, l.Delay)
		case l.Jitter < 0:
			return fmt.Errorf("%s jitter %v is negative", l.name, l.Jitter)
		case l.Delay > maxDelay || l.Jitter > maxDelay-l.Delay:
			return fmt.Errorf("%s delay %v plus jitter %v is over %v", l.name, l.Delay, l.Jitter, maxDelay)
		case math.IsNaN(l.Loss) || l.Loss < 0 || l.Loss > 1:
			return fmt.Errorf("%s loss %v is not a probability between 0 and 1", l.name, l.Loss)
		case l.Rate < 0 || l.Rate > maxRate:
			return fmt.Errorf("%s rate %d bit/s is not in 0..%d", l.name, l.Rate, int64(maxRate))
		case l.Queue < 0:
			return fmt.Errorf("%s queue %d bytes is negative", l.name, l.Queue)
		case l.Overhead < 0 || l.Overhead > maxDatagram:
			return fmt.Errorf("%s overhead %d bytes is not in 0..%d", l.name, l.Overhead, maxDatagram)
		case l.Rate == 0 && l.Queue > 0:
			return fmt.Errorf("%s queue of %d bytes without a rate: nothing would wait in it", l.name, l.Queue)
		}
	}
	switch {
	case c.MaxQueued < 0:
		return fmt.Errorf("queue bound %d is negative", c.MaxQueued)
	case c.MaxQueuedBytes < 0:
		return fmt.Errorf("queue bound %d bytes is negative", c.MaxQueuedBytes)
	case c.MaxClients < 0:
		return fmt.Errorf("client bound %d is negative", c.MaxClients)
	case c.Idle < 0:
		return fmt.Errorf("idle time %v is negative", c.Idle)
	}
	return nil
}

// addrs parses and checks Listen and Server.
func (c *Config) addrs() (listen, server netip.AddrPort, err error) {
	l := c.Listen
	if l == "" {
		l = "127.0.0.1:0"
	}
	if listen, err = parseLoopback("listen", l); err != nil {
		return
	}
	if c.Server == "" {
		err = errors.New("no server address")
		return
	}
	if server, err = parseLoopback("server", c.Server); err != nil {
		return
	}
	if server.Port() == 0 {
		err = fmt.Errorf("server address %s has no port", c.Server)
		return
	}
	if listen == server {
		err = fmt.Errorf("listen address %s is the server's: the relay would send to itself", l)
	}
	return
}

// parseLoopback parses "IP:PORT" and refuses anything but loopback: a host
// name other than localhost too, since its addresses are not known here.
func parseLoopback(what, s string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%s address %q: want IP:PORT: %w", what, s, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%s address %q: bad port %q", what, s, port)
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Unmap().IsLoopback() {
		return netip.AddrPort{}, fmt.Errorf("%s address %q: %w", what, s, ErrNotLoopback)
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(p)), nil
}

func (c Config) withDefaults() Config {
	if c.MaxQueued == 0 {
		c.MaxQueued = DefaultMaxQueued
	}
	if c.MaxQueuedBytes == 0 {
		c.MaxQueuedBytes = DefaultMaxQueuedBytes
	}
	if c.MaxClients == 0 {
		c.MaxClients = DefaultMaxClients
	}
	if c.Idle == 0 {
		c.Idle = DefaultIdle
	}
	return c
}

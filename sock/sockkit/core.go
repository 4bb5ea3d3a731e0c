package sockkit

import (
	"sync"
	"time"

	"github.com/tether-iot/tether/sock"
)

// Core is what a socket implementation keeps the same way whatever it runs
// over: the network it was made for, its configuration, its state, its
// receive timeout and its association, under one mutex that also guards
// the implementation's own connection fields. A socket holds a Core in an
// unexported field (so that its mutex stays its own), sets it up with
// Init, forwards State, ReceiveTimeout, SetReceiveTimeout,
// SetPreferredEndpoint and Association to it, and starts Connect with
// Policy. netsock and simnet are built so.
type Core struct {
	Mu      sync.Mutex
	Network string      // "udp" or "tcp"
	Only    sock.Family // forced by "udp4", "tcp6", ...
	Cfg     sock.Config
	St      sock.State
	Timeout time.Duration
	// Assoc is the association: Remote valid while connected or shut
	// down, Local while a socket exists.
	Assoc sock.Association
}

// Init sets up a closed socket's Core for network ("udp", "udp4", "udp6",
// "tcp", "tcp4", "tcp6"); cfg may be nil.
func (c *Core) Init(network string, cfg *sock.Config) error {
	transport, only, err := ParseNetwork(network)
	if err != nil {
		return err
	}
	c.Network, c.Only, c.Timeout = transport, only, sock.DefaultReceiveTimeout
	if cfg != nil {
		c.Cfg = *cfg
	}
	return nil
}

// Stream reports whether the socket is a stream (TCP) socket.
func (c *Core) Stream() bool { return c.Network == "tcp" }

// State is sock.Socket's State.
func (c *Core) State() sock.State {
	c.Mu.Lock()
	defer c.Mu.Unlock()
	return c.St
}

// ReceiveTimeout is sock.Socket's ReceiveTimeout.
func (c *Core) ReceiveTimeout() time.Duration {
	c.Mu.Lock()
	defer c.Mu.Unlock()
	return c.Timeout
}

// SetReceiveTimeout is sock.Socket's SetReceiveTimeout.
func (c *Core) SetReceiveTimeout(d time.Duration) {
	c.Mu.Lock()
	c.Timeout = d
	c.Mu.Unlock()
}

// SetPreferredEndpoint is sock.EndpointPreferrer's SetPreferredEndpoint.
func (c *Core) SetPreferredEndpoint(p *sock.PreferredEndpoint) {
	c.Mu.Lock()
	c.Cfg.Preferred = p
	c.Mu.Unlock()
}

// Association is sock.Associator's Association.
func (c *Core) Association() sock.Association {
	c.Mu.Lock()
	defer c.Mu.Unlock()
	return c.Assoc
}

// Policy is the start of a Connect: the policy (the family forced, the
// family preferred, the sticky endpoint, and the bound address when the
// socket is bound) and the configured resolver.
func (c *Core) Policy() (Policy, sock.Resolver) {
	c.Mu.Lock()
	defer c.Mu.Unlock()
	pol := Policy{Only: c.Only, Prefer: c.Cfg.Prefer, Sticky: c.Cfg.Preferred}
	if c.St == sock.StateBound {
		pol.Bound = c.Assoc.Local
	}
	return pol, c.Cfg.Resolver
}

package lwm2m

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/tether-iot/tether/download"
	"github.com/tether-iot/tether/lwm2m/content"
	"github.com/tether-iot/tether/sock/dtlssock"
)

// Server is an LwM2M server the client registers with besides the one of
// Config.ServerURL (LwM2M 1.1 6.2: one registration per server). Each has
// its own /1 instance, connection, registration, lifetime, queue mode,
// observations and attributes; the objects are shared, and a value one
// server writes is notified to the others' observers.
type Server struct {
	// URL is the server: coap://, coaps://, coap+tcp:// or coaps+tcp://.
	URL string
	// PSKIdentity and PSK, or DTLS, secure a coaps server, and TLS a
	// coaps+tcp one, as Config's do the first.
	PSKIdentity, PSK []byte
	DTLS             *dtlssock.Config
	TLS              *tls.Config
	// ShortServerID is the server's Short Server ID (/1/x/0): required,
	// and distinct from every other server's.
	ShortServerID uint16
	// Lifetime is the registration's lifetime; default Config.Lifetime.
	Lifetime time.Duration
	// QueueMode announces queue mode to this server.
	QueueMode bool
}

// ServerStatus is the status of one registration.
type ServerStatus struct {
	ShortServerID uint16
	URL           string
	Status
}

// Servers reports every registration, the first server's first.
func (c *Client) Servers() []ServerStatus {
	var out []ServerStatus
	for _, s := range c.sessions() {
		url := ""
		s.mu.Lock() // a bootstrap may be replacing it
		if s.dm != nil {
			url = s.dm.url
		}
		s.mu.Unlock()
		out = append(out, ServerStatus{ShortServerID: s.server.shortID(), URL: url, Status: s.Status()})
	}
	return out
}

// The client the user holds is the root: it serves the first server (or
// the bootstrap server), owns the objects, the events, the firmware and
// the downloads, and runs one session, a *Client of its own, per further
// server. A session shares the root's objects (and their one-at-a-time
// turn), its events and its download controller, and has the rest of its
// own: connection, registration machine, /1 instance, observations,
// attributes, stored notifications, Send reports. The root's commands
// (offline, reconnect, Update, Stop) and changes (Changed, a reboot, new
// instances) reach every session.

// sessions lists the root and its sessions.
func (c *Client) sessions() []*Client {
	r := c.root
	r.moreMu.Lock()
	defer r.moreMu.Unlock()
	return append([]*Client{r}, r.more...)
}

// isRoot reports whether c is the client the user holds.
func (c *Client) isRoot() bool { return c.root == c }

// newSession makes the session of a further server.
func (c *Client) newSession(t *target, inst, ssid uint16, lifetime time.Duration, queue bool, a *account) *Client {
	cfg := c.cfg
	cfg.ServerURL, cfg.ShortServerID, cfg.Lifetime, cfg.QueueMode = t.url, ssid, lifetime, queue
	cfg.Bootstrap = nil
	s := &Client{
		cfg: cfg, root: c, dm: t, acct: a,
		log: c.log.With("ssid", ssid), objects: c.objects, ids: c.ids, dl: c.dl, params: c.params,
		events: c.events, objCall: c.objCall,
		cmds: make(chan command, 1), runDone: make(chan struct{}),
	}
	s.server = newServerObject(s)
	s.server.inst = inst
	if a != nil {
		s.server.reset(a)
	}
	s.status.Version = "1.1"
	return s
}

// checkServers checks Config.Servers against the first server.
func checkServers(cfg *Config) error {
	ids := []uint16{cfg.ShortServerID}
	for i, s := range cfg.Servers {
		if s.ShortServerID == 0 || s.ShortServerID == 65535 || slices.Contains(ids, s.ShortServerID) {
			return fmt.Errorf("%w: Servers[%d] (%s): Short Server ID %d is missing, reserved or given twice", ErrConfig, i, s.URL, s.ShortServerID)
		}
		if s.Lifetime != 0 && s.Lifetime < time.Second {
			return fmt.Errorf("%w: Servers[%d] (%s): lifetime %v is under a second", ErrConfig, i, s.URL, s.Lifetime)
		}
		ids = append(ids, s.ShortServerID)
	}
	return nil
}

// configSessions makes the sessions of Config.Servers.
func (c *Client) configSessions() ([]*Client, error) {
	var out []*Client
	for i, s := range c.cfg.Servers {
		t, err := newTarget(s.URL, s.PSKIdentity, s.PSK, s.DTLS, s.TLS)
		if err != nil {
			return nil, fmt.Errorf("server %d (Config.Servers[%d]): %w", s.ShortServerID, i, err)
		}
		lifetime := s.Lifetime
		if lifetime == 0 {
			lifetime = c.cfg.Lifetime
		}
		out = append(out, c.newSession(t, uint16(i+1), s.ShortServerID, lifetime, s.QueueMode, nil))
	}
	return out, nil
}

// accountSessions makes the sessions of a bootstrap's accounts after the
// first.
func (c *Client) accountSessions(accts []*account) []*Client {
	var out []*Client
	for _, a := range accts {
		out = append(out, c.newSession(a.target, a.inst, a.ssid, a.lifetime, c.cfg.QueueMode, a))
	}
	return out
}

// runSessions starts the sessions' loops (the root's Run, once it has
// begun); each ends with ctx or its Stop.
func (c *Client) runSessions(ctx context.Context, ss []*Client) {
	for _, s := range ss {
		if !s.started.CompareAndSwap(false, true) {
			continue // stopped before it ran
		}
		c.sessionsRunning.Add(1)
		s.begin(ctx, func(error) { c.sessionsRunning.Done() })
	}
}

// replaceSessions stops the sessions (each deregisters, bounded by
// MAX_TRANSMIT_WAIT) and puts ss, running, in their place: a bootstrap
// wrote another set of servers.
func (c *Client) replaceSessions(ctx context.Context, ss []*Client) {
	c.moreMu.Lock()
	old := c.more
	c.more = nil
	c.moreMu.Unlock()
	stopAll(ctx, old, c.params.MaxTransmitWait())
	c.moreMu.Lock()
	defer c.moreMu.Unlock()
	if c.stopReq.Load() {
		return // Stop has looked at the sessions: these never run
	}
	c.more = ss
	c.runSessions(ctx, ss)
}

// stopAll stops sessions at once, each within bound (and ctx).
func stopAll(ctx context.Context, ss []*Client, bound time.Duration) {
	var wg sync.WaitGroup
	for _, s := range ss {
		wg.Go(func() {
			sctx, cancel := context.WithTimeout(ctx, bound)
			defer cancel()
			_ = s.Stop(sctx)
		})
	}
	wg.Wait()
}

// each sends a command to every session after the root, and joins
// their errors (ErrStopped ignored: a session a bootstrap replaced).
//
// The sessions take it at once, not one after another: one whose server
// is slow holds up the caller by its own exchange, not by the sum.
func (c *Client) each(ctx context.Context, kind int, ts []download.Transport) error {
	ss := c.sessions()[1:]
	errs := make([]error, len(ss))
	var wg sync.WaitGroup
	for i, s := range ss {
		wg.Go(func() {
			if err := s.send(ctx, kind, ts); err != nil && !errors.Is(err, ErrStopped) {
				errs[i] = fmt.Errorf("server %d: %w", s.server.shortID(), err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// serversObject is /1 Server: one instance per registration, each the
// serverObject of its session.
type serversObject struct{ root *Client }

func (o serversObject) ID() uint16      { return 1 }
func (o serversObject) Version() string { return "" }

func (o serversObject) Instances() []uint16 {
	var out []uint16
	for _, s := range o.root.sessions() {
		out = append(out, s.server.instance())
	}
	slices.Sort(out)
	return out
}

func (o serversObject) Resources(uint16) []ResourceDef { return serverResources }

// of is the /1 instance inst.
func (o serversObject) of(inst uint16) (*serverObject, error) {
	for _, s := range o.root.sessions() {
		if s.server.instance() == inst {
			return s.server, nil
		}
	}
	return nil, ErrNotFound
}

func (o serversObject) Read(inst, res uint16) ([]content.Record, error) {
	s, err := o.of(inst)
	if err != nil {
		return nil, err
	}
	return s.Read(inst, res)
}

func (o serversObject) Write(inst, res uint16, recs []content.Record) error {
	s, err := o.of(inst)
	if err != nil {
		return err
	}
	return s.Write(inst, res, recs)
}

func (o serversObject) Reset(inst, res uint16) error {
	s, err := o.of(inst)
	if err != nil {
		return err
	}
	return s.Reset(inst, res)
}

func (o serversObject) Execute(inst, res uint16, arg []byte) error {
	s, err := o.of(inst)
	if err != nil {
		return err
	}
	return s.Execute(inst, res, arg)
}

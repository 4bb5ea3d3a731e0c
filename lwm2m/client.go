package lwm2m

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/download"
	"github.com/tether-iot/tether/lwm2m/content"
	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/dtlssock"
)

// Config configures a Client. Endpoint is required, and ServerURL or
// Bootstrap (or both).
type Config struct {
	// Endpoint is the client's endpoint name (Register's ep=).
	Endpoint string
	// ServerURL is the LwM2M server: coap://host[:5683] (NoSec) or
	// coaps://host[:5684] (DTLS: PSKIdentity and PSK, or DTLS) over UDP,
	// or coap+tcp://host[:5683] or coaps+tcp://host[:5684] (TLS) over TCP.
	ServerURL string
	// PSKIdentity and PSK are the DTLS pre-shared key credentials of a
	// coaps server (/0 resources 3 and 5).
	PSKIdentity, PSK []byte
	// DTLS, when set, is the DTLS configuration of a coaps server in
	// place of the one PSKIdentity and PSK make: X.509 certificates (the
	// client's chain in Certificates, the server's CA in RootCAs: /0's
	// Security Mode 2), cipher suites of the product's choice.
	DTLS *dtlssock.Config
	// TLS is the TLS configuration of a coaps+tcp server (the TCP
	// binding, RFC 8323): the client's certificates, the server's CA. Nil
	// takes DTLS's certificates. TLS here has no pre-shared keys.
	TLS *tls.Config
	// Bootstrap, when set, has the client bootstrapped by a bootstrap
	// server: at first start when ServerURL is empty (else ServerURL is
	// the factory bootstrap), and again when registering keeps failing.
	// A bootstrapped account, kept in Bootstrap.StateDir, replaces
	// ServerURL from then on.
	Bootstrap *Bootstrap
	// ShortServerID is the server's Short Server ID (/0/0/10, /1/0/0);
	// default 1.
	ShortServerID uint16
	// Servers are further LwM2M servers, each with a registration of its
	// own (a bootstrap's accounts replace them, as they do ServerURL).
	Servers []Server
	// Lifetime is the registration lifetime (/1/0/1); default 86400 s.
	// The server may change it with a Write, which the client reports
	// with a Registration Update.
	Lifetime time.Duration
	// QueueMode announces LwM2M queue mode: the client closes its socket
	// after MAX_TRANSMIT_WAIT of quiet and opens it again only when it
	// has something to send.
	QueueMode bool
	// Device describes the device for /3.
	Device Device
	// Firmware configures /5 Firmware Update; nil leaves /5 out.
	Firmware *Firmware
	// Objects are the product's own objects, besides /0, /1, /3 and /5
	// (whose IDs they must not use).
	Objects []Object
	// MaxRequestSize bounds the body of a request the server sends, a
	// Write: one larger than a datagram comes block by block (Block1, RFC
	// 7959) and is reassembled up to this bound; beyond it the answer is
	// 4.13 Request Entity Too Large with Size1 saying the bound. Default
	// DefaultMaxRequestSize.
	MaxRequestSize int
	// StoredNotifications bounds the notifications kept while offline or
	// asleep when /1/0/6 (Notification Storing) is true; the oldest are
	// dropped beyond it. Default 1000.
	StoredNotifications int
	// RetryDelay is the first wait before a failed Register is tried
	// again; it doubles up to MaxRetryDelay. Defaults 5 s and 10 min.
	RetryDelay, MaxRetryDelay time.Duration
	// Params are the CoAP transmission parameters; default RFC 7252's.
	Params coap.Params
	// NewSocket creates the raw datagram socket ("udp"); nil means
	// sock.New. The socket of a simulated network, or an integrator's own
	// stack, plugs in here.
	NewSocket func(network string) (sock.Socket, error)
	// Logger receives every LwM2M operation at info level, and the wire
	// trace at peer.LevelTrace; nil means none.
	Logger *slog.Logger
	// OnEvent, when set, is called with every event (a registration step,
	// a request served, a notification, a firmware change), in order, one
	// at a time, from a goroutine that holds none of the client's locks:
	// it may call any method of the Client. Events queue while it runs;
	// Run returns once every event it emitted has been handed over.
	OnEvent func(Event)
}

// Event is something the client did, for logs and for tether device's JSON
// stream.
type Event struct {
	Time   time.Time
	Kind   string // "register", "update", "deregister", "request", "notify", "offline", "online", "firmware", "error"
	Op     string // the operation of a request ("read", "write", ...)
	Path   string // the LwM2M path it concerns, if any
	Code   string // the CoAP response code, "2.05 Content"
	Detail string
	// Server is the Short Server ID of the registration the event
	// concerns (the first server's for the client's own events).
	Server uint16
}

// Client is an LwM2M 1.1 client, registered with each of its servers.
// Run runs it; the other methods are safe to call from any goroutine while
// it runs.
type Client struct {
	cfg Config
	// root is the Client the user holds (itself for it); the others are
	// the sessions of its further servers (servers.go), which share its
	// objects, events and downloads.
	root *Client
	// more are the root's sessions, guarded by moreMu; sessionsRunning
	// counts their loops.
	moreMu          sync.Mutex
	more            []*Client
	sessionsRunning sync.WaitGroup
	dm              *target // the LwM2M server; nil until a bootstrap gives one
	bs              *target // the bootstrap server; nil without Config.Bootstrap
	// acct and acctStore are the account a bootstrap provisioned and the
	// /0 and /1 it wrote (nil, empty: ServerURL's); Run's goroutine (or
	// New) only.
	acct      *account
	acctStore bsStore
	// bsNow is the bootstrap in progress, which the reader serves.
	bsNow   atomic.Pointer[bootstrapping]
	log     *slog.Logger
	objects []Object // by ID, without /0
	ids     []uint16 // the objects' IDs, in the order of objects, for object
	dl      *download.Controller
	params  coap.Params

	server   *serverObject
	device   *deviceObject
	firmware *firmwareObject

	events *events // shared by the root and its sessions
	// onMove and onFwMove, set by tests before Run, see every move of
	// the registration and of /5 that the client makes or tries, and
	// whether its table allowed it (a refused /5 event has to == from).
	onMove func(from, to RegState, allowed bool)
	// onSessionMove, likewise, sees the moves of the further servers'
	// registrations, by Short Server ID.
	onSessionMove func(ssid uint16, from, to RegState, allowed bool)
	onFwMove      func(from, to FirmwareState, allowed bool)

	started   atomic.Bool  // Run was called, or Stop before it
	stopReq   atomic.Bool  // Stop was called: a bootstrap's wait ends
	interrupt atomic.Int32 // offline and reconnect commands sent, not yet carried out
	overTCP   atomic.Bool  // the connection is TCP: offline mode on TCP concerns it
	served    atomic.Int64 // when the last request was answered (Unix ns), for queue mode
	cmds      chan command
	updateReq atomic.Bool
	// linksChanged: instances came or went; the next Update carries the
	// object links.
	linksChanged atomic.Bool
	reboot       atomic.Bool
	bsReq        atomic.Bool   // a server executed /1/x/9: bootstrap again
	runDone      chan struct{} // closed when Run's loop ends (or Stop came before Run)
	drv          driver        // runs the loop while it has work (drive.go)
	// ended is closed when Run would return, the root's only; endErr is
	// what it returns.
	ended  chan struct{}
	endErr error
	conn   conn // owned by Run's goroutine
	reg    registration

	obsMu   sync.Mutex
	obs     map[string]*observation // by token
	attrs   map[content.Path]attributes
	stored  []storedNote
	reports []report // Sends waiting to go out
	obsSeq  uint32

	// objCall holds the right to call an Object's methods: one call at a
	// time (Object's doc), from serve and from notifications. A channel,
	// not a mutex, so that synctest sees a goroutine waiting for it as
	// durably blocked.
	objCall chan struct{}
	b1      *block1 // a request arriving block by block; with objCall held

	mu     sync.Mutex // guards the fields below, read by other goroutines
	status Status
	cancel context.CancelFunc // cancels the exchange in flight
}

// Status is a snapshot of the client's registration.
type Status struct {
	State      RegState // where the registration is
	Registered bool     // the server holds a registration of ours
	Location   string   // the registration's path at the server ("/rd/5a3f")
	Offline    bool     // State is Offline
	Asleep     bool     // State is Asleep: queue mode, the socket closed until something is due
	Version    string
	Registers  int // Register operations that succeeded
	Updates    int // Update operations that succeeded
	Handshakes int // full DTLS handshakes
}

// New checks cfg and returns a Client ready to Run.
func New(cfg Config) (*Client, error) {
	if cfg.Endpoint == "" {
		return nil, fmt.Errorf("%w: no endpoint name", ErrConfig)
	}
	c := &Client{cfg: cfg, cmds: make(chan command, 1), objCall: make(chan struct{}, 1), runDone: make(chan struct{}), ended: make(chan struct{})}
	c.root = c
	if cfg.OnEvent != nil {
		c.events = &events{fn: cfg.OnEvent}
	}
	c.log = cfg.Logger
	if c.log == nil {
		c.log = discardLog
	}
	if c.log != discardLog { // a logger that discards needs no attributes
		c.log = c.log.With("endpoint", cfg.Endpoint)
	}
	bootAccts, err := c.servers()
	if err != nil {
		return nil, err
	}
	if err := c.defaults(); err != nil {
		return nil, err
	}
	c.dl = &download.Controller{}
	if err := c.makeObjects(); err != nil {
		return nil, err
	}
	c.status.Version = "1.1"
	if c.acct != nil {
		c.more = c.accountSessions(bootAccts)
		return c, nil
	}
	if c.more, err = c.configSessions(); err != nil {
		if c.firmware != nil {
			c.firmware.release()
		}
		return nil, err
	}
	return c, nil
}

// servers sets up the first LwM2M server and the bootstrap server from
// the configuration, or from what an earlier bootstrap wrote, and returns
// that bootstrap's further accounts.
func (c *Client) servers() ([]*account, error) {
	cfg := &c.cfg
	if cfg.ServerURL != "" {
		t, err := newTarget(cfg.ServerURL, cfg.PSKIdentity, cfg.PSK, cfg.DTLS, cfg.TLS)
		if err != nil {
			return nil, err
		}
		c.dm = t
	}
	var bootAccts []*account // a bootstrap's accounts after the first
	if cfg.Bootstrap != nil {
		var err error
		if bootAccts, err = c.loadBootstrap(); err != nil {
			return nil, err
		}
	}
	if c.dm == nil && c.bs == nil {
		return nil, fmt.Errorf("%w: no server: give ServerURL, or Bootstrap", ErrConfig)
	}
	return bootAccts, nil
}

// defaults checks the configuration's numbers and fills in the defaults.
func (c *Client) defaults() error {
	cfg := &c.cfg
	if cfg.ShortServerID == 0 {
		cfg.ShortServerID = 1
	}
	if cfg.Lifetime == 0 {
		cfg.Lifetime = 86400 * time.Second
	}
	if cfg.Lifetime < time.Second {
		return fmt.Errorf("%w: lifetime %v is under a second", ErrConfig, cfg.Lifetime)
	}
	if err := checkServers(cfg); err != nil {
		return err
	}
	if cfg.MaxRequestSize <= 0 {
		cfg.MaxRequestSize = DefaultMaxRequestSize
	}
	if cfg.StoredNotifications <= 0 {
		cfg.StoredNotifications = 1000
	}
	if cfg.RetryDelay <= 0 {
		cfg.RetryDelay = 5 * time.Second
	}
	if cfg.MaxRetryDelay < cfg.RetryDelay {
		cfg.MaxRetryDelay = max(10*time.Minute, cfg.RetryDelay)
	}
	c.params = cfg.Params
	if c.params == (coap.Params{}) {
		c.params = coap.DefaultParams
	}
	if err := c.params.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrConfig, err)
	}
	return nil
}

// makeObjects makes /1, /3 and /5 and lists them with the product's
// objects, by ID.
func (c *Client) makeObjects() error {
	c.server = newServerObject(c)
	if c.acct != nil {
		c.server.reset(c.acct)
	}
	c.device = newDeviceObject(c, c.cfg.Device)
	builtin := []Object{serversObject{c}, c.device}
	if c.cfg.Firmware != nil {
		fw, err := newFirmwareObject(c, c.cfg.Firmware)
		if err != nil {
			return err
		}
		c.firmware = fw
		builtin = append(builtin, fw)
	}
	for _, o := range append(builtin, c.cfg.Objects...) {
		if o.ID() == 0 || o.ID() == content.NoID || slices.Contains(c.ids, o.ID()) {
			if c.firmware != nil {
				c.firmware.release()
			}
			return fmt.Errorf("%w: object /%d is given twice (or is /0, or the reserved 65535)", ErrConfig, o.ID())
		}
		c.ids = append(c.ids, o.ID())
		c.objects = append(c.objects, o)
	}
	slices.SortFunc(c.objects, func(a, b Object) int { return int(a.ID()) - int(b.ID()) })
	slices.Sort(c.ids)
	return nil
}

// discardLog is the logger of a client given none.
var discardLog = slog.New(slog.DiscardHandler)

// object is the object of ID id, or nil. A sorted slice, not a map: a
// process hosting many clients keeps a few bytes per object for it.
func (c *Client) object(id uint16) Object {
	if i, ok := slices.BinarySearch(c.ids, id); ok {
		return c.objects[i]
	}
	return nil
}

// Downloads is the offline controller of the client's firmware downloads;
// EnterOffline and ExitOffline drive it with the registration connection.
func (c *Client) Downloads() *download.Controller { return c.dl }

// Status returns a snapshot of the registration with the first server
// (Servers reports each).
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

func (c *Client) setStatus(f func(*Status)) {
	c.mu.Lock()
	f(&c.status)
	c.mu.Unlock()
}

// command is a request to the client's loop.
type command struct {
	kind  int
	ts    []download.Transport
	ctx   context.Context // the caller's: Stop's bounds the De-register
	cuts  bool            // counted in interrupt: the exchange in flight was cut
	reply chan error
}

const (
	cmdOffline = iota
	cmdOnline
	cmdReconnect
	cmdStop
)

// send hands a command to the loop and waits until it is taken up.
func (c *Client) send(ctx context.Context, kind int, ts []download.Transport) error {
	_, err := c.sendQueued(ctx, kind, ts)
	return err
}

// sendQueued is send, which also reports whether the command reached the
// loop (it is then carried out even if ctx ended before its reply).
func (c *Client) sendQueued(ctx context.Context, kind int, ts []download.Transport) (queued bool, err error) {
	cmd := command{kind: kind, ts: ts, ctx: ctx, reply: make(chan error, 1)}
	// Offline mode on another transport leaves this connection's
	// exchange be.
	cuts := kind == cmdReconnect || (kind == cmdOffline && (len(ts) == 0 || slices.Contains(ts, c.transport())))
	cmd.cuts = cuts
	if cuts {
		// Counted before the look at c.cancel: an exchange that begins
		// after that look sees the count and is cut short at once.
		c.interrupt.Add(1)
	}
	c.mu.Lock()
	if c.cancel != nil && cuts {
		// The exchange in flight ends now, not after its timeouts. Not
		// for Stop, which lets it end within Stop's context: a Register
		// that reached the server must then hear the De-register.
		c.cancel()
	}
	c.mu.Unlock()
	c.kick()
	select {
	case c.cmds <- cmd:
		c.kick()
	case <-c.runDone:
		if cuts {
			c.interrupt.Add(-1)
		}
		return false, ErrStopped
	case <-ctx.Done():
		if cuts {
			c.interrupt.Add(-1)
		}
		return false, ctx.Err()
	}
	select {
	case err := <-cmd.reply:
		return true, err
	case <-c.runDone:
		return true, ErrStopped
	case <-ctx.Done():
		return true, ctx.Err()
	}
}

// cutExchange ends the exchange in flight, if any.
func (c *Client) cutExchange() {
	c.mu.Lock()
	if c.cancel != nil {
		c.cancel()
	}
	c.mu.Unlock()
}

// EnterOffline takes the client offline on the given transports (all when
// none is given): the registration connection (UDP) is shut down, keeping
// its DTLS session, and nothing is sent while offline; firmware downloads
// on those transports are suspended. Timers keep running; an Update that
// falls due is remembered, and notifications are stored (see
// Config.StoredNotifications).
func (c *Client) EnterOffline(ctx context.Context, ts ...download.Transport) error {
	return errors.Join(c.send(ctx, cmdOffline, ts), c.each(ctx, cmdOffline, ts))
}

// ExitOffline brings the client back on the given transports (all when
// none is given). The registration connection comes back: if the DTLS
// session resumed and the registration's lifetime has not passed, there is
// no Register, observations survive, stored notifications are sent, and an
// Update goes out only if one fell due or a parameter changed; otherwise
// (a NoSec reconnect, a full handshake, an expired lifetime) the client
// registers again. In queue mode with nothing due, it stays asleep.
func (c *Client) ExitOffline(ctx context.Context, ts ...download.Transport) error {
	return errors.Join(c.send(ctx, cmdOnline, ts), c.each(ctx, cmdOnline, ts))
}

// Reconnect drops the registration connection and connects again (leaving
// offline mode), as after a network change; firmware downloads reconnect
// too. A DTLS session that resumes keeps the registration, and an Update
// tells the server the client's address; otherwise the client registers
// again.
func (c *Client) Reconnect(ctx context.Context) error {
	return errors.Join(c.send(ctx, cmdReconnect, nil), c.each(ctx, cmdReconnect, nil))
}

// Update has a Registration Update sent to every server as soon as the
// client is online, and returns at once (ErrStopped once the client has
// ended): it does not wait for an exchange in flight with a server that
// is slow or down.
func (c *Client) Update(context.Context) error {
	select {
	case <-c.runDone:
		return ErrStopped
	default:
	}
	for _, s := range c.sessions() {
		s.wantUpdate()
	}
	return nil
}

// Changed tells the client that the value at p (a resource, or anything
// above it) changed on the device's side, so observers are notified, every
// server's.
func (c *Client) Changed(p content.Path) {
	for _, s := range c.sessions() {
		s.changedHere(p)
	}
}

// changedHere is Changed for this session's observers.
func (c *Client) changedHere(p content.Path) {
	c.obsMu.Lock()
	n := 0
	for _, o := range c.obs {
		if o.covers(p) {
			o.dirty = true
			n++
		}
	}
	c.obsMu.Unlock()
	if n > 0 {
		c.poke()
	}
}

// poke has the loop look at its timers and observations again.
func (c *Client) poke() { c.kick() }

// emit reports an event to the logger and to Config.OnEvent.
func (c *Client) emit(ev Event) {
	ev.Time = time.Now()
	if c.server != nil {
		ev.Server = c.server.shortID()
	}
	attrs := []any{"kind", ev.Kind}
	for _, kv := range [][2]string{{"op", ev.Op}, {"path", ev.Path}, {"code", ev.Code}, {"detail", ev.Detail}} {
		if kv[1] != "" {
			attrs = append(attrs, kv[0], kv[1])
		}
	}
	c.log.Info("lwm2m", attrs...)
	c.events.push(ev)
}

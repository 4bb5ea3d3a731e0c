package lwm2m

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/tether-iot/tether/download"
)

// registration is the loop's view of the registration; only Run's
// goroutine touches it.
type registration struct {
	state RegState // the machine's state (regstate.go)

	// The registration the server holds, from its 2.01; location is ""
	// when it holds none.
	location string   // for people: the segments joined with "/"
	segments []string // the Location-Path options, as the server gave them
	version  string   // "1.1", or "1.0" after a 4.12
	at       time.Time
	lifetime time.Duration // as the server knows it
	binding  string
	queue    bool

	// (The flags together: a hundred thousand clients each save the
	// padding.)
	updateWanted  bool            // a parameter changed, or an Update was asked for
	probe         bool            // the next Update tries a DTLS session restored without a handshake
	bootstrapNext bool            // Waiting leads to Bootstrapping, not Registering
	regFailures   int             // Registers failed in a row, for bootstrap on registration failure
	retryAt       time.Time       // Waiting: when the next Register goes out
	retryDelay    time.Duration   // the back-off's next wait
	stopCtx       context.Context // Stop's: bounds the De-register
	active        time.Time       // the last exchange, for queue mode
}

// known reports whether the server holds a registration of ours.
func (r *registration) known() bool { return r.location != "" }

// updateDue is when the next Update falls due: a margin before the
// lifetime ends, min(lifetime/2, MAX_TRANSMIT_WAIT), and never sooner than
// a second after the last one.
func (r *registration) updateDue(mtw time.Duration) time.Time {
	margin := min(r.lifetime/2, mtw)
	due := max(r.lifetime-margin, time.Second)
	if due >= r.lifetime { // a lifetime of a second or two
		due = r.lifetime / 2
	}
	return r.at.Add(due)
}

// expired reports whether the registration's lifetime has passed.
func (r *registration) expired(now time.Time) bool { return !now.Before(r.at.Add(r.lifetime)) }

// Run registers with the server and keeps the registration alive, serving
// the server's requests, until ctx ends (Run then returns ctx's error and
// does not deregister, as when power is lost) or Stop is called (Run
// deregisters and returns nil).
//
// The registration moves through the states of RegState, every move
// checked against one table (regTransitions):
//
//	     ┌──────────── 4.04, lifetime passed, session changed ─────────────┐
//	     ▼                                                                 │
//	──▶ Registering ──2.01──▶ Registered ──Update due──▶ Updating ──2.04───┤
//	     │     ▲              │  │  │  ▲                   │ error          │
//	error│     │back-off      │  │  │  └─something due── Asleep ◀─quiet───┤
//	     ▼     │              │  │  │                    (queue mode)     │
//	    Waiting┘              │  │  └─Reconnect, ExitOffline─▶ Reconnecting┤
//	       ▲   error (any)    │  │                  ▲          DTLS resumed┘
//	       └──────────────────┘  └─EnterOffline─▶ Offline
//	Stop: ──▶ Deregistering (registered and online) ──▶ Stopped; else ──▶ Stopped
//	Bootstrapping: no server yet, Registers failing (/1/x/16), or a
//	server's /1/x/9 (from Registered, Asleep or Waiting) ──▶ Registering
//
// Offline, Reconnect and Stop reach every state that has a connection;
// regTransitions lists each move.
//
// With further servers (Config.Servers, or a bootstrap's accounts), each
// registration runs this machine of its own.
//
// The machine runs on a goroutine only while it has something to do
// (drive.go): waiting for a timer, a command or the server, an idle
// client holds none of its own, and none reads its socket when the socket
// says when data arrives (sock.ReadNotifier). Run itself waits; Start does
// not.
func (c *Client) Run(ctx context.Context) error {
	if err := c.Start(ctx); err != nil {
		return err
	}
	<-c.ended
	return c.endErr
}

// Start starts the client, as Run does, and returns at once; Done is
// closed when it has ended, and Err then says why (nil after Stop).
func (c *Client) Start(ctx context.Context) error {
	if !c.isRoot() || !c.started.CompareAndSwap(false, true) {
		return ErrStopped // Run runs once; Stop before Run counts as a run
	}
	var fcancel context.CancelFunc = func() {}
	if c.firmware != nil {
		var fctx context.Context
		fctx, fcancel = context.WithCancel(ctx)
		c.firmware.start(fctx)
	}
	c.moreMu.Lock()
	c.runSessions(ctx, c.more)
	c.moreMu.Unlock()
	c.begin(ctx, func(err error) {
		// In this order: the loop's end is told (Stop returns), the
		// other servers' loops end, the firmware's goroutines end (an
		// Install that honours its context returns), and then the last
		// events, theirs included, are handed over: none is handed over
		// after Run returns.
		if ctx.Err() == nil {
			// Stopped: a session a bootstrap started after Stop looked
			// is stopped too.
			stopAll(ctx, c.sessions()[1:], c.params.MaxTransmitWait())
		}
		c.sessionsRunning.Wait()
		fcancel()
		if c.firmware != nil {
			c.firmware.stop()
		}
		c.events.flush()
		c.endErr = err
		close(c.ended)
	})
	return nil
}

// Done is closed when the client has ended: Run returned, or Stop before
// it.
func (c *Client) Done() <-chan struct{} { return c.ended }

// Err is why the client ended: ctx's error, or nil after Stop. It is nil
// until Done is closed.
func (c *Client) Err() error {
	select {
	case <-c.ended:
		return c.endErr
	default:
		return nil
	}
}

// turns runs the machine's turns until it must wait: it returns when
// the next turn is due (zero: when something happens), or that the
// machine has ended, with Run's error.
func (c *Client) turns(ctx context.Context) (next time.Time, end bool, err error) {
	r := &c.reg
	for {
		if err := ctx.Err(); err != nil {
			return time.Time{}, true, err
		}
		c.drain() // commands first: one may forbid the next exchange
		now := time.Now()
		c.takeRequests()
		if c.diverted() {
			continue
		}
		next = time.Time{}
		again := true
		switch r.state {
		case Stopped:
			return time.Time{}, true, nil
		case Deregistering:
			c.deregister(ctx)
			return time.Time{}, true, nil
		case Offline:
			if r.known() {
				c.storeDue(now)
				next = c.nextNotification(now)
			}
			again = false
		case Reconnecting:
			c.reconnectNow(ctx)
		case Bootstrapping:
			c.bootstrap(ctx)
		case Registering:
			c.register(ctx)
		case Waiting:
			next, again = c.waitingTurn(now)
		case Registered, Asleep, Updating:
			next, again = c.registeredTurn(ctx, now)
		}
		if !again {
			return next, false, nil
		}
	}
}

// takeRequests takes up what other goroutines asked of the loop: an
// Update, and a reboot without a Reboot function, which starts again as a
// device does, with a new registration.
func (c *Client) takeRequests() {
	r := &c.reg
	if c.updateReq.Swap(false) {
		r.updateWanted = true
	}
	if c.reboot.Swap(false) && r.state != Deregistering && r.state != Stopped {
		c.disconnect(false)
		c.invalidate()
		if r.state != Offline {
			c.move(Reconnecting)
		}
	}
}

// waitingTurn is a turn in Waiting: the next Register (or bootstrap) when
// the back-off has passed, or when it will.
func (c *Client) waitingTurn(now time.Time) (next time.Time, again bool) {
	r := &c.reg
	if now.Before(r.retryAt) {
		return r.retryAt, false
	}
	if r.bootstrapNext || c.dm == nil {
		r.bootstrapNext = false
		c.move(Bootstrapping)
	} else {
		c.move(Registering)
	}
	return time.Time{}, true
}

// registeredTurn is a turn while the server holds the registration: a new
// one when its lifetime passed, an Update when one is due, notifications
// and Send reports, sleep in queue mode; or when the next of these falls
// due.
func (c *Client) registeredTurn(ctx context.Context, now time.Time) (next time.Time, again bool) {
	r := &c.reg
	mtw := c.params.MaxTransmitWait()
	if r.expired(now) {
		c.emit(Event{Kind: "register", Detail: "lifetime expired"})
		c.invalidate()
		c.move(Registering)
		return time.Time{}, true
	}
	if r.updateWanted || !now.Before(r.updateDue(mtw)) {
		c.update(ctx)
		return time.Time{}, true
	}
	if c.notify(ctx, now) || c.sendReports(ctx) {
		return time.Time{}, true
	}
	next = earliest(r.updateDue(mtw), c.nextNotification(now))
	if r.queue && r.state == Registered {
		active := r.active
		if s := time.Unix(0, c.served.Load()); s.After(active) {
			active = s
		}
		sleepAt := active.Add(mtw)
		if !now.Before(sleepAt) {
			c.sleep()
			return time.Time{}, true
		}
		next = earliest(next, sleepAt)
	}
	return next, false
}

// bootstrapAsked starts a bootstrap a server asked for (/1/x/9) when the
// registration can leave for it, and reports whether it did; offline, or
// in the middle of one, the request waits.
func (c *Client) bootstrapAsked() bool {
	r := &c.reg
	if !c.bsReq.Load() {
		return false
	}
	switch r.state {
	case Registered, Asleep, Waiting:
		c.bsReq.Store(false)
		c.disconnect(false)
		c.invalidate()
		c.emit(Event{Kind: "bootstrap", Detail: "server-initiated (Bootstrap-Request Trigger)"})
		c.move(Bootstrapping)
		return true
	case Bootstrapping, Deregistering, Stopped:
		c.bsReq.Store(false)
	}
	return false
}

// diverted reports whether the machine left its state for something that
// happened outside it: a bootstrap a server asked for, or a TCP
// connection the server closed.
func (c *Client) diverted() bool { return c.bootstrapAsked() || c.connectionLost() }

// connectionLost connects again, registered, when the server closed the
// TCP connection (or it failed), and reports whether it did: the server
// cannot reach the client until a new connection is made, over which the
// client registers again.
func (c *Client) connectionLost() bool {
	k := &c.conn
	if c.reg.state != Registered || !k.up || !k.lost.Load() || time.Since(k.began) < c.cfg.RetryDelay {
		return false
	}
	c.emit(Event{Kind: "error", Op: "connection", Detail: "the server's TCP connection ended: connecting again"})
	c.disconnect(false)
	c.move(Reconnecting)
	return true
}

// earliest is the sooner of two times, ignoring zero ones.
func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero():
		return a
	case b.Before(a):
		return b
	}
	return a
}

// drain carries out the commands that arrived while an exchange ran.
func (c *Client) drain() {
	for {
		select {
		case cmd := <-c.cmds:
			cmd.reply <- c.do(cmd)
		default:
			return
		}
	}
}

// do carries out a command on the loop's goroutine, between two steps of
// the machine (never during an exchange), so it may move the state.
func (c *Client) do(cmd command) error {
	if cmd.cuts {
		c.interrupt.Add(-1)
	}
	r := &c.reg
	// Offline mode is per transport: the registration goes with its own.
	mine := len(cmd.ts) == 0 || slices.Contains(cmd.ts, c.transport())
	switch cmd.kind {
	case cmdOffline:
		// The registration goes offline whatever a download says.
		err := c.downloads(func(dl *download.Controller) error { return dl.EnterOffline(cmd.ts...) })
		if mine && r.state != Offline {
			c.disconnect(false)
			c.move(Offline)
			c.emit(Event{Kind: "offline", Detail: transports(cmd.ts)})
		}
		return err
	case cmdOnline:
		err := c.downloads(func(dl *download.Controller) error { return dl.ExitOffline(cmd.ts...) })
		if mine && r.state == Offline {
			c.emit(Event{Kind: "online", Detail: transports(cmd.ts)})
			if r.queue && r.known() && !c.somethingDue(time.Now()) {
				// Queue mode with nothing to say: stay asleep until
				// something is due (it then connects as a wake-up does).
				c.move(Asleep)
				return err
			}
			c.move(Reconnecting)
		}
		return err
	case cmdReconnect:
		_ = c.downloads(func(dl *download.Controller) error {
			_ = dl.ExitOffline()
			for _, d := range dl.Downloads() {
				d.Reconnect()
			}
			return nil
		})
		c.disconnect(false)
		c.move(Reconnecting)
		// The address may have changed (that is what reconnects are for):
		// a session that survives still owes the server an Update, from
		// which it learns where the client now is.
		r.updateWanted = true
		c.emit(Event{Kind: "online", Detail: "reconnect"})
	case cmdStop:
		r.stopCtx = cmd.ctx
		if r.known() && r.state != Offline && !r.expired(time.Now()) {
			c.move(Deregistering)
		} else {
			c.move(Stopped)
		}
	}
	return nil
}

// transport is the transport of the registration's connection.
// It may be called from any goroutine.
func (c *Client) transport() download.Transport {
	if c.overTCP.Load() {
		return download.TCP
	}
	return download.UDP
}

// downloads applies a command to the firmware downloads: the root's
// business, once for every session.
func (c *Client) downloads(f func(*download.Controller) error) error {
	if !c.isRoot() {
		return nil
	}
	return f(c.dl)
}

func transports(ts []download.Transport) string {
	if len(ts) == 0 {
		return "udp,tcp"
	}
	s := ""
	for i, t := range ts {
		if i > 0 {
			s += ","
		}
		s += string(t)
	}
	return s
}

// reconnectNow connects again after offline mode or Reconnect. The
// registration survives only a DTLS session that resumed within the
// lifetime: then stored notifications go out, and an Update only if one is
// due. Otherwise the client registers again.
func (c *Client) reconnectNow(ctx context.Context) {
	r := &c.reg
	if c.dm == nil || r.bootstrapNext { // back online before a bootstrap completed
		r.bootstrapNext = false
		c.move(Bootstrapping)
		return
	}
	oldPort := c.conn.lastPort
	resumed, ok := c.comeBack(ctx)
	if !ok {
		return
	}
	if !r.known() {
		c.move(Registering)
		return
	}
	if !resumed || r.expired(time.Now()) {
		c.emit(Event{Kind: "register", Detail: "session changed: registering again"})
		c.invalidate()
		c.move(Registering)
		return
	}
	if c.conn.lastPort != oldPort {
		// The session came back on another port: the server's requests
		// go to the old one until it hears from the new. If no stored
		// notification tells it, an Update does; a short one, since the
		// server may have forgotten the session.
		r.updateWanted, r.probe = true, true
	}
	c.move(Registered)
	c.flushStored(ctx)
}

// wakeUp reconnects a client asleep in queue mode, and reports whether it
// is registered and connected. A NoSec wake-up keeps the registration (the
// local port is reused when free); a DTLS one keeps it if the session
// resumed.
func (c *Client) wakeUp(ctx context.Context) bool {
	r := &c.reg
	oldPort := c.conn.lastPort
	resumed, ok := c.comeBack(ctx)
	if !ok {
		return false
	}
	if c.dm.secure() && !resumed {
		c.invalidate()
		c.move(Registering)
		return false
	}
	if !c.dm.secure() && c.conn.lastPort != oldPort {
		// The old port was taken: the server knows an address that is no
		// longer ours until an Update comes from the new one.
		r.updateWanted = true
	}
	r.active = time.Now()
	c.move(Registered)
	return true
}

// comeBack connects again after sleep, offline mode or Reconnect, as an
// exchange that offline mode may cut short; a failure schedules the next
// try (Waiting) and forgets the registration. Cut short, it reports !ok
// and leaves the state to the command that cut it.
func (c *Client) comeBack(ctx context.Context) (resumed, ok bool) {
	xctx, done := c.exchangeCtx(ctx)
	resumed, err := c.connect(xctx)
	done()
	switch {
	case err != nil && xctx.Err() != nil:
		return false, false
	case err != nil:
		c.failed("connect", err)
		return false, false
	}
	return resumed, true
}

// sleep closes the socket in queue mode after MAX_TRANSMIT_WAIT of quiet.
func (c *Client) sleep() {
	c.disconnect(false)
	c.move(Asleep)
	c.emit(Event{Kind: "offline", Detail: "queue mode: asleep"})
}

// somethingDue reports whether the client has something to send now.
func (c *Client) somethingDue(now time.Time) bool {
	r := &c.reg
	if r.updateWanted || !now.Before(r.updateDue(c.params.MaxTransmitWait())) {
		return true
	}
	c.obsMu.Lock()
	n := len(c.stored) + len(c.reports)
	c.obsMu.Unlock()
	if n > 0 {
		return true
	}
	next := c.nextNotification(now)
	return !next.IsZero() && !next.After(now)
}

// Stop ends Run: the exchange in flight ends (or is cut short when ctx
// ends) and, if the server holds a registration and the client is
// online, one De-register goes out, bounded by ctx and MAX_TRANSMIT_WAIT. Stop returns when Run's loop
// has ended, or with ctx's error when ctx ends first; Run itself returns
// once the firmware's goroutines have ended and the last events are
// handed to OnEvent (which may call Stop).
func (c *Client) Stop(ctx context.Context) error {
	if c.isRoot() {
		// Every server hears its De-register at once, not one after
		// another.
		c.stopReq.Store(true)
		c.moreMu.Lock()
		more := c.more
		c.moreMu.Unlock()
		var wg sync.WaitGroup
		wg.Go(func() { stopAll(ctx, more, c.params.MaxTransmitWait()) })
		defer wg.Wait()
	}
	if c.started.CompareAndSwap(false, true) {
		close(c.runDone) // never ran: a later Run returns ErrStopped
		if c.isRoot() {
			close(c.ended)
		}
		if c.firmware != nil {
			c.firmware.release()
		}
		return nil
	}
	defer context.AfterFunc(ctx, c.cutExchange)()
	// A bootstrap's wait for its Finish ends at once: there is no
	// registration to take leave of.
	c.stopReq.Store(true)
	if c.bsNow.Load() != nil {
		c.cutExchange()
	}
	if queued, err := c.sendQueued(ctx, cmdStop, nil); err != nil && !errors.Is(err, ErrStopped) {
		if !queued {
			// The loop never heard of this Stop and runs on: its
			// bootstraps must not wait for a Stop that is not coming.
			c.stopReq.Store(false)
		}
		return err
	}
	select {
	case <-c.runDone:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// failed reports a failure of an exchange: the connection is dropped,
// the registration forgotten, and the next Register waits for the
// back-off (Waiting).
func (c *Client) failed(op string, err error) {
	r := &c.reg
	c.emit(Event{Kind: "error", Op: op, Detail: err.Error()})
	if op == "register" && c.bs != nil {
		// Bootstrap on Registration Failure (/1/x/16, default true)
		// after Communication Retry Count (/1/x/17, default 5) Registers.
		onFailure, count := true, 5
		if c.acct != nil {
			onFailure, count = c.acct.bsOnFailure, c.acct.retryCount
		}
		r.regFailures++
		if onFailure && r.regFailures >= count {
			r.regFailures = 0
			r.bootstrapNext = true
		}
	}
	r.retryAt = time.Now().Add(r.retryDelay)
	r.retryDelay = min(2*r.retryDelay, c.cfg.MaxRetryDelay)
	c.disconnect(false)
	c.invalidate()
	c.move(Waiting)
}

// wantUpdate asks the loop for a Registration Update (a parameter changed,
// or the server executed /1/0/8). It may be called from any goroutine.
func (c *Client) wantUpdate() {
	c.updateReq.Store(true)
	c.poke()
}

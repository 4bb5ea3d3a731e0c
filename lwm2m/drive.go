package lwm2m

import (
	"context"
	"sync/atomic"
	"time"
)

// A registration's machine runs on a goroutine only while it has work: a
// gateway hosting thousands of clients, or tether fleet a hundred
// thousand, pays for the ones that are busy, not for the idle. The
// machine's turns (turns) run until it must wait; the driver then arms
// one timer for when the next turn is due and lets its goroutine end.
// Whatever may give the machine work kicks it: the timer, a command, a
// poke (a changed value, a request served), the end of Run's context. A
// kick starts a goroutine if none is running, or else makes the running
// one turn again before it ends, so that no kick is lost between its last
// look and its end.
type driver struct {
	ctx     context.Context
	begun   atomic.Bool // begin has run: kicks count from then on
	running atomic.Bool // a goroutine drives the machine
	kicked  atomic.Bool // something happened since the driver last looked
	timer   *time.Timer // kicks when the next turn is due
	unwatch func() bool // stops the kick at ctx's end
	after   func(error) // what runs once the machine has ended
}

// begin starts the machine of c's registration, as Run's goroutine used
// to: after, if set, runs once it has ended, with Run's error.
func (c *Client) begin(ctx context.Context, after func(error)) {
	r := &c.reg
	r.version = "1.1"
	r.retryDelay = c.cfg.RetryDelay
	c.setStatus(func(s *Status) { s.State = r.state })
	if c.dm == nil {
		c.move(Bootstrapping) // nothing to register with yet
		c.overTCP.Store(c.bs.tcp)
	} else {
		c.overTCP.Store(c.dm.tcp)
	}
	d := &c.drv
	d.ctx, d.after = ctx, after
	d.timer = time.AfterFunc(time.Hour, c.kick)
	d.timer.Stop()
	d.unwatch = context.AfterFunc(ctx, c.kick)
	d.begun.Store(true)
	c.kick()
}

// kick has the machine look at its state again, on a goroutine of its own
// if none is running. It may be called from any goroutine; before begin it
// does nothing (begin kicks).
func (c *Client) kick() {
	d := &c.drv
	if !d.begun.Load() {
		return
	}
	d.kicked.Store(true)
	if d.running.CompareAndSwap(false, true) {
		go c.drive()
	}
}

// drive runs the machine's turns until it must wait, arms the timer for
// the next, and ends, unless it was kicked meanwhile.
func (c *Client) drive() {
	d := &c.drv
	for {
		d.kicked.Store(false)
		next, end, err := c.turns(d.ctx)
		if end {
			d.timer.Stop()
			d.unwatch()
			c.disconnect(true)
			c.move(Stopped)
			close(c.runDone)
			if d.after != nil {
				d.after(err)
			}
			return // running stays set: the machine never runs again
		}
		if next.IsZero() {
			d.timer.Stop()
		} else {
			d.timer.Reset(time.Until(next))
		}
		d.running.Store(false)
		if !d.kicked.Load() || !d.running.CompareAndSwap(false, true) {
			return
		}
	}
}

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
	run     kicks       // a goroutine drives the machine while kicked
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
	if d.run.kick() {
		go c.drive()
	}
}

// drive runs the machine's turns until it must wait, arms the timer for
// the next, and ends, unless it was kicked meanwhile.
func (c *Client) drive() {
	d := &c.drv
	for {
		d.run.look()
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
			return // never done: the machine never runs again
		}
		if next.IsZero() {
			d.timer.Stop()
		} else {
			d.timer.Reset(time.Until(next))
		}
		if !d.run.done() {
			return
		}
	}
}

// kicks runs work on a goroutine only while something asks for it, the
// driver's and the notified reader's: kick reports whether the caller
// must start the goroutine (none runs); that goroutine calls look before
// each look at its work and, when it finds none, done, which reports
// whether a kick came meanwhile and it must look again (false: it ends).
// No kick is lost between a goroutine's last look and its end.
type kicks struct {
	running atomic.Bool // a goroutine does the work
	kicked  atomic.Bool // something happened since it last looked
}

func (k *kicks) kick() (start bool) {
	k.kicked.Store(true)
	return k.running.CompareAndSwap(false, true)
}

func (k *kicks) look() { k.kicked.Store(false) }

func (k *kicks) done() (again bool) {
	k.running.Store(false)
	return k.kicked.Load() && k.running.CompareAndSwap(false, true)
}

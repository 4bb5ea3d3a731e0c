package download

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tether-iot/tether/sock"
)

// watchdog is the give-up deadline (Options.GiveUpAfter): it counts online
// time without progress, and when that reaches the limit it cancels the
// whole run, so whatever is in flight (an exchange, a handshake, a stalled
// HTTP body, a wait between attempts) ends at once. Time spent suspended
// does not count. The timer is not reset per block: progress only records
// the time, and a timer that fires early re-arms itself for what is left.
// Its methods run with the download's mutex held.
type watchdog struct {
	limit   time.Duration
	timer   *time.Timer
	idle    time.Duration // online time without progress before since
	since   time.Time     // start of the current online stretch without progress; zero while offline
	stopped bool          // the run is over: a firing that raced stop re-arms nothing
}

// start arms the watchdog for a run; fire is called (from the timer's
// goroutine, without the mutex) when the limit is reached.
func (w *watchdog) start(limit time.Duration, fire func()) {
	w.limit = limit
	if limit <= 0 {
		return
	}
	w.since = time.Now()
	w.timer = time.AfterFunc(limit, fire)
}

// progress records a block: the clock starts again.
func (w *watchdog) progress(now time.Time) {
	w.idle = 0
	if !w.since.IsZero() {
		w.since = now
	}
}

// offline stops the clock (Suspend).
func (w *watchdog) offline(now time.Time) {
	if w.timer == nil || w.since.IsZero() {
		return
	}
	w.idle += now.Sub(w.since)
	w.since = time.Time{}
	w.timer.Stop()
}

// online restarts the clock (Resume).
func (w *watchdog) online(now time.Time) {
	if w.timer == nil || w.stopped || !w.since.IsZero() {
		return
	}
	w.since = now
	w.timer.Reset(max(0, w.limit-w.idle))
}

// expired reports whether the limit is reached; if not, it re-arms the
// timer for what is left. Called when the timer fires.
func (w *watchdog) expired(now time.Time) bool {
	if w.stopped || w.since.IsZero() {
		return false // over, or offline: online re-arms it
	}
	spent := w.idle + now.Sub(w.since)
	if spent >= w.limit {
		return true
	}
	w.timer.Reset(w.limit - spent)
	return false
}

// stop releases the timer at the end of the run.
func (w *watchdog) stop() {
	w.stopped = true
	if w.timer != nil {
		w.timer.Stop()
	}
}

// gaveUpError is ErrGaveUp after an attempt failed: its text says what it
// waited for and the last failure, and its chain holds that failure too,
// so a caller can tell a DNS failure from a refusal.
type gaveUpError struct{ err, last error }

func (e *gaveUpError) Error() string   { return e.err.Error() }
func (e *gaveUpError) Unwrap() []error { return []error{e.err, e.last} }

// giveUp is the watchdog's timer function: it ends the run with ErrGaveUp
// and what the download was waiting for.
func (d *Download) giveUp(cancel context.CancelCauseFunc) func() {
	return func() {
		d.mu.Lock()
		if !d.dog.expired(time.Now()) {
			d.mu.Unlock()
			return
		}
		waiting, last, backingOff := d.waitingLocked(), d.prog.LastError, d.phase == BackingOff
		d.mu.Unlock()
		err := fmt.Errorf("%w after %v online without progress, while %s", ErrGaveUp, d.dog.limit, waiting)
		if last != nil {
			if !backingOff { // else waiting says it already
				err = fmt.Errorf("%w; the last attempt: %v", err, last)
			}
			err = &gaveUpError{err: err, last: last} // why the attempts failed, for errors.Is and As
		}
		cancel(err)
	}
}

// connectContext bounds a connect by Options.ConnectTimeout; connectError
// tells a connect it cut short from one that failed on its own.
func (d *Download) connectContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d.opts.ConnectTimeout)
}

// connectError is the error of a connect under cctx, a connectContext of
// ctx: ErrConnectTimeout, saying what the connect was doing, when the
// connect timeout ended it; err itself when the connect failed on its
// own, when ctx ended (Suspend, give-up), or when err settles the matter
// (refused credentials, a permanent failure).
func (d *Download) connectError(ctx, cctx context.Context, err error) error {
	if err == nil || ctx.Err() != nil || errors.Is(err, sock.ErrAuth) || sock.IsPermanent(err) {
		return err
	}
	// A socket's own deadline (the context's, passed down) can expire a
	// moment before the context's timer does.
	if deadline, _ := cctx.Deadline(); cctx.Err() == nil && time.Now().Before(deadline) {
		return err
	}
	d.mu.Lock()
	waiting := d.waitingLocked()
	d.mu.Unlock()
	return fmt.Errorf("%w after %v, while %s", ErrConnectTimeout, d.opts.ConnectTimeout, waiting)
}

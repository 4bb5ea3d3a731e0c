package download

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/tether-iot/tether/coap/client"
	"github.com/tether-iot/tether/sock"
)

// run is the download's goroutine: the engine, then the files put in
// order, then the end.
func (d *Download) run(ctx context.Context) {
	runCtx, cancel := context.WithCancelCause(ctx)
	err := d.engine(runCtx, cancel)
	d.mu.Lock()
	d.dog.stop()
	d.mu.Unlock()
	cancel(nil)
	if d.file != nil {
		err = d.file.settle(d, err)
	}
	d.finish(err)
}

// engine drives the phases (see the package documentation) until the body
// is verified or the download cannot go on. Suspend, Resume and Reconnect
// move phases from other goroutines and wake it. cancel ends ctx, for the
// give-up deadline.
func (d *Download) engine(ctx context.Context, cancel context.CancelCauseFunc) error {
	d.report()
	if d.file != nil {
		if d.file.inPlace {
			d.setStep(stepOpen)
		} else {
			d.setStep(stepPrefix)
		}
		if err := d.file.start(ctx, d); err != nil {
			if ctx.Err() != nil {
				return d.stopped(ctx)
			}
			return err
		}
	}
	if wd, ok := d.dst.(interface{ SetWriteDeadline(time.Time) error }); ok {
		// A write into a pipe whose reader stalls must not outlast ctx.
		stop := context.AfterFunc(ctx, func() { wd.SetWriteDeadline(time.Now()) })
		defer stop()
	}
	d.mu.Lock()
	// The give-up clock runs from here: checking the disk is not waiting
	// for the network.
	d.dog.start(d.opts.GiveUpAfter, d.giveUp(cancel))
	if d.phase == Suspended {
		d.dog.offline(time.Now())
	}
	d.step = stepNone
	if d.phase == Starting {
		if d.completeLocked() {
			d.setPhaseLocked(Verifying)
		} else {
			d.setPhaseLocked(Attempting)
		}
	}
	d.mu.Unlock()
	delay := d.opts.RetryDelay
	reported := Phase(-1)
	for {
		if ctx.Err() != nil {
			return d.stopped(ctx)
		}
		d.mu.Lock()
		phase, wake, next := d.phase, d.wake, d.prog.NextAttempt
		d.mu.Unlock()
		if phase != reported {
			d.report()
			reported = phase
		}
		switch phase {
		case Suspended:
			if d.file != nil {
				d.file.checkpoint(d, true)
			}
			select {
			case <-ctx.Done():
			case <-wake:
			}
		case BackingOff:
			t := time.NewTimer(time.Until(next))
			select {
			case <-ctx.Done():
			case <-wake:
			case <-t.C:
				d.advance(BackingOff, Attempting)
			}
			t.Stop()
		case Attempting:
			var err error
			if delay, err = d.attemptOnce(ctx, delay); err != nil {
				return err
			}
		case Verifying:
			d.mu.Lock()
			d.dog.offline(time.Now()) // local work: not waiting for the network
			d.mu.Unlock()
			err := d.verify(ctx)
			if err != nil && ctx.Err() != nil {
				return d.stopped(ctx) // a verified body is settled whatever the context does now
			}
			if !errors.Is(err, errDamaged) {
				return err
			}
			d.log.Warn("download: the file changed on disk while it was written; continuing from the last good byte", "err", err)
			d.mu.Lock()
			if d.advanceLocked(Verifying, Attempting) {
				d.dog.online(time.Now())
			}
			d.mu.Unlock()
		default:
			return fmt.Errorf("download: BUG: the engine found the download %v", phase)
		}
	}
}

// attemptOnce runs one attempt and decides what follows it: verifying, a
// retry after a wait, a restart, or the end (a non-nil error). delay is
// the back-off wait, returned updated.
func (d *Download) attemptOnce(ctx context.Context, delay time.Duration) (time.Duration, error) {
	exCtx, cancelEx := context.WithCancel(ctx)
	defer cancelEx()
	d.mu.Lock()
	if d.phase != Attempting {
		d.mu.Unlock()
		return delay, nil
	}
	d.cancelEx, d.reconnect = cancelEx, false
	d.mu.Unlock()

	progressed, err := d.attempt(exCtx)
	if err != nil && ctx.Err() != nil {
		return delay, d.stopped(ctx) // while the step still says what was in flight
	}
	cut := exCtx.Err() != nil // by Suspend or Reconnect
	d.mu.Lock()
	d.cancelEx, d.step = nil, stepNone
	d.mu.Unlock()
	if progressed {
		delay = d.opts.RetryDelay
	}
	switch {
	case err == nil:
		d.advance(Attempting, Verifying)
		return delay, nil
	case errors.Is(err, ErrResourceChanged) || errors.Is(err, ErrUnverified) || errors.Is(err, client.ErrETagChanged):
		if errors.Is(err, client.ErrETagChanged) && !errors.Is(err, ErrResourceChanged) {
			err = fmt.Errorf("%w: %w", ErrResourceChanged, err)
		}
		if d.opts.OnChange != Restart {
			return delay, err
		}
		return delay, d.restart(err)
	case d.Phase() != Attempting || cut:
		return delay, nil // Suspend or Reconnect cut the attempt short
	case sock.IsPermanent(err):
		return delay, err
	case errors.Is(err, sock.ErrAuth):
		// A refusal read from silence (a DTLS server that never took our
		// Finished): a second handshake that meets it too settles it.
		if d.suspectedAuth++; d.suspectedAuth >= 2 {
			return delay, err
		}
	default:
		d.suspectedAuth = 0
	}
	if progressed {
		d.suspectedAuth = 0
	}
	wait := delay
	if ra := retryAfter(err); ra > 0 {
		wait = min(ra, maxRetryAfter) // the server said when
	}
	d.mu.Lock()
	if d.reconnect {
		// Reconnect came after the attempt ended: it asked for a new one
		// now, not after the wait.
		d.reconnect = false
		d.mu.Unlock()
		return delay, nil
	}
	if d.advanceLocked(Attempting, BackingOff) {
		d.prog.Retries++
		d.prog.LastError = err
		d.prog.NextAttempt = time.Now().Add(wait)
	}
	d.mu.Unlock()
	d.log.Warn("download: retrying", "err", err, "in", wait)
	return min(2*delay, d.opts.MaxRetryDelay), nil
}

// attempt connects and fetches the body from the first byte not yet
// written, to its end or an error; progressed reports whether any byte was
// written.
func (d *Download) attempt(ctx context.Context) (progressed bool, err error) {
	d.mu.Lock()
	complete := d.completeLocked()
	d.mu.Unlock()
	if complete {
		return false, nil // an earlier run got it all; only the verification is left
	}
	if d.target.scheme.http {
		return d.attemptHTTP(ctx)
	}
	return d.attemptCoAP(ctx)
}

// completeLocked reports whether every byte of a body of known size is
// written. d.mu is held.
func (d *Download) completeLocked() bool { return d.total >= 0 && d.written == d.total }

// advance moves the engine from one phase to the next, unless another
// goroutine moved it meanwhile (Suspend, say), which wins.
func (d *Download) advance(from, to Phase) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.advanceLocked(from, to)
}

func (d *Download) advanceLocked(from, to Phase) bool {
	return d.phase == from && d.setPhaseLocked(to)
}

// stopped is the error of a download whose context ended: its cause, and
// what the download was waiting for.
func (d *Download) stopped(ctx context.Context) error {
	cause := context.Cause(ctx)
	if errors.Is(cause, ErrGaveUp) {
		return cause // the watchdog's, which says what it waited for
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return &stoppedError{cause: cause, waiting: d.waitingLocked()}
}

// errDamaged reports a file whose bytes on disk are not the ones written:
// the download continues from the last good byte.
var errDamaged = errors.New("download: the file on disk differs from what was written")

// verify checks the complete body: its size, and its SHA-256 against the
// one expected. A file's is read back from the disk.
func (d *Download) verify(ctx context.Context) error {
	if d.file != nil {
		return d.file.verify(ctx, d)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.acceptLocked(d.hash.Sum(nil))
}

// acceptLocked checks the size and sum of a complete body and keeps the
// sum. d.mu is held.
func (d *Download) acceptLocked(sum []byte) error {
	switch {
	case d.total >= 0 && d.written != d.total:
		return fmt.Errorf("%w: %d bytes, the server announced %d", ErrVerify, d.written, d.total)
	case d.opts.Size > 0 && d.written != d.opts.Size:
		return fmt.Errorf("%w: %d bytes, expected %d", ErrVerify, d.written, d.opts.Size)
	case d.opts.SHA256 != nil && subtle.ConstantTimeCompare(sum, d.opts.SHA256) != 1:
		return fmt.Errorf("%w: SHA-256 %x, expected %x", ErrVerify, sum, d.opts.SHA256)
	}
	d.sum = sum
	return nil
}

// restart discards what was written, for the Restart policy; why is the
// change that calls for it.
func (d *Download) restart(why error) error {
	if d.restarts++; d.restarts > maxRestarts {
		return fmt.Errorf("%w (it changed %d times during the download)", why, d.restarts)
	}
	var discarded int64
	reset := func() {
		d.mu.Lock()
		discarded = d.written
		d.resetLocked()
		d.mu.Unlock()
	}
	if d.file != nil && !d.file.inPlace {
		if err := d.file.truncate(0, reset); err != nil {
			return err
		}
	} else {
		t, ok := d.dst.(interface{ Truncate(int64) error })
		if !ok {
			return fmt.Errorf("%w; the destination cannot start over", why)
		}
		if err := t.Truncate(0); err != nil {
			return &writeError{err}
		}
		reset()
	}
	d.log.Warn("download: starting over", "discarded", discarded, "why", why)
	return nil
}

// resetLocked forgets what a state restored: a fresh start. d.mu is held,
// or the download not yet shared.
func (d *Download) resetLocked() {
	d.written, d.etag, d.lastMod, d.total = 0, nil, "", -1
	if d.opts.Size > 0 {
		d.total = d.opts.Size
	}
	d.hash.Reset()
	d.marks = checkpoints{}
	d.pending, d.resumePending = nil, nil
	d.blockSize = d.opts.BlockSize
	d.rate = rateMeter{}
}

// maxRestarts bounds the Restart policy: a server whose resource keeps
// changing under the download (two versions behind one name) is not
// followed forever.
const maxRestarts = 3

// finish records the end of the download.
func (d *Download) finish(err error) {
	d.mu.Lock()
	d.phase = Ended // from any phase: the end is not the engine's choice alone
	d.err = err
	if d.s != nil {
		d.s.Close()
		d.s = nil
	}
	d.mu.Unlock()
	d.report()
	if onEnd := d.opts.onEnd; onEnd != nil {
		onEnd(d)
	}
	// Said before Wait returns: after it, the caller may read, reuse or
	// close what its Logger writes to.
	if err != nil {
		d.log.Info("download ended", "err", err)
	} else {
		d.log.Info("download complete")
	}
	close(d.done)
}

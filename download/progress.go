package download

import (
	"fmt"
	"time"
)

// Progress is a snapshot of a download.
type Progress struct {
	Phase   Phase
	Written int64         // bytes written, from the start of the body
	Total   int64         // the body's size, -1 while unknown
	Rate    float64       // bytes per second over the last seconds
	Retries int           // attempts that failed and were tried again (a Resume is not counted)
	Offline time.Duration // time spent suspended
	Blocks  int           // blocks (or HTTP reads) received
	// NextAttempt is when the next attempt starts while BackingOff
	// (sooner on Resume or Reconnect); zero otherwise.
	NextAttempt time.Time
	// LastError is why the last attempt failed, until a block arrives.
	LastError error
}

// Progress returns a snapshot of the download.
func (d *Download) Progress() Progress {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.progressLocked()
}

func (d *Download) progressLocked() Progress {
	p := d.prog
	p.Phase, p.Written, p.Total = d.phase, d.written, d.total
	p.Rate = d.rate.rate(time.Now())
	if d.phase == Suspended {
		p.Offline += time.Since(d.offSince)
	}
	if d.phase != BackingOff {
		p.NextAttempt = time.Time{}
	}
	return p
}

// report hands a snapshot to Options.Progress, from the engine's
// goroutine, without the mutex.
func (d *Download) report() {
	if d.opts.Progress == nil {
		return
	}
	d.mu.Lock()
	p := d.progressLocked()
	d.mu.Unlock()
	d.opts.Progress(p)
}

// record writes bytes of the body and accounts for them: the running hash
// and its checkpoints, progress, the give-up clock. The bytes start at the
// first byte not yet written, or past it (a Q-Block2 block after a gap,
// kept until the gap is filled: pending.go). total is the body's size when
// known, else -1.
func (d *Download) record(off int64, payload []byte, total int64) error {
	d.mu.Lock()
	written := d.written
	d.mu.Unlock()
	if off < written { // the transports deliver each byte once
		return fmt.Errorf("%w: a block at byte %d, after %d bytes", errProtocol, off, written)
	}
	end := off + int64(len(payload))
	if total >= 0 && end > total {
		return fmt.Errorf("%w: the body runs past the %d bytes announced", ErrTooLarge, total)
	}
	if d.opts.tooLarge(end) {
		return fmt.Errorf("%w: over %d bytes (Options.MaxSize)", ErrTooLarge, d.opts.MaxSize)
	}
	if len(payload) > 0 {
		if _, err := d.dst.WriteAt(payload, off); err != nil {
			return &writeError{err}
		}
	}
	now := time.Now()
	d.mu.Lock()
	if off > written {
		if err := d.recordAheadLocked(off, payload); err != nil {
			d.mu.Unlock()
			return fmt.Errorf("%w: %w", errProtocol, err)
		}
	} else {
		d.marks.add(d.hash, payload, off)
		d.written = end
		d.absorbLocked()
	}
	d.prog.Blocks++
	d.prog.LastError = nil
	if total >= 0 {
		d.total = total
	}
	d.rate.add(now, d.written)
	d.dog.progress(now)
	d.mu.Unlock()
	d.report()
	if d.file != nil {
		d.file.checkpoint(d, false)
	}
	return nil
}

// step is what an attempt waits for, for messages.
type step int

const (
	stepNone step = iota
	stepConnect
	stepCSM
	stepBlock
	stepHeaders
	stepBody
	stepPrefix
	stepOpen
)

// setStep records what the engine waits for now.
func (d *Download) setStep(s step) {
	d.mu.Lock()
	d.step = s
	d.mu.Unlock()
}

// waitingLocked says what the download is waiting for, for an error that
// ends it: "waiting for the block at byte 1024 from fw.example:5683".
func (d *Download) waitingLocked() string {
	ep := d.endpointLocked()
	switch d.phase {
	case Starting:
		switch d.step {
		case stepPrefix:
			return "verifying what an earlier run wrote"
		case stepOpen:
			return fmt.Sprintf("opening %s (a FIFO waits for its reader)", d.file.path)
		}
		return "starting"
	case Suspended:
		return "suspended"
	case BackingOff:
		if d.prog.LastError != nil {
			return fmt.Sprintf("waiting to try again after: %v", d.prog.LastError)
		}
		return "waiting to try again"
	case Verifying:
		return "verifying the body"
	case Ended:
		return "ended"
	}
	switch d.step {
	case stepConnect:
		secure := d.target.scheme.secure
		if d.hop.endpoint != "" {
			secure = d.hop.secure
		}
		switch {
		case !secure:
			return "connecting to " + ep
		case d.target.scheme.transport == UDP:
			return "connecting to " + ep + " (DTLS handshake)"
		}
		return "connecting to " + ep + " (TLS handshake)"
	case stepCSM:
		return fmt.Sprintf("waiting for the CSM of %s", ep)
	case stepBlock:
		return fmt.Sprintf("waiting for the block at byte %d from %s", d.written, ep)
	case stepHeaders:
		return fmt.Sprintf("waiting for the HTTP response headers from %s", ep)
	case stepBody:
		return fmt.Sprintf("reading the HTTP body from %s at byte %d", ep, d.written)
	}
	return "attempting"
}

// rateMeter estimates the transfer rate over the last few seconds.
type rateMeter struct {
	t [16]time.Time
	n [16]int64
	i int
}

func (r *rateMeter) add(now time.Time, written int64) {
	last := (r.i + len(r.t) - 1) % len(r.t)
	if !r.t[last].IsZero() && now.Sub(r.t[last]) < 250*time.Millisecond {
		r.n[last] = written
		return
	}
	r.t[r.i], r.n[r.i] = now, written
	r.i = (r.i + 1) % len(r.t)
}

func (r *rateMeter) rate(now time.Time) float64 {
	last := (r.i + len(r.t) - 1) % len(r.t)
	first := r.i
	if r.t[first].IsZero() {
		first = 0
	}
	if r.t[last].IsZero() || first == last {
		return 0
	}
	dt := now.Sub(r.t[first]).Seconds()
	if dt <= 0 {
		return 0
	}
	return float64(r.n[last]-r.n[first]) / dt
}

// endpointLocked is the server the download talks to, as messages name
// it: the URL's host and port, or those an HTTP redirect led to. d.mu is
// held.
func (d *Download) endpointLocked() string {
	if d.hop.endpoint != "" {
		return d.hop.endpoint
	}
	return d.target.endpoint()
}

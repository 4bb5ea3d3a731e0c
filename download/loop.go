package download

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/client"
	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/dtlssock"
	"github.com/tether-iot/tether/sock/tlssock"
)

// writeError marks a failure of the destination, which no retry can fix.
type writeError struct{ err error }

// Error implements error.
func (e *writeError) Error() string { return "download: write: " + e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

func (d *Download) run(ctx context.Context) { d.finish(d.loop(ctx)) }

// loop runs attempts until the body is complete, a fatal error, or ctx ends.
func (d *Download) loop(ctx context.Context) error {
	delay := d.opts.RetryDelay
	lastBlock := time.Now()
	for {
		if err := d.waitResumed(ctx); err != nil {
			return err
		}
		if g := d.opts.GiveUpAfter; g > 0 && time.Since(lastBlock) > g {
			return fmt.Errorf("%w after %v", ErrGaveUp, g)
		}
		exCtx, cancel := context.WithCancel(ctx)
		d.mu.Lock()
		if d.suspended {
			d.mu.Unlock()
			cancel()
			continue
		}
		d.cancelEx = cancel
		d.mu.Unlock()

		progressed, err := d.attempt(exCtx)
		cut := exCtx.Err() != nil // by Suspend or Reconnect, before our own cancel
		cancel()
		d.mu.Lock()
		d.cancelEx = nil
		suspended := d.suspended
		d.mu.Unlock()

		if progressed {
			lastBlock, delay = time.Now(), d.opts.RetryDelay
		}
		switch {
		case err == nil:
			return d.verify()
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, ErrResourceChanged) || errors.Is(err, client.ErrETagChanged):
			if d.opts.OnChange != Restart {
				if !errors.Is(err, ErrResourceChanged) {
					err = fmt.Errorf("%w: %w", ErrResourceChanged, err)
				}
				return err
			}
			if err := d.restart(); err != nil {
				return err
			}
			continue
		case suspended:
			continue // Suspend cut the exchange short; wait for Resume
		case cut:
			continue // Reconnect cut it short
		case fatal(err):
			return err
		}
		d.log.Warn("download: retrying", "err", err, "in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, d.opts.MaxRetryDelay)
		d.mu.Lock()
		d.prog.Retries++
		d.mu.Unlock()
	}
}

// fatal reports errors that no reconnect can cure: the server broke the
// protocol, refused the resource or failed certificate verification, or
// the destination failed.
func fatal(err error) bool {
	var (
		re  *client.ResponseError
		he2 *HTTPError
		we  *writeError
		cve *tls.CertificateVerificationError
		ua  x509.UnknownAuthorityError
		he  x509.HostnameError
		ci  x509.CertificateInvalidError
	)
	return errors.As(err, &re) || errors.As(err, &we) || errors.As(err, &he2) || errors.Is(err, errProtocol) ||
		errors.As(err, &cve) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci) ||
		errors.Is(err, client.ErrUnexpectedBlock) || errors.Is(err, client.ErrBlockSize) ||
		errors.Is(err, client.ErrSizeMismatch) || errors.Is(err, coap.ErrBadBlock) ||
		errors.Is(err, coap.ErrBadParams) || errors.Is(err, sock.ErrInvalidHost) ||
		errors.Is(err, sock.ErrInvalidPort) || errors.Is(err, ErrVerify)
}

// waitResumed blocks while the download is suspended.
func (d *Download) waitResumed(ctx context.Context) error {
	for {
		d.mu.Lock()
		suspended, wake := d.suspended, d.wake
		d.mu.Unlock()
		if !suspended {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		}
	}
}

// attempt connects and fetches blocks from the first one missing until the
// end or an error; progressed reports whether any block was written.
func (d *Download) attempt(ctx context.Context) (progressed bool, err error) {
	if d.transport == HTTP || d.transport == HTTPS {
		return d.attemptHTTP(ctx)
	}
	s, err := d.connect(ctx)
	if err != nil {
		return false, err
	}
	cfg := &client.Config{Params: d.opts.Params, Logger: d.opts.Logger}
	var c *client.Conn
	if d.transport == TCP || d.transport == TLS {
		c, err = client.NewTCP(ctx, s, cfg)
	} else {
		c, err = client.NewUDP(s, cfg)
	}
	if err != nil {
		return false, err
	}
	d.mu.Lock()
	req := client.BlockRequest{Path: d.path, Offset: d.written, BlockSize: d.opts.BlockSize}
	d.mu.Unlock()
	first := true
	err = c.GetBlocks(ctx, req, func(ch client.Chunk) error {
		if first {
			first = false
			if err := d.checkETag(ch.ETag); err != nil {
				return err
			}
		}
		total := ch.Size2
		if total < 0 && !ch.More {
			total = ch.Offset + int64(len(ch.Payload))
		}
		if err := d.record(ch.Offset, ch.Payload, total); err != nil {
			return err
		}
		progressed = true
		return nil
	})
	return progressed, err
}

// record writes payload at off, then updates the progress, the running hash
// and the rate; total is the body's size when known, else -1.
func (d *Download) record(off int64, payload []byte, total int64) error {
	if _, err := d.dst.WriteAt(payload, off); err != nil {
		return &writeError{err}
	}
	d.mu.Lock()
	if off < d.written {
		d.prog.Refetched += min(d.written, off+int64(len(payload))) - off
	}
	d.written = off + int64(len(payload))
	d.hash.Write(payload)
	d.prog.Blocks++
	if total >= 0 {
		d.prog.Total = total
	}
	d.rate.add(time.Now(), d.written)
	var p Progress
	cb := d.opts.Progress
	if cb != nil {
		p = d.progressLocked()
	}
	d.mu.Unlock()
	if cb != nil {
		cb(p)
	}
	return nil
}

// checkETag verifies the first block after a (re)connect.
func (d *Download) checkETag(tag []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.written == 0:
		d.etag = append([]byte(nil), tag...) // a fresh start: whatever it is
		if tag == nil {
			d.etag = nil
		}
		return nil
	case d.etag == nil:
		return nil // the server never sent one: nothing to verify against
	case tag == nil && d.opts.AllowUnverified:
		d.log.Warn("download: resumed without an ETag; not verified", "written", d.written)
		return nil
	case tag == nil:
		return fmt.Errorf("%w: ETag %x before, none after the resume", ErrResourceChanged, d.etag)
	case !bytes.Equal(tag, d.etag):
		return fmt.Errorf("%w: ETag %x before, %x after the resume", ErrResourceChanged, d.etag, tag)
	}
	return nil
}

// restart discards what was written, for the Restart policy.
func (d *Download) restart() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if t, ok := d.dst.(interface{ Truncate(int64) error }); ok {
		if err := t.Truncate(0); err != nil {
			return &writeError{err}
		}
	}
	d.log.Warn("download: the resource changed; starting over", "discarded", d.written)
	d.written, d.etag, d.lastMod = 0, nil, ""
	d.hash.Reset()
	d.prog.Total = -1
	return nil
}

// connect (re)connects the download's socket: shut down, bound to the
// previous local port when it can (UDP), connected to the hostname and port
// of the URL, preferring the address used before.
func (d *Download) connect(ctx context.Context) (sock.Socket, error) {
	d.mu.Lock()
	s, port := d.s, d.localPort
	d.mu.Unlock()
	if s == nil {
		var err error
		if s, err = d.newSocket(); err != nil {
			return nil, err
		}
		if err := sock.SetPreferredEndpoint(s, &d.pref); err != nil {
			d.log.Debug("download: socket has no stickiness", "err", err)
		}
		d.mu.Lock()
		d.s = s
		d.mu.Unlock()
	} else {
		sock.Shutdown(s) // already shut down by Suspend, or the link broke
	}
	bound := false
	if port != "" && d.transport == UDP {
		bound = sock.Bind(ctx, s, "", port) == nil
	}
	err := s.Connect(ctx, d.host, d.port)
	if err != nil && bound {
		s.Close() // the old port cannot reach the server: a new one
		err = s.Connect(ctx, d.host, d.port)
	}
	if err != nil {
		return nil, err
	}
	if p, err := sock.LocalPort(s); err == nil {
		d.mu.Lock()
		d.localPort = p
		d.mu.Unlock()
	}
	return s, nil
}

// newSocket creates the download's socket: the raw one from the factory,
// with TLS on top for coaps+tcp.
func (d *Download) newSocket() (sock.Socket, error) {
	switch d.transport {
	case TLS:
		raw, err := d.opts.NewSocket("tcp")
		if err != nil {
			return nil, err
		}
		return tlssock.New(raw, d.opts.TLS), nil
	case DTLS:
		raw, err := d.opts.NewSocket("udp")
		if err != nil {
			return nil, err
		}
		return dtlssock.New(raw, d.opts.DTLS), nil
	}
	return d.opts.NewSocket(string(d.transport))
}

// verify checks the complete body against what the caller expects.
func (d *Download) verify() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.prog.Total >= 0 && d.written != d.prog.Total {
		return fmt.Errorf("%w: %d bytes, the server announced %d", ErrVerify, d.written, d.prog.Total)
	}
	if d.opts.Size > 0 && d.written != d.opts.Size {
		return fmt.Errorf("%w: %d bytes, expected %d", ErrVerify, d.written, d.opts.Size)
	}
	if d.opts.SHA256 != nil {
		if sum := d.hash.Sum(nil); subtle.ConstantTimeCompare(sum, d.opts.SHA256) != 1 {
			return fmt.Errorf("%w: SHA-256 %x, expected %x", ErrVerify, sum, d.opts.SHA256)
		}
	}
	return nil
}

// Sum returns the SHA-256 of the bytes written so far.
func (d *Download) Sum() []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.hash.Sum(nil)
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

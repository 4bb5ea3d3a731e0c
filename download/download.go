package download

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/tether-iot/tether/sock"
)

// Download is one running download. Its methods are safe for concurrent use.
type Download struct {
	target *target
	dst    io.WriterAt
	file   *partFile // the crash-safe file of ToFile; nil otherwise
	opts   Options
	log    *slog.Logger

	mu            sync.Mutex
	phase         Phase
	wake          chan struct{}      // closed to wake the engine from a wait
	cancelEx      context.CancelFunc // the attempt in flight
	step          step               // what the engine waits for
	s             sock.Socket
	localPort     string
	pref          sock.PreferredEndpoint
	hop           hop                                // HTTP: where the request in flight goes, after redirects
	hopPrefs      map[string]*sock.PreferredEndpoint // HTTP: stickiness per host redirected to
	etag          []byte
	lastMod       string // HTTP's Last-Modified, when there is no strong ETag
	written       int64
	pending       map[int64][]byte // blocks written past written, by offset (pending.go)
	resumePending []PendingBlock   // a restored state's, until read back
	blockSize     int              // the CoAP block size to ask for: the server's, once it answered
	total         int64            // the body's size, -1 while unknown
	hash          hash.Hash
	marks         checkpoints
	sum           []byte // the verified SHA-256, once the body is complete
	prog          Progress
	rate          rateMeter
	offSince      time.Time
	dog           watchdog
	restarts      int  // times the Restart policy started over; the engine's
	suspectedAuth int  // attempts in a row that ended on a refusal read from silence; the engine's
	reconnect     bool // Reconnect was asked for: the attempt's failure is no reason to wait

	done chan struct{}
	err  error
}

// Start begins downloading rawURL (coap://, coaps://, coap+tcp://,
// coaps+tcp://, http:// or https://) into dst, in a goroutine of its own,
// and returns at once; the URL and the options are checked first. The
// download writes dst strictly in order, each byte once (Stream adapts a
// plain io.Writer), so a Restart needs a Truncate method on dst. ctx bounds
// the whole download.
func Start(ctx context.Context, rawURL string, dst io.WriterAt, opts *Options) (*Download, error) {
	d, err := newDownload(rawURL, dst, opts)
	if err != nil {
		return nil, err
	}
	go d.run(ctx)
	return d, nil
}

func newDownload(rawURL string, dst io.WriterAt, opts *Options) (*Download, error) {
	t, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	d := &Download{target: t, dst: dst, wake: make(chan struct{}), done: make(chan struct{}), hash: sha256.New(), total: -1}
	if opts != nil {
		d.opts = *opts
	}
	if err := d.opts.normalize(t); err != nil {
		return nil, err
	}
	d.log = d.opts.Logger.With("url", rawURL)
	d.blockSize = d.opts.BlockSize
	if d.opts.Size > 0 {
		d.total = d.opts.Size
	}
	if st := d.opts.Resume; st != nil {
		if err := d.restore(st); err != nil {
			return nil, err
		}
		r, _ := dst.(io.ReaderAt) // a Stream is not: what it had past the gap is asked for again
		d.takeBackPending(r)
		if err := d.settlePending(nil); err != nil {
			return nil, err
		}
	}
	if d.opts.startSuspended {
		d.phase, d.offSince = Suspended, time.Now()
	}
	return d, nil
}

// Transport returns the physical transport the download runs over: UDP for
// coap and coaps, TCP for the others.
func (d *Download) Transport() Transport { return d.target.scheme.transport }

// URL returns the URL being downloaded.
func (d *Download) URL() string { return d.target.String() }

// Path returns the file a ToFile download writes, after symbolic links;
// "" for other downloads.
func (d *Download) Path() string {
	if d.file == nil {
		return ""
	}
	return d.file.path
}

// Done is closed when the download has ended, and a file download's files
// are settled (renamed into place, or kept for a later run); Err then says
// how.
func (d *Download) Done() <-chan struct{} { return d.done }

// Wait waits for the download to end and returns its error: nil when the
// body is complete and verified (and a file renamed into place).
func (d *Download) Wait() error {
	<-d.done
	return d.err
}

// Err returns the download's error once it has ended, nil before.
func (d *Download) Err() error {
	select {
	case <-d.done:
		return d.err
	default:
		return nil
	}
}

// Phase returns where the download is in its life.
func (d *Download) Phase() Phase {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.phase
}

// Written returns the bytes written so far.
func (d *Download) Written() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.written
}

// Sum returns the SHA-256 of the body once the download has succeeded: for
// a file, that of the file as it is on disk, read back after it was synced
// (on Linux the cached pages are dropped first, so it is read from the
// disk). Before that it is the digest of the bytes written so far.
func (d *Download) Sum() []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.sum != nil {
		return append([]byte(nil), d.sum...)
	}
	return d.hash.Sum(nil)
}

// Suspend takes the download offline: the exchange in flight is abandoned
// (blocks already written stay written), a wait for the next attempt ends,
// the socket is shut down, keeping its association, and the give-up clock
// stops. A socket without Shutdown cannot be suspended:
// sock.ErrNotSupported, and the download goes on.
func (d *Download) Suspend() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch d.phase {
	case Ended:
		return ErrDone
	case Suspended:
		return nil
	}
	if d.s != nil {
		if _, ok := sock.As[sock.Shutdowner](d.s); !ok {
			return fmt.Errorf("download: suspend: %w", sock.ErrNotSupported)
		}
	}
	d.setPhaseLocked(Suspended)
	now := time.Now()
	d.offSince = now
	d.dog.offline(now)
	if d.cancelEx != nil {
		d.cancelEx()
	}
	d.wakeLocked()
	if d.s != nil {
		if err := sock.Shutdown(d.s); err != nil && !errors.Is(err, net.ErrClosed) {
			d.log.Debug("download: shutdown", "err", err)
		}
	}
	d.log.Info("download suspended", "written", d.written)
	return nil
}

// Resume brings a suspended download back online: it reconnects at once to
// the same hostname and port and asks for the first byte not yet written.
func (d *Download) Resume() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch d.phase {
	case Ended:
		return ErrDone
	case Suspended:
	default:
		return nil
	}
	d.setPhaseLocked(Attempting)
	now := time.Now()
	d.prog.Offline += now.Sub(d.offSince)
	d.dog.online(now)
	d.wakeLocked()
	d.log.Info("download resumed", "written", d.written)
	return nil
}

// Reconnect drops the connection and reconnects at once, as after an IP
// change: the exchange in flight is abandoned, or the wait for the next
// attempt after a failure cut short. A suspended download stays suspended.
func (d *Download) Reconnect() {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch d.phase {
	case Attempting:
		d.reconnect = true // even if the attempt has just failed on its own
		if d.cancelEx != nil {
			d.cancelEx()
		}
	case BackingOff:
		d.setPhaseLocked(Attempting)
		d.wakeLocked()
	}
}

// wakeLocked ends the engine's current wait. d.mu is held.
func (d *Download) wakeLocked() {
	close(d.wake)
	d.wake = make(chan struct{})
}

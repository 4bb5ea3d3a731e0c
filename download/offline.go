package download

import (
	"context"
	"errors"
	"io"
	"sync"
)

// Controller is offline mode: it owns downloads and suspends or resumes all
// of them on a physical transport when the device goes offline on it or
// comes back (UDP: coap and coaps; TCP: coap+tcp, coaps+tcp, http and
// https). A download on one transport is not touched by offline mode on
// the other, and a download started while its transport is offline waits.
// The zero value is ready to use; its methods are safe for concurrent use.
type Controller struct {
	mu        sync.Mutex
	offline   map[Transport]bool
	downloads map[*Download]struct{}
}

// Start begins a download as Start does, owned by the controller: it starts
// suspended if its transport is offline, and leaves the controller when it
// ends.
func (c *Controller) Start(ctx context.Context, rawURL string, dst io.WriterAt, opts *Options) (*Download, error) {
	return c.start(rawURL, opts, func(o *Options) (*Download, error) { return Start(ctx, rawURL, dst, o) })
}

// ToFile begins a crash-safe file download as ToFile does, owned by the
// controller as Start's are: a device's firmware download survives both
// offline periods and process restarts.
func (c *Controller) ToFile(ctx context.Context, rawURL, path string, opts *Options) (*Download, error) {
	return c.start(rawURL, opts, func(o *Options) (*Download, error) { return ToFile(ctx, rawURL, path, o) })
}

// start runs begin with the controller's bookkeeping in the options, under
// the lock, so an EnterOffline cannot slip between the download's creation
// and its registration.
func (c *Controller) start(rawURL string, opts *Options, begin func(*Options) (*Download, error)) (*Download, error) {
	t, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	o := Options{}
	if opts != nil {
		o = *opts
	}
	o.onEnd = c.forget
	c.mu.Lock()
	defer c.mu.Unlock()
	o.startSuspended = c.offline[t.scheme.transport]
	d, err := begin(&o)
	if err != nil {
		return nil, err
	}
	if c.downloads == nil {
		c.downloads = make(map[*Download]struct{})
	}
	c.downloads[d] = struct{}{}
	return d, nil
}

func (c *Controller) forget(d *Download) {
	c.mu.Lock()
	delete(c.downloads, d)
	c.mu.Unlock()
}

// EnterOffline suspends every download on the given transports (both when
// none is given), and makes new ones on them wait. It returns the errors of
// downloads that could not be suspended, joined.
func (c *Controller) EnterOffline(ts ...Transport) error {
	return c.set(true, ts)
}

// ExitOffline resumes the downloads on the given transports (both when none
// is given): each reconnects at once, even one that was waiting to retry.
func (c *Controller) ExitOffline(ts ...Transport) error {
	return c.set(false, ts)
}

func (c *Controller) set(offline bool, ts []Transport) error {
	if len(ts) == 0 {
		ts = []Transport{UDP, TCP}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.offline == nil {
		c.offline = make(map[Transport]bool)
	}
	var errs []error
	for _, t := range ts {
		c.offline[t] = offline
		for d := range c.downloads {
			if d.Transport() != t {
				continue
			}
			var err error
			if offline {
				err = d.Suspend()
			} else {
				err = d.Resume()
			}
			if err != nil && !errors.Is(err, ErrDone) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// IsOffline reports whether transport t is offline.
func (c *Controller) IsOffline(t Transport) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.offline[t]
}

// Downloads returns the downloads the controller owns now.
func (c *Controller) Downloads() []*Download {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*Download, 0, len(c.downloads))
	for d := range c.downloads {
		out = append(out, d)
	}
	return out
}

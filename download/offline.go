package download

import (
	"context"
	"io"
	"sync"
)

// Controller is offline mode: it owns downloads and suspends or resumes all
// of them on a transport when the device goes offline on it or comes back.
// A download on one transport is not touched by offline mode on another, and
// a download started while its transport is offline waits. The zero value
// is ready to use; its methods are safe for concurrent use.
type Controller struct {
	mu        sync.Mutex
	offline   map[Transport]bool
	downloads map[*Download]struct{}
}

// Start begins a download as Start does, owned by the controller: it starts
// suspended if its transport is offline, and leaves the controller when it
// ends.
func (c *Controller) Start(ctx context.Context, rawURL string, dst io.WriterAt, opts *Options) (*Download, error) {
	o := Options{}
	if opts != nil {
		o = *opts
	}
	_, t, _, _, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	o.startSuspended = c.offline[t]
	o.onEnd = c.forget
	d, err := newDownload(rawURL, dst, &o)
	if err != nil {
		return nil, err
	}
	if c.downloads == nil {
		c.downloads = make(map[*Download]struct{})
	}
	c.downloads[d] = struct{}{}
	go d.run(ctx)
	return d, nil
}

func (c *Controller) forget(d *Download) {
	c.mu.Lock()
	delete(c.downloads, d)
	c.mu.Unlock()
}

// all is what an empty transport list means.
var all = []Transport{UDP, TCP, TLS, DTLS, HTTP, HTTPS}

// EnterOffline suspends every download on the given transports (all of
// them when none is given), and makes new ones on them wait. It returns the
// first error of a download that could not be suspended.
func (c *Controller) EnterOffline(ts ...Transport) error {
	return c.set(true, ts)
}

// ExitOffline resumes the downloads on the given transports (all when none
// is given).
func (c *Controller) ExitOffline(ts ...Transport) error {
	return c.set(false, ts)
}

func (c *Controller) set(offline bool, ts []Transport) error {
	if len(ts) == 0 {
		ts = all
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.offline == nil {
		c.offline = make(map[Transport]bool)
	}
	var first error
	for _, t := range ts {
		c.offline[t] = offline
		for d := range c.downloads {
			if d.transport != t {
				continue
			}
			var err error
			if offline {
				err = d.Suspend()
			} else {
				err = d.Resume()
			}
			if err != nil && err != ErrDone && first == nil {
				first = err
			}
		}
	}
	return first
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

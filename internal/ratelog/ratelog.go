// Package ratelog keeps a flood of repeated log records from drowning a
// log: a slog.Handler that passes on at most a few similar records per
// window and then says how many it held back.
//
// Records are similar when they have the same level and message (their
// attributes, a client's address say, may differ). Records at or above
// Options.Level (Warn by default) are limited: of the similar ones that
// arrive within a window (10 s by default, starting with the first), the
// first Options.Burst pass and the rest are counted. When the window has
// ended, one record reports them, at the same level:
//
//	level=WARN msg="1234 similar warnings suppressed in the last 10s" similar="fileserver: path refused"
//
// The report is written by the first record handled after the window
// (of any message), or by Flush; Run calls Flush once a window, so a
// flood that stops is still reported, and Close reports what is held
// back when the program ends. Records below the level (the
// access log, debug records) are never held back.
package ratelog

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Options configure a Handler; zero fields are the defaults.
type Options struct {
	// Window is how long similar records are counted together; 10 s by
	// default.
	Window time.Duration
	// Burst is how many similar records pass in each window; 3 by
	// default.
	Burst int
	// Level is the lowest level limited; Warn by default.
	Level slog.Leveler
	// Now is the clock, for tests; time.Now by default.
	Now func() time.Time
}

// maxKeys bounds the messages counted at once; past it, a new message
// passes unlimited until a window ends and frees room.
const maxKeys = 1024

// Handler is a slog.Handler that limits similar records (package doc).
// Handlers made by WithAttrs and WithGroup share its counts.
type Handler struct {
	next slog.Handler
	st   *state
}

type state struct {
	window time.Duration
	burst  int
	level  slog.Leveler
	now    func() time.Time

	mu   sync.Mutex
	keys map[key]*count
}

type key struct {
	level slog.Level
	msg   string
}

// count is one message's window.
type count struct {
	start      time.Time
	passed     int
	suppressed int
	next       slog.Handler // where the report goes: the handler of the first record held back
}

// New returns a Handler that passes records on to next.
func New(next slog.Handler, opts *Options) *Handler {
	st := &state{window: 10 * time.Second, burst: 3, level: slog.LevelWarn, now: time.Now, keys: make(map[key]*count)}
	if opts != nil {
		if opts.Window > 0 {
			st.window = opts.Window
		}
		if opts.Burst > 0 {
			st.burst = opts.Burst
		}
		if opts.Level != nil {
			st.level = opts.Level
		}
		if opts.Now != nil {
			st.now = opts.Now
		}
	}
	return &Handler{next: next, st: st}
}

// Enabled implements slog.Handler.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	return &Handler{next: h.next.WithAttrs(as), st: h.st}
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name), st: h.st}
}

// report is a record that says how many similar ones were held back.
type report struct {
	next slog.Handler
	r    slog.Record
}

// Handle implements slog.Handler.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	st := h.st
	now := st.now()
	st.mu.Lock()
	reports := st.due(now, false)
	pass := true
	if r.Level >= st.level.Level() {
		k := key{r.Level, r.Message}
		c := st.keys[k]
		switch {
		case c != nil:
			if c.passed < st.burst {
				c.passed++
			} else {
				if c.suppressed == 0 {
					c.next = h.next
				}
				c.suppressed++
				pass = false
			}
		case len(st.keys) < maxKeys:
			st.keys[k] = &count{start: now, passed: 1}
		}
	}
	st.mu.Unlock()
	// Written after the lock: a slow writer holds up only its caller.
	for _, rep := range reports {
		rep.next.Handle(ctx, rep.r)
	}
	if !pass {
		return nil
	}
	return h.next.Handle(ctx, r)
}

// due ends the windows that are over by now (all of them with all) and
// returns the reports of those that held records back. Called with st.mu
// held.
func (st *state) due(now time.Time, all bool) []report {
	var out []report
	for k, c := range st.keys {
		span := st.window
		if now.Sub(c.start) < st.window {
			if !all {
				continue
			}
			span = max(time.Second, now.Sub(c.start).Round(time.Second))
		}
		delete(st.keys, k)
		if c.suppressed == 0 {
			continue
		}
		r := slog.NewRecord(now, k.level, fmt.Sprintf("%d similar %s suppressed in the last %v", c.suppressed, noun(k.level), span), 0)
		r.AddAttrs(slog.String("similar", k.msg))
		out = append(out, report{c.next, r})
	}
	return out
}

func noun(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "errors"
	case l >= slog.LevelWarn:
		return "warnings"
	}
	return "records"
}

// Flush writes the reports of the windows that are over.
func (h *Handler) Flush(ctx context.Context) { h.flush(ctx, false) }

// Close writes the reports of every window, over or not: what was held
// back before the program ends.
func (h *Handler) Close() { h.flush(context.Background(), true) }

func (h *Handler) flush(ctx context.Context, all bool) {
	h.st.mu.Lock()
	reports := h.st.due(h.st.now(), all)
	h.st.mu.Unlock()
	for _, rep := range reports {
		rep.next.Handle(ctx, rep.r)
	}
}

// Run calls Flush once a window until ctx ends.
func (h *Handler) Run(ctx context.Context) {
	t := time.NewTicker(h.st.window)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			h.Flush(ctx)
		}
	}
}

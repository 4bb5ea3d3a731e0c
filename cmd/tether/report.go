package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/client"
	"github.com/tether-iot/tether/download"
	"github.com/tether-iot/tether/sock"
)

// jsonVersion is the version of get's --json stream; see jsonHelp.
const jsonVersion = 1

// console is where get speaks to people: stderr, with a progress bar on a
// terminal. Log records pass through it, so they print above the bar,
// never into it.
type console struct {
	mu  sync.Mutex
	w   io.Writer
	bar *progressbar.ProgressBar
}

// Write implements io.Writer for the logger.
func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bar != nil {
		c.bar.Clear()
	}
	n, err := c.w.Write(p)
	if c.bar != nil {
		c.bar.RenderBlank()
	}
	return n, err
}

// reporter shows a download's progress: a bar on a terminal, a line a
// second otherwise, JSON lines with --json, nothing with -q.
type reporter struct {
	con         *console
	stdout      io.Writer // the JSON stream, or the final line
	json        bool
	quiet       bool
	url         string
	file        string
	start       time.Time
	last        time.Time // the last progress line or event
	lastWritten int64     // the bytes it reported
	started     bool
	phase       download.Phase
}

func newReporter(stdout, stderr io.Writer, jsonOut, quiet bool, url, file string) *reporter {
	now := time.Now()
	r := &reporter{con: &console{w: stderr}, stdout: stdout, json: jsonOut, quiet: quiet, url: url, file: file,
		start: now, last: now, phase: download.Starting}
	if f, ok := stderr.(*os.File); ok && !jsonOut && !quiet && term.IsTerminal(int(f.Fd())) {
		r.con.bar = progressbar.NewOptions64(-1,
			progressbar.OptionSetWriter(stderr),
			progressbar.OptionSetDescription(file),
			progressbar.OptionShowBytes(true),
			progressbar.OptionUseIECUnits(true),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	return r
}

// event writes one JSON object of the stream: "v", "event", and fields.
func (r *reporter) event(kind string, fields map[string]any) {
	if !r.json {
		return
	}
	fields["v"], fields["event"] = jsonVersion, kind
	b, _ := json.Marshal(fields)
	r.con.mu.Lock()
	fmt.Fprintf(r.stdout, "%s\n", b)
	r.con.mu.Unlock()
}

// say prints a line for people, unless -q.
func (r *reporter) say(format string, args ...any) {
	if !r.quiet && !r.json {
		fmt.Fprintf(r.con, format+"\n", args...)
	}
}

// progress is the download's Progress callback.
func (r *reporter) progress(p download.Progress) {
	if p.Phase == download.Starting || p.Phase == download.Ended {
		return // checking what an earlier run left, or over
	}
	if !r.started {
		r.started = true // what an earlier run left is verified by now
		r.event("start", map[string]any{"url": r.url, "file": r.file, "resumed_from": p.Written})
		if p.Written > 0 {
			r.say("resuming %s at %s", r.file, size(p.Written))
		}
	}
	if p.Phase != r.phase {
		r.changed(r.phase, p)
		r.phase = p.Phase
	}
	if r.con.bar != nil {
		r.con.mu.Lock()
		if p.Total > 0 && r.con.bar.GetMax64() != p.Total {
			r.con.bar.ChangeMax64(p.Total)
		}
		r.con.bar.Set64(p.Written)
		r.con.mu.Unlock()
		return
	}
	now := time.Now()
	if now.Sub(r.last) < time.Second || p.Phase != download.Attempting || p.Written == r.lastWritten {
		return // at most a line a second, and only for bytes that arrived
	}
	r.last, r.lastWritten = now, p.Written
	r.event("progress", map[string]any{"written": p.Written, "total": p.Total, "rate": int64(p.Rate)})
	r.say("%s: %s of %s, %s/s", r.file, size(p.Written), size(p.Total), size(int64(p.Rate)))
}

// changed reports a change of phase: a wait before a retry, an offline
// period.
func (r *reporter) changed(from download.Phase, p download.Progress) {
	desc := r.file
	switch {
	case p.Phase == download.BackingOff:
		in := time.Until(p.NextAttempt).Round(time.Second)
		reason := "no answer"
		if p.LastError != nil {
			reason = p.LastError.Error()
		}
		r.event("retry", map[string]any{"error": reason, "next": p.NextAttempt.UTC().Format(time.RFC3339Nano), "in": in.Seconds()})
		desc = fmt.Sprintf("retrying in %v: %s", in, briefly(p.LastError))
	case p.Phase == download.Suspended:
		r.event("suspend", map[string]any{"written": p.Written})
		desc = "offline"
	case from == download.Suspended:
		r.event("resume", map[string]any{"written": p.Written})
	}
	if r.con.bar != nil {
		r.con.mu.Lock()
		r.con.bar.Describe(desc)
		r.con.mu.Unlock()
	}
}

// finish reports the end: the SHA-256 and size of a complete file, or the
// error (with the exit status) of a failed one.
func (r *reporter) finish(d *download.Download, err error, code int, kept string) {
	if r.con.bar != nil {
		r.con.mu.Lock()
		r.con.bar.Finish()
		r.con.mu.Unlock()
	}
	p := d.Progress()
	file := r.file
	if d.Path() != "" {
		file = d.Path() // after a symbolic link
	}
	if err != nil {
		r.event("error", map[string]any{"error": err.Error(), "exit": code, "url": r.url, "file": file,
			"written": p.Written, "kept": kept != ""})
		return
	}
	sum := hex.EncodeToString(d.Sum())
	r.event("done", map[string]any{"url": r.url, "file": file, "sha256": sum, "size": p.Written,
		"seconds": time.Since(r.start).Seconds(), "retries": p.Retries})
	if !r.quiet && !r.json {
		fmt.Fprintf(r.stdout, "%s: %s, sha256 %s\n", file, size(p.Written), sum)
	}
}

// briefly names a failure in a few words, for the progress bar.
func briefly(err error) string {
	var (
		re  *client.ResponseError
		dns *net.DNSError
	)
	switch {
	case err == nil, sock.IsTimeout(err):
		return "no answer"
	case errors.Is(err, sock.ErrConnRefused):
		return "connection refused"
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return "network unreachable"
	case errors.As(err, &dns), errors.Is(err, sock.ErrAddrNotAvail):
		return "cannot resolve the host"
	case errors.As(err, &re):
		return coap.CodeString(re.Code)
	}
	return shorten(err.Error(), 50)
}

// shorten cuts s to at most n runes.
func shorten(s string, n int) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// size formats a byte count for people, in IEC units.
func size(n int64) string {
	switch {
	case n < 0:
		return "?"
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
}

// jsonHelp is `tether help json`, and the README's schema.
const jsonHelp = `tether get --json writes one JSON object per line to stdout, nothing
else; people's messages stay on stderr. Every object has "v" (1, the
version of this stream) and "event", one of:

  start     the download begins (after checking what an earlier run kept)
            url, file, resumed_from (bytes kept from an earlier run)
  progress  at most once a second while blocks arrive
            written, total (-1 while unknown), rate (bytes per second)
  retry     an attempt failed on something transient; the next one is due
            error (why), next (RFC 3339 time), in (seconds)
  suspend   offline (SIGUSR1): written
  resume    back online (SIGUSR2): written
  done      the file is complete, verified and in place
            url, file, sha256 (hex, of the file on disk), size, seconds, retries
  error     the download ended without the file
            error (the message), exit (the exit status), url, file,
            written, kept (true when a later run can continue)

Fields may be added in version 1; a change that breaks a reader raises "v".`

func jsonTopic() *cobra.Command { return newTopic("json", "The events of tether get --json", jsonHelp) }

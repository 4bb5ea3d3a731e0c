package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/url"
	"os"
	"os/signal"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/client"
	"github.com/tether-iot/tether/download"
	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/dtlssock"
)

// getFlags are get's options.
type getFlags struct {
	out             string
	blockSize       int
	window          int
	sha256          string
	json            bool
	restart         bool
	unverified      bool
	giveUp, maxTime time.Duration
	connectTimeout  time.Duration
	location        bool
	maxRedirs       int
	maxSize         string
	ackTimeout      time.Duration
	qblock          qblockFlags
	creds           creds
	verbosity
}

func newGet(stdout, stderr io.Writer) *cobra.Command {
	var f getFlags
	cmd := &cobra.Command{
		Use:   "get URL",
		Short: "Download a file, resumably",
		Long: `get downloads URL (coap, coaps, coap+tcp, coaps+tcp, http or https) into
FILE.part beside FILE, with its state in FILE.part.state, and renames it
to FILE once it is complete and its SHA-256, read back from the disk, is
right. Ctrl-C or a kill keeps both; the same command again checks what
was kept and continues. Transient failures are retried until --give-up
or --max-time; SIGUSR1 takes the download offline, SIGUSR2 brings it
back. Progress goes to stderr (a bar on a terminal); stdout carries the
final line, the body with -o -, or the --json stream.`,
		Example: `  tether get coap://fw.example/image.bin
  tether get coaps://fw.example/image.bin -o fw.bin --psk-file device.psk --sha256 HEX
  tether get https://fw.example/image.bin --give-up 10m --json
  tether get -L https://github.com/OWNER/REPO/releases/download/v1/fw.bin
  tether get coap://fw.example/image.bin -o - | sha256sum
  tether get coap://fw.example/image.bin --qblock --give-up 1h
  tether get coaps://fw.example/image.bin --psk-file device.psk --no-qblock`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{fmt.Errorf("get takes one URL, not %d arguments", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runGet(cmd.Context(), &f, args[0], stdout, stderr)
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&f.out, "output", "o", "", "write to `FILE` (default: the last segment of the URL's path); - writes to standard output, with no resume")
	fs.IntVar(&f.blockSize, "block-size", 1024, "CoAP block size to ask for, 16..1024 (the server may use a smaller one)")
	fs.IntVar(&f.window, "window", 0, "keep up to `N` CoAP block requests outstanding over UDP (1..64; off by default: RFC 7252's NSTART is 1, so only for a server you know can take it)")
	fs.StringVar(&f.sha256, "sha256", "", "the file's expected SHA-256, in hex: anything else fails (exit 10)")
	fs.BoolVar(&f.json, "json", false, "write progress as JSON lines to stdout (tether help json)")
	fs.BoolVar(&f.restart, "restart", false, "start over when the file changed on the server (or cannot be shown unchanged), or when -o holds another URL's partial download, instead of failing")
	fs.BoolVar(&f.unverified, "allow-unverified", false, "resume even when the server sends no ETag to verify it by")
	fs.DurationVar(&f.giveUp, "give-up", 0, "give up after this long online without progress, whatever is in flight (0: never; time offline does not count)")
	fs.BoolVarP(&f.location, "location", "L", false, "follow HTTP redirects (301, 302, 303, 307, 308), at most --max-redirs in a row (exit 47 past it); never from https to http or to another scheme (exit 1); every resume starts again from URL and follows them anew, and continues only from the same version of the file")
	fs.IntVar(&f.maxRedirs, "max-redirs", defaultMaxRedirs, "with -L, follow at most `N` redirects in a row")
	fs.DurationVar(&f.connectTimeout, "connect-timeout", sock.DefaultConnectTimeout, "how long a connect may take, its TLS or DTLS handshake included (and for coap+tcp the server's CSM); one that takes longer fails the attempt, which is retried like any transient failure, so it ends the run only through --give-up or --max-time (exit 28)")
	fs.DurationVar(&f.maxTime, "max-time", 0, "stop after this long in all, online or not (0: no limit); what was written is kept")
	fs.StringVar(&f.maxSize, "max-size", "512M", "refuse a body larger than `SIZE` bytes (suffixes K, M, G: powers of 1024)")
	fs.DurationVar(&f.ackTimeout, "ack-timeout", coap.DefaultParams.AckTimeout, "CoAP ACK_TIMEOUT: the first retransmission timeout's lower bound")
	f.qblock.add(fs, false)
	f.creds.add(fs, false)
	f.verbosity.add(fs, "-v connects, handshakes (full or resumed), suspends and retries; -vv also every message on the wire")
	return cmd
}

// runGet is tether get.
func runGet(ctx context.Context, f *getFlags, rawURL string, stdout, stderr io.Writer) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("%w: %w", download.ErrBadURL, err)
	}
	file := f.out
	if file == "" {
		file = path.Base(u.Path)
		if file == "" || file == "/" || file == "." {
			return usageError{fmt.Errorf("%s has no file name in its path: give one with -o", rawURL)}
		}
	}
	if f.giveUp < 0 || f.maxTime < 0 {
		return usageError{errors.New("--give-up and --max-time take a positive duration, e.g. 10m")}
	}
	if f.maxRedirs < 1 {
		return usageError{fmt.Errorf("--max-redirs %d: want 1 or more (without -L no redirect is followed)", f.maxRedirs)}
	}
	if f.connectTimeout <= 0 {
		return usageError{errors.New("--connect-timeout takes a positive duration, e.g. 30s")}
	}
	opts := &download.Options{BlockSize: f.blockSize, Window: f.window, AllowUnverified: f.unverified, GiveUpAfter: f.giveUp,
		ConnectTimeout: f.connectTimeout}
	if f.location {
		opts.FollowRedirects = f.maxRedirs
	}
	if err := f.qblock.client(opts); err != nil {
		return err
	}
	if opts.MaxSize, err = parseSize(f.maxSize); err != nil {
		return usageError{fmt.Errorf("--max-size: %w", err)}
	}
	if f.ackTimeout != coap.DefaultParams.AckTimeout {
		opts.Params = coap.DefaultParams
		opts.Params.AckTimeout = f.ackTimeout
	}
	if f.restart {
		opts.OnChange = download.Restart
	}
	if f.sha256 != "" {
		b, err := hex.DecodeString(f.sha256)
		if err != nil || len(b) != 32 {
			return usageError{fmt.Errorf("--sha256 %q is not 64 hex digits", f.sha256)}
		}
		opts.SHA256 = b
	}
	if err := f.credentials(u.Scheme, opts); err != nil {
		return err
	}
	if f.maxTime > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, f.maxTime, fmt.Errorf("%w (%v)", errMaxTime, f.maxTime))
		defer cancel()
	}

	toStdout := file == "-"
	if toStdout {
		file = "standard output"
	}
	say := stdout
	if toStdout || isDevice(file) {
		say = stderr // the body goes to stdout or a device; what is said of it, to stderr
	}
	rep := newReporter(say, stderr, f.json, f.quiet, rawURL, file)
	opts.Progress = rep.progress
	opts.Logger = logger(rep.con, f.verbosity, f.json)
	var d *download.Download
	if toStdout {
		d, err = download.Start(ctx, rawURL, download.Stream(stdout), opts)
	} else {
		d, err = download.ToFile(ctx, rawURL, file, opts)
	}
	if err != nil {
		code := exitCode(ctx, err)
		rep.event("error", map[string]any{"error": err.Error(), "exit": code, "url": rawURL, "file": file, "written": 0, "kept": false})
		return err
	}
	stopSignals := offlineSignals(d)
	err = d.Wait()
	stopSignals()
	kept := keptLine(d, err, toStdout)
	rep.finish(d, err, exitCode(ctx, err), kept)
	if err != nil {
		hint := ""
		var he *download.HTTPError
		if errors.As(err, &he) && he.Location != "" && !f.location {
			hint = " (-L follows redirects)"
		}
		return fmt.Errorf("%s: %w%s%s", rawURL, err, hint, kept)
	}
	return nil
}

// defaultMaxRedirs is how many redirects in a row get -L follows: Go's
// own default, and Firefox's and Chrome's 20 halved; curl's is 50. A
// firmware URL is seldom more than one redirect (a CDN, a signed URL)
// from its file.
const defaultMaxRedirs = 10

// credentials sets the (D)TLS configuration of a download from the flags.
func (f *getFlags) credentials(scheme string, opts *download.Options) error {
	psk, err := f.creds.clientPSK()
	if err != nil {
		return err
	}
	if psk != nil && scheme != "coaps" {
		return usageError{errors.New("pre-shared keys are for coaps:// (DTLS); Go's TLS has no PSK")}
	}
	if opts.TLS, err = f.creds.clientTLS(); err != nil {
		return err
	}
	if scheme != "coaps" {
		return nil
	}
	switch {
	case psk != nil:
		key := psk.key
		opts.DTLS = &dtlssock.Config{ // no CipherSuites: dtlssock offers its PSK ones, CCM_8 first
			PSK:         func([]byte) ([]byte, error) { return key, nil },
			PSKIdentity: []byte(psk.id),
		}
	case opts.TLS != nil:
		opts.DTLS = &dtlssock.Config{RootCAs: opts.TLS.RootCAs, Certificates: opts.TLS.Certificates}
	default:
		return usageError{errors.New("coaps:// needs credentials: " + needsCoapsClient)}
	}
	return nil
}

// logger is the download's logger for the verbosity asked: warnings (the
// retries) by default, -v what happens, -vv the wire, -q only errors; with
// --json nothing but errors, since the stream says the rest.
func logger(w io.Writer, v verbosity, jsonOut bool) *slog.Logger {
	level := slog.LevelWarn
	switch {
	case v.quiet || jsonOut:
		level = slog.LevelError
	case v.verbose >= 2:
		level = client.LevelTrace
	case v.verbose == 1:
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.LevelKey && a.Value.Any() == client.LevelTrace {
			a.Value = slog.StringValue("TRACE")
		}
		return a
	}}))
}

// offlineSignals makes sigOffline (SIGUSR1) take the download offline and
// sigOnline (SIGUSR2) bring it back, as a modem manager's script would; it
// returns the undo. Where there are no such signals it does nothing.
func offlineSignals(d *download.Download) func() {
	if sigOffline == nil {
		return func() {}
	}
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, sigOffline, sigOnline)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-ch:
				if s == sigOffline {
					d.Suspend()
				} else {
					d.Resume()
				}
			case <-done:
				return
			}
		}
	}()
	return func() { signal.Stop(ch); close(done) }
}

// keptLine says what a failed download kept for a later run, "" if
// nothing.
func keptLine(d *download.Download, err error, toStdout bool) string {
	if err == nil || toStdout || d.Path() == "" || isDevice(d.Path()) {
		return ""
	}
	if _, serr := os.Stat(d.Path() + download.StateSuffix); serr != nil {
		return ""
	}
	p := d.Progress()
	return fmt.Sprintf("; %s%s kept: %s of %s; run the same command to resume", d.Path(), download.PartSuffix, size(p.Written), size(p.Total))
}

// isDevice reports whether path is written in place (a device or a FIFO),
// with no .part to resume from.
func isDevice(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.Mode().IsRegular()
}

// parseSize reads a byte count with an optional K, M or G suffix (powers
// of 1024).
func parseSize(arg string) (int64, error) {
	s, mult := arg, int64(1)
	if s == "" {
		return 0, errors.New("empty")
	}
	switch strings.ToUpper(s[len(s)-1:]) {
	case "K":
		mult = 1 << 10
	case "M":
		mult = 1 << 20
	case "G":
		mult = 1 << 30
	}
	if mult > 1 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is not a size in bytes up to 8 EiB (a positive number, optionally with K, M or G)", arg)
	}
	return n * mult, nil
}

package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/download"
)

func get(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("get", flag.ContinueOnError)
	out := fs.String("o", "", "write to `FILE`, resumable (default: the last segment of the URL's path); - writes to standard output, with no resume")
	blockSize := fs.Int("block-size", 1024, "CoAP block size to ask for, 16..1024")
	sum := fs.String("sha256", "", "expected SHA-256 of the file, in hex")
	jsonOut := fs.Bool("json", false, "report progress as JSON lines, for scripts")
	restart := fs.Bool("restart", false, "start over when the file changed on the server (or cannot be shown unchanged), or when -o holds another URL's partial download, instead of failing")
	unverified := fs.Bool("allow-unverified", false, "resume even when the server sends no ETag to verify it by")
	caFile := fs.String("ca", "", "trust the CAs in PEM `FILE` for coaps, coaps+tcp and https (default: the system's)")
	certFile := fs.String("cert", "", "a client certificate, PEM `FILE`")
	keyFile := fs.String("key", "", "the client certificate's key, PEM `FILE`")
	pskID := fs.String("psk-id", "", "the pre-shared key's identity, for coaps://")
	pskText := fs.String("psk", "", "the pre-shared key, as text")
	pskHex := fs.String("psk-hex", "", "the pre-shared key, in hex")
	giveUp := fs.Duration("give-up", 0, "give up after this long online without progress, whatever is in flight (default: never; Ctrl-C keeps the .part)")
	maxTime := fs.Duration("max-time", 0, "stop after this long in all, online or not (default: no limit; the .part is kept)")
	maxSize := fs.String("max-size", "", "refuse a body larger than `SIZE` bytes (suffixes K, M, G: powers of 1024; default 512M)")
	ackTimeout := fs.Duration("ack-timeout", coap.DefaultParams.AckTimeout, "CoAP ACK_TIMEOUT: the first retransmission timeout's lower bound")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{errors.New("get takes one URL")}
	}
	rawURL := pos[0]
	u, err := url.Parse(rawURL)
	if err != nil {
		return usageError{err}
	}
	file := *out
	if file == "" {
		file = path.Base(u.Path)
		if file == "" || file == "/" || file == "." {
			return usageError{errors.New("the URL has no file name; give one with -o")}
		}
	}
	opts := &download.Options{BlockSize: *blockSize, AllowUnverified: *unverified, GiveUpAfter: *giveUp}
	if !*jsonOut {
		// Retries and suspensions, so a wait is never silent.
		opts.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if *ackTimeout != coap.DefaultParams.AckTimeout {
		opts.Params = coap.DefaultParams
		opts.Params.AckTimeout = *ackTimeout
	}
	if *restart {
		opts.OnChange = download.Restart
	}
	if *sum != "" {
		b, err := hex.DecodeString(*sum)
		if err != nil || len(b) != 32 {
			return usageError{fmt.Errorf("--sha256 %q is not 64 hex digits", *sum)}
		}
		opts.SHA256 = b
	}
	if *maxSize != "" {
		if opts.MaxSize, err = parseSize(*maxSize); err != nil {
			return usageError{fmt.Errorf("--max-size: %w", err)}
		}
	}
	if *giveUp < 0 || *maxTime < 0 {
		return usageError{errors.New("--give-up and --max-time take a positive duration")}
	}
	key, err := pskFlags(*pskID, *pskText, *pskHex)
	if err != nil {
		return err
	}
	if key != nil && u.Scheme != "coaps" {
		return usageError{errors.New("pre-shared keys are for coaps:// (DTLS); Go's TLS has no PSK")}
	}
	if opts.TLS, err = clientTLS(*caFile, *certFile, *keyFile); err != nil {
		return err
	}
	if u.Scheme == "coaps" {
		switch {
		case key != nil:
			opts.DTLS = &dtls.Config{
				PSK:             func([]byte) ([]byte, error) { return key, nil },
				PSKIdentityHint: []byte(*pskID),
				CipherSuites:    pskSuites,
			}
		case opts.TLS != nil:
			opts.DTLS = &dtls.Config{RootCAs: opts.TLS.RootCAs, Certificates: opts.TLS.Certificates}
		default:
			return usageError{errors.New("coaps:// needs credentials: --psk-id with --psk or --psk-hex, or --ca (and --cert, --key)")}
		}
	}
	if *maxTime > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, *maxTime, fmt.Errorf("--max-time %v reached", *maxTime))
		defer cancel()
	}
	toStdout := file == "-"
	if toStdout {
		file = "standard output"
	}
	rep := newReporter(stdout, stderr, *jsonOut, file)
	opts.Progress = rep.progress
	var d *download.Download
	if toStdout || isDevice(file) {
		rep.stdout = stderr // the body goes to stdout or a device; what is said of it, to stderr
	}
	if toStdout {
		d, err = download.Start(ctx, rawURL, download.Stream(stdout), opts)
	} else {
		d, err = download.ToFile(ctx, rawURL, file, opts)
	}
	if err != nil {
		return err
	}
	err = d.Wait()
	rep.finish(d, err)
	if err != nil {
		if ctx.Err() != nil && !toStdout && d.Written() > 0 && d.Path() != "" && !isDevice(d.Path()) {
			// Interrupted (Ctrl-C, --max-time): what was written is kept.
			return fmt.Errorf("%w; %s%s kept: run the same command to resume", err, d.Path(), download.PartSuffix)
		}
		return err
	}
	return nil
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

// reporter shows a download's progress: a bar on a terminal, a plain line
// a second otherwise, JSON lines with --json.
type reporter struct {
	stdout, stderr io.Writer
	json           bool
	file           string
	bar            *progressbar.ProgressBar
	last           time.Time
	start          time.Time
	started        bool
}

func newReporter(stdout, stderr io.Writer, jsonOut bool, file string) *reporter {
	now := time.Now()
	r := &reporter{stdout: stdout, stderr: stderr, json: jsonOut, file: file, start: now, last: now}
	if f, ok := stderr.(*os.File); ok && !jsonOut && term.IsTerminal(int(f.Fd())) {
		r.bar = progressbar.NewOptions64(-1,
			progressbar.OptionSetWriter(stderr),
			progressbar.OptionSetDescription(file),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	return r
}

func (r *reporter) event(kind string, fields map[string]any) {
	if r.json {
		fields["event"] = kind
		b, _ := json.Marshal(fields)
		fmt.Fprintf(r.stdout, "%s\n", b)
		return
	}
	if kind == "resume" {
		fmt.Fprintf(r.stderr, "resuming %s at %d bytes\n", r.file, fields["written"])
	}
}

func (r *reporter) progress(p download.Progress) {
	if p.Phase == download.Starting || p.Phase == download.Ended {
		return // checking what an earlier run left, or over: nothing to show
	}
	if !r.started {
		r.started = true // what an earlier run left is verified by now
		if p.Written > 0 {
			r.event("resume", map[string]any{"written": p.Written})
		}
	}
	if r.bar != nil {
		if p.Total > 0 && r.bar.GetMax64() != p.Total {
			r.bar.ChangeMax64(p.Total)
		}
		r.bar.Set64(p.Written)
		return
	}
	now := time.Now()
	if now.Sub(r.last) < time.Second {
		return
	}
	r.last = now
	if r.json {
		r.event("progress", map[string]any{"written": p.Written, "total": p.Total, "rate": int64(p.Rate)})
		return
	}
	fmt.Fprintf(r.stderr, "%s: %s of %s, %s/s\n", r.file, size(p.Written), size(p.Total), size(int64(p.Rate)))
}

func (r *reporter) finish(d *download.Download, err error) {
	if r.bar != nil {
		r.bar.Finish()
	}
	p := d.Progress()
	if r.json {
		f := map[string]any{"written": p.Written, "total": p.Total, "retries": p.Retries, "seconds": time.Since(r.start).Seconds()}
		if err != nil {
			f["error"] = err.Error()
			r.event("error", f)
			return
		}
		f["sha256"] = hex.EncodeToString(d.Sum())
		f["file"] = r.file
		if d.Path() != "" {
			f["file"] = d.Path()
		}
		r.event("done", f)
		return
	}
	if err == nil {
		name := r.file
		if d.Path() != "" {
			name = d.Path()
		}
		fmt.Fprintf(r.stdout, "%s: %s, sha256 %x\n", name, size(p.Written), d.Sum())
	}
}

// size formats a byte count for people.
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

// clientTLS builds the TLS configuration of a coaps+tcp download from the
// flags; nil when none is given.
func clientTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	if caFile == "" && certFile == "" && keyFile == "" {
		return nil, nil
	}
	cfg := &tls.Config{}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca %s: no PEM certificate in it", caFile)
		}
	}
	if certFile != "" || keyFile != "" {
		if certFile == "" || keyFile == "" {
			return nil, usageError{errors.New("--cert and --key go together")}
		}
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tether-iot/tether/coap/fileserver"
	"github.com/tether-iot/tether/internal/ratelog"
	"github.com/tether-iot/tether/sock/dtlssock"
)

// defaultListen is where serve listens when told nowhere: CoAP over UDP and
// over TCP on every address, the CoAP port. A variable only so that a test
// can say it without taking the machine's CoAP port.
var defaultListen = ":5683"

type serveFlags struct {
	udp, tcp, tls, dtls string
	maxConns            int
	idleTimeout         time.Duration
	frameTimeout        time.Duration
	qblock              qblockFlags
	creds               creds
	logFormat, logLevel string
	metrics             string
	drainTimeout        time.Duration
	verbosity
}

func newServe(stderr io.Writer) *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve DIR",
		Short: "Serve a directory's files over CoAP",
		Long: `serve serves the regular files under DIR over CoAP, block-wise, on the
transports and addresses given and nowhere else. With none given it serves
CoAP over UDP and over TCP on ` + defaultListen + ` (every address), and says so.
Each response carries an ETag derived from the file's content, so clients
can resume safely; a large file's first request has it hashed in the
background while every other client is served (that request waits a
second at most, then gets 5.03 with a Max-Age, which tether get waits out).
Over TCP and TLS, --max-conns bounds the connections, --idle-timeout
closes one idle for that long (a client keeps it with CoAP Pings) and
--frame-timeout one whose request stalls midway; an idle connection holds
no buffers.

It logs through slog (--log-format text or json, --log-level): one
"transfer" line per transfer that ended (client, PSK identity, path,
bytes, blocks, duration, transport, result) and one per error response;
warnings repeated faster than 3 in 10 s are counted, not repeated.
--metrics ADDR serves Prometheus metrics at /metrics and a health check
at /healthz. Ctrl-C or SIGTERM drains: no new connection, session or
transfer, the transfers in flight served until they end or
--drain-timeout passes, and a line says what it did.`,
		Example: `  tether serve ./firmware
  tether serve ./firmware --udp 127.0.0.1:5683
  tether serve ./firmware --dtls :5684 --psk-file devices.psk
  tether serve ./firmware --tls :5684 --cert server.pem --key server.key
  tether serve ./firmware --tcp :5683 --max-conns 20000 --idle-timeout 10m
  tether serve ./firmware --udp :5683 --log-format json --metrics 127.0.0.1:9464`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{errors.New("serve takes one directory")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runServe(cmd.Context(), &f, args[0], cmd.Flags().Changed, stderr)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.udp, "udp", "", "serve CoAP over UDP on `ADDR`")
	fs.StringVar(&f.tcp, "tcp", "", "serve CoAP over TCP on `ADDR`")
	fs.StringVar(&f.tls, "tls", "", "serve CoAP over TLS (coaps+tcp) on `ADDR`; needs "+needsTLSServer)
	fs.StringVar(&f.dtls, "dtls", "", "serve CoAP over DTLS (coaps) on `ADDR`; needs "+needsDTLSServer)
	fs.IntVar(&f.maxConns, "max-conns", fileserver.DefaultMaxConns, "TCP and TLS connections served at once; one past it is closed at once (-1: no limit)")
	fs.DurationVar(&f.idleTimeout, "idle-timeout", fileserver.DefaultIdleTimeout, "close a TCP or TLS connection that sent nothing, not even a CoAP Ping, for this long (-1s: never)")
	fs.DurationVar(&f.frameTimeout, "frame-timeout", fileserver.DefaultFrameTimeout, "close a TCP or TLS connection whose request, once begun, or TLS handshake, or whose reading of a response, takes longer (-1s: never)")
	fs.StringVar(&f.logFormat, "log-format", "text", "log records as `text` or json, one a line")
	fs.StringVar(&f.logLevel, "log-level", "", "log records of this `LEVEL` and above: debug, info (the default; it has the access log), warn, error")
	fs.StringVar(&f.metrics, "metrics", "", "serve Prometheus metrics at http://`ADDR`/metrics and a health check at /healthz")
	fs.DurationVar(&f.drainTimeout, "drain-timeout", 10*time.Second, "on Ctrl-C or SIGTERM, serve the transfers in flight for at most this long before closing")
	f.qblock.add(fs, true)
	f.creds.add(fs, true)
	f.verbosity.add(fs, "-v the server's debug records (--log-level debug)")
	return cmd
}

// runServe is tether serve; given reports whether a flag was set.
func runServe(ctx context.Context, f *serveFlags, dir string, given func(string) bool, stderr io.Writer) error {
	if err := f.chooseTransports(given, stderr); err != nil {
		return err
	}
	tlsCfg, dtlsCfg, err := f.security(ctx, stderr)
	if err != nil {
		return err
	}
	log, limiter, err := f.logger(stderr, given)
	if err != nil {
		return err
	}
	defer limiter.Close() // what it held back, said before the command ends
	logCtx, stopLog := context.WithCancel(context.Background())
	defer stopLog()
	go limiter.Run(logCtx)
	metrics := newServeMetrics()
	srv, err := f.newServer(dir, log, metrics, dtlsCfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	if err := f.serveMetrics(logCtx, log, metrics); err != nil {
		return err
	}
	errs := make(chan error, 4)
	if err := f.listen(srv, dir, log, metrics, tlsCfg, dtlsCfg, errs); err != nil {
		return err
	}
	select {
	case <-ctx.Done(): // Ctrl-C or SIGTERM is how a server stops: drain first
	case err := <-errs:
		return fmt.Errorf("serve: %w", err)
	}
	drain(srv, log, metrics, f.drainTimeout)
	return nil
}

// chooseTransports fills in the default transports when none was given
// (CoAP over UDP and TCP on defaultListen, and says so) and refuses a
// command line that leaves nothing to serve on.
func (f *serveFlags) chooseTransports(given func(string) bool, stderr io.Writer) error {
	if !given("udp") && !given("tcp") && !given("tls") && !given("dtls") {
		f.udp, f.tcp = defaultListen, defaultListen
		if !f.quiet {
			fmt.Fprintf(stderr, "tether serve: no transport given: CoAP over UDP and TCP on %s\n", defaultListen)
		}
	}
	if f.udp == "" && f.tcp == "" && f.tls == "" && f.dtls == "" {
		return usageError{errors.New("nothing to serve on: --udp, --tcp, --tls and --dtls are all empty")}
	}
	return nil
}

// security builds the TLS configuration of --tls and the DTLS one of
// --dtls, each nil when its transport is not served.
func (f *serveFlags) security(ctx context.Context, stderr io.Writer) (*tls.Config, *dtlssock.Config, error) {
	var tlsCfg *tls.Config
	if f.tls != "" {
		cert, err := f.creds.certificate()
		if err != nil {
			return nil, nil, err
		}
		if cert == nil {
			return nil, nil, usageError{errors.New("--tls needs " + needsTLSServer)}
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{*cert}}
	}
	if f.dtls == "" {
		return tlsCfg, nil, nil
	}
	dtlsCfg, err := f.serverDTLS(ctx, stderr)
	if err != nil {
		return nil, nil, err
	}
	return tlsCfg, dtlsCfg, nil
}

// newServer checks the server's limits and Q-Block2 parameters and builds
// the file server; a DTLS handshake that names an unknown PSK identity is
// counted in metrics.
func (f *serveFlags) newServer(dir string, log *slog.Logger, metrics *serveMetrics, dtlsCfg *dtlssock.Config) (*fileserver.Server, error) {
	if f.drainTimeout <= 0 {
		return nil, usageError{errors.New("--drain-timeout takes a positive duration")}
	}
	non, err := f.qblock.params()
	if err != nil {
		return nil, err
	}
	if f.maxConns == 0 || f.idleTimeout == 0 || f.frameTimeout == 0 {
		return nil, usageError{errors.New("--max-conns, --idle-timeout and --frame-timeout take a positive value, or a negative one for none")}
	}
	if dtlsCfg != nil && dtlsCfg.PSK != nil {
		lookup := dtlsCfg.PSK
		dtlsCfg.PSK = func(id []byte) ([]byte, error) {
			key, err := lookup(id)
			if err != nil {
				metrics.handshakeFailed(fileserver.DTLS, "unknown_psk_identity")
			}
			return key, err
		}
	}
	return fileserver.New(dir, &fileserver.Options{Logger: log, QBlock: non, NoQBlock: f.qblock.off,
		MaxConns: f.maxConns, IdleTimeout: f.idleTimeout, FrameTimeout: f.frameTimeout,
		Observer: metrics, PeerIdentity: peerIdentity})
}

// serveMetrics serves --metrics, if given, until ctx ends.
func (f *serveFlags) serveMetrics(ctx context.Context, log *slog.Logger, metrics *serveMetrics) error {
	if f.metrics == "" {
		return nil
	}
	ln, err := net.Listen("tcp", f.metrics)
	if err != nil {
		return fmt.Errorf("--metrics: %w", err)
	}
	log.Info("metrics", "addr", ln.Addr().String(), "paths", "/metrics /healthz")
	go metrics.serve(ctx, ln)
	return nil
}

// listen serves srv on every transport asked for, each logged with the
// address it got; a Serve that ends sends its error to errs.
func (f *serveFlags) listen(srv *fileserver.Server, dir string, log *slog.Logger, metrics *serveMetrics, tlsCfg *tls.Config, dtlsCfg *dtlssock.Config, errs chan<- error) error {
	listen := func(network, addr string) (net.Listener, error) {
		ln, err := net.Listen(network, addr)
		if err == nil {
			log.Info("serving", "dir", dir, network, ln.Addr().String())
		}
		return ln, err
	}
	if f.udp != "" {
		pc, err := net.ListenPacket("udp", f.udp)
		if err != nil {
			return err
		}
		log.Info("serving", "dir", dir, "udp", pc.LocalAddr().String())
		go func() { errs <- srv.ServeUDP(pc) }()
	}
	if f.tcp != "" {
		ln, err := listen("tcp", f.tcp)
		if err != nil {
			return err
		}
		go func() { errs <- srv.ServeTCP(ln) }()
	}
	if dtlsCfg != nil {
		pc, err := net.ListenPacket("udp", f.dtls)
		if err != nil {
			return err
		}
		// dtlssock's listener, not pion's: pion's drops a client's first
		// requests when they overtake the end of its handshake.
		ln, err := dtlssock.Listen(pc, dtlsCfg)
		if err != nil {
			pc.Close()
			return err
		}
		log.Info("serving", "dir", dir, "dtls", ln.Addr().String())
		metrics.watchDTLS(ln)
		go func() { errs <- srv.ServeDatagramListener(ln) }()
	}
	if tlsCfg != nil {
		ln, err := listen("tcp", f.tls)
		if err != nil {
			return err
		}
		go func() { errs <- srv.ServeTCP(tls.NewListener(ln, tlsCfg)) }()
	}
	return nil
}

// drain stops srv as a server stops on Ctrl-C or SIGTERM: no new
// transfer, those in flight served for at most timeout, and a line that
// says what it did.
func drain(srv *fileserver.Server, log *slog.Logger, metrics *serveMetrics, timeout time.Duration) {
	metrics.draining.Store(true)
	log.Info("draining", "timeout", timeout)
	drainCtx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	d, _ := srv.Shutdown(drainCtx)
	log.Info("drained", "in_flight", d.InFlight, "finished", d.InFlight-d.Left, "cut_off", d.Left, "took", d.Took.Round(time.Millisecond))
}

// logger builds serve's logger from --log-format and --log-level (or -v,
// -q), its warnings rate-limited (internal/ratelog).
func (f *serveFlags) logger(stderr io.Writer, given func(string) bool) (*slog.Logger, *ratelog.Handler, error) {
	level := slog.LevelInfo
	switch {
	case given("log-level"):
		if err := level.UnmarshalText([]byte(f.logLevel)); err != nil || !slices.Contains([]string{"debug", "info", "warn", "error"}, strings.ToLower(f.logLevel)) {
			return nil, nil, usageError{fmt.Errorf("--log-level %q: debug, info, warn or error", f.logLevel)}
		}
	case f.quiet:
		level = slog.LevelError
	case f.verbose > 0:
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch f.logFormat {
	case "text":
		h = slog.NewTextHandler(stderr, opts)
	case "json":
		h = slog.NewJSONHandler(stderr, opts)
	default:
		return nil, nil, usageError{fmt.Errorf("--log-format %q: text or json", f.logFormat)}
	}
	limiter := ratelog.New(h, nil)
	return slog.New(limiter), limiter, nil
}

// serverDTLS builds the DTLS configuration of serve --dtls: per-device
// keys from --psk-file (reloaded on SIGHUP; an unknown identity fails its
// handshake with an alert), one key from --psk-id with --psk, or a
// certificate.
func (f *serveFlags) serverDTLS(ctx context.Context, stderr io.Writer) (*dtlssock.Config, error) {
	cfg := &dtlssock.Config{ConnectionIDs: true}
	switch {
	case f.creds.pskFile != "":
		keys, err := newKeyring(f.creds.pskFile)
		if err != nil {
			return nil, usageError{fmt.Errorf("--psk-file: %w", err)}
		}
		keys.reloadOn(ctx, syscall.SIGHUP, stderr)
		cfg.PSK = keys.lookup
		cfg.PSKIdentity = []byte("tether")
	case f.creds.pskText != "" || f.creds.pskHex != "":
		psk, err := f.creds.clientPSK()
		if err != nil {
			return nil, err
		}
		cfg.PSK = (&keyring{keys: map[string][]byte{psk.id: psk.key}}).lookup
		cfg.PSKIdentity = []byte(psk.id)
	default:
		cert, err := f.creds.certificate()
		if err != nil {
			return nil, err
		}
		if cert == nil {
			return nil, usageError{errors.New("--dtls needs " + needsDTLSServer)}
		}
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return cfg, nil
}

// keyring maps PSK identities to keys.
type keyring struct {
	path string
	mu   sync.RWMutex
	keys map[string][]byte
}

func newKeyring(path string) (*keyring, error) {
	k := &keyring{path: path}
	return k, k.load()
}

func (k *keyring) load() error {
	entries, err := loadPSKFile(k.path)
	if err != nil {
		return err
	}
	keys := make(map[string][]byte, len(entries))
	for _, e := range entries {
		keys[e.id] = e.key
	}
	k.mu.Lock()
	k.keys = keys
	k.mu.Unlock()
	return nil
}

// lookup is the server's PSK callback: the key of the identity the client
// presents; an unknown one fails the handshake (pion sends an alert).
func (k *keyring) lookup(id []byte) ([]byte, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if key, ok := k.keys[string(id)]; ok {
		return key, nil
	}
	return nil, fmt.Errorf("unknown identity %q", id)
}

// reloadOn reloads the file on sig until ctx ends; a file that no longer
// parses keeps the keys it had, and says why.
func (k *keyring) reloadOn(ctx context.Context, sig os.Signal, stderr io.Writer) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sig)
	go func() {
		defer signal.Stop(ch)
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				if err := k.load(); err != nil {
					fmt.Fprintf(stderr, "tether serve: --psk-file not reloaded, the old keys stay: %v\n", err)
					continue
				}
				k.mu.RLock()
				n := len(k.keys)
				k.mu.RUnlock()
				fmt.Fprintf(stderr, "tether serve: --psk-file reloaded: %d identities\n", n)
			}
		}
	}()
}

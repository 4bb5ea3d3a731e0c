package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/download"
	"github.com/tether-iot/tether/lwm2m"
	"github.com/tether-iot/tether/sock/dtlssock"
)

// deviceFlags are device's options.
type deviceFlags struct {
	endpoint    string
	lifetime    time.Duration
	queue       bool
	stateDir    string
	firmwareDir string
	updateCmd   string
	json        bool
	ackTimeout  time.Duration
	maxSize     string
	qblock      qblockFlags // --qblock and --no-qblock
	bootstrap   string
	servers     []string // --server: further LwM2M servers
	info        deviceInfo
	infoFile    string
	infoCmd     string
	creds       creds
	verbosity
}

func newDevice(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	var f deviceFlags
	cmd := &cobra.Command{
		Use:   "device [SERVER-URL] --endpoint NAME [--bootstrap URL]",
		Short: "Run as an LwM2M device: register, serve /1 /3 /5, update firmware",
		Long: `device runs tether as an LwM2M 1.1 client of SERVER-URL, or of the server a
bootstrap server (--bootstrap) provisions it with (coap:// for NoSec,
coaps:// with a pre-shared key, or with --ca and optionally --cert and
--key for a server with a certificate; coap+tcp:// and coaps+tcp:// for
the TCP binding, coaps+tcp with certificates), and of every --server as
well, each with a registration of its own. The same credentials serve coaps,
coaps+tcp and https firmware downloads. It registers as NAME, keeps the
registration alive, and serves the Server (/1), Device (/3) and Firmware
Update (/5) objects: a Package URI the server writes is downloaded, with
every scheme tether get knows, resumably across offline periods and
restarts, into --firmware-dir; executing /5/0/2 runs --update-cmd with
the image's path (exit status 0: Update Result 1; anything else: 8).

Control lines on standard input, one per line:
  offline [udp|tcp]   go offline (nothing is sent; downloads pause)
  online [udp|tcp]    come back (no Register when the DTLS session resumes)
  update              send a Registration Update now
  reconnect           reconnect, as after a network change
  quit                deregister and exit
Ctrl-C and SIGTERM deregister (waiting at most 1.5 s for the answer) and
exit 130 and 143. The end of standard input is not a quit: a device under
a service manager runs with none.

/3 Device describes the product: --manufacturer, --model, --serial and
--firmware-version, or a --device-info file (or --device-info-cmd) that is
read again after each successful update, so the server sees the version
the update installed.`,
		Example: `  tether device coap://127.0.0.1:5683 --endpoint meter-17
  tether device coap+tcp://127.0.0.1:5683 --endpoint meter-17 --server coap://127.0.0.1:5783
  tether device --bootstrap coaps://bs.example --endpoint meter-17 --psk-file meter-17.psk
  tether device coaps://lwm2m.example --endpoint meter-17 --psk-file meter-17.psk --queue
  tether device coap://127.0.0.1 --endpoint dev --update-cmd ./install.sh --json`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 1 || (len(args) == 0 && f.bootstrap == "") {
				return usageError{fmt.Errorf("device takes one SERVER-URL (or --bootstrap URL), not %d arguments", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			serverURL := ""
			if len(args) == 1 {
				serverURL = args[0]
			}
			return runDevice(cmd.Context(), &f, serverURL, stdin, stdout, stderr)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.endpoint, "endpoint", "", "the device's endpoint `NAME` (required)")
	fs.DurationVar(&f.lifetime, "lifetime", 300*time.Second, "the registration's lifetime")
	fs.BoolVar(&f.queue, "queue", false, "queue mode: sleep (socket closed) after MAX_TRANSMIT_WAIT of quiet, wake when something is due")
	fs.StringVar(&f.stateDir, "state", ".", "keep the firmware update's state in `DIR` (a download in progress resumes from it)")
	fs.StringVar(&f.firmwareDir, "firmware-dir", "", "download firmware images into `DIR` (default: --state)")
	fs.StringVar(&f.updateCmd, "update-cmd", "", "install an image: `COMMAND` runs through /bin/sh with the image's path as its last argument")
	fs.BoolVar(&f.json, "json", false, "write events as JSON lines to stdout")
	fs.StringArrayVar(&f.servers, "server", nil, "register with a further LwM2M server at `URL` too (repeatable; Short Server IDs 2, 3, ... in order; the credentials flags serve them all)")
	fs.StringVar(&f.bootstrap, "bootstrap", "", "ask the LwM2M bootstrap server at `URL` for the server account (kept in --state; SERVER-URL, if given, is used until then); the credentials flags are the bootstrap server's")
	fs.StringVar(&f.info.manufacturer, "manufacturer", "tether", "/3/0/0 Manufacturer")
	fs.StringVar(&f.info.model, "model", "tether device", "/3/0/1 Model Number")
	fs.StringVar(&f.info.serial, "serial", "", "/3/0/2 Serial Number (default: the endpoint name)")
	fs.StringVar(&f.info.firmwareVersion, "firmware-version", "", "/3/0/3 Firmware Version (default: tether's version)")
	fs.StringVar(&f.infoFile, "device-info", "", "read /3's values from `FILE`, lines 'manufacturer=', 'model=', 'serial=', 'firmware_version=' (over the flags); read again after each successful update, so the server sees the new version")
	fs.StringVar(&f.infoCmd, "device-info-cmd", "", "run `COMMAND` (through /bin/sh) for /3's values, printed as --device-info's lines; run again after each successful update")
	fs.StringVar(&f.maxSize, "max-size", "512M", "refuse a firmware image larger than `SIZE` bytes (suffixes K, M, G: powers of 1024): Update Result 2")
	fs.DurationVar(&f.ackTimeout, "ack-timeout", coap.DefaultParams.AckTimeout, "CoAP ACK_TIMEOUT: the first retransmission timeout's lower bound")
	f.qblock.addChoice(fs)
	f.creds.add(fs, false)
	f.verbosity.add(fs, "-v every LwM2M operation; -vv also every message on the wire")
	return cmd
}

// runDevice is tether device.
func runDevice(ctx context.Context, f *deviceFlags, serverURL string, stdin io.Reader, stdout, stderr io.Writer) error {
	if f.endpoint == "" {
		return usageError{errors.New("device needs --endpoint NAME")}
	}
	psk, err := f.creds.clientPSK()
	if err != nil {
		return err
	}
	dl, err := f.firmwareDownloads()
	if err != nil {
		return err
	}
	info, err := newDeviceSource(ctx, f, stderr)
	if err != nil {
		return err
	}
	fwDir := f.firmwareDir
	if fwDir == "" {
		fwDir = f.stateDir
	}
	var out sync.Mutex
	say := func(format string, args ...any) {
		if f.quiet || f.json {
			return
		}
		out.Lock()
		fmt.Fprintf(stderr, format+"\n", args...)
		out.Unlock()
	}
	var serverDTLS *dtlssock.Config
	if dl.TLS, err = f.creds.clientTLS(); err != nil {
		return err
	}
	// The server's credentials serve coaps firmware downloads too: its
	// pre-shared key (as Anjay does), or the certificates given.
	switch {
	case psk != nil:
		key := psk.key
		dl.DTLS = &dtlssock.Config{PSK: func([]byte) ([]byte, error) { return key, nil }, PSKIdentity: []byte(psk.id)}
	case dl.TLS != nil:
		serverDTLS = &dtlssock.Config{RootCAs: dl.TLS.RootCAs, Certificates: dl.TLS.Certificates}
		dl.DTLS = serverDTLS
	}
	cfg := lwm2m.Config{
		Endpoint:  f.endpoint,
		ServerURL: serverURL,
		Lifetime:  f.lifetime,
		QueueMode: f.queue,
		Params:    dl.Params,
		Device:    info.device(),
		Firmware: &lwm2m.Firmware{
			Dir:      fwDir,
			StateDir: f.stateDir,
			Install:  info.afterInstall(installer(f.updateCmd)),
			Download: dl,
		},
		Logger: logger(stderr, f.verbosity, f.json),
		OnEvent: func(ev lwm2m.Event) {
			if f.json {
				b, _ := json.Marshal(map[string]any{"v": jsonVersion, "event": ev.Kind, "op": ev.Op, "path": ev.Path,
					"code": ev.Code, "detail": ev.Detail, "time": ev.Time.UTC().Format(time.RFC3339Nano), "server": ev.Server})
				out.Lock()
				fmt.Fprintf(stdout, "%s\n", b)
				out.Unlock()
				return
			}
			if f.verbose == 0 && ev.Kind != "request" { // -v: the logger says every operation
				say("%s", eventLine(ev))
			}
		},
	}
	if psk != nil {
		cfg.PSKIdentity, cfg.PSK = []byte(psk.id), psk.key
	} else {
		cfg.DTLS, cfg.TLS = serverDTLS, dl.TLS
	}
	for i, u := range f.servers {
		cfg.Servers = append(cfg.Servers, lwm2m.Server{URL: u, ShortServerID: uint16(i + 2),
			PSKIdentity: cfg.PSKIdentity, PSK: cfg.PSK, DTLS: cfg.DTLS, TLS: cfg.TLS})
	}
	if f.bootstrap != "" {
		cfg.Bootstrap = &lwm2m.Bootstrap{URL: f.bootstrap, PSKIdentity: cfg.PSKIdentity, PSK: cfg.PSK, DTLS: cfg.DTLS, StateDir: f.stateDir}
		if serverURL == "" {
			cfg.PSKIdentity, cfg.PSK, cfg.DTLS = nil, nil, nil
		}
	}
	c, err := lwm2m.New(cfg)
	if err != nil {
		return usageError{err}
	}
	if ctx.Err() != nil {
		return context.Cause(ctx) // a signal while setting up: nothing was sent
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()

	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	// stop deregisters within bound, then ends the client whatever the
	// server did.
	stop := func(bound time.Duration) error {
		sctx, scancel := context.WithTimeout(context.Background(), bound)
		defer scancel()
		err := c.Stop(sctx)
		cancel()
		<-done
		if err != nil {
			return fmt.Errorf("deregistering: %w", err)
		}
		return nil
	}
	for {
		select {
		case err := <-done:
			return err
		case <-ctx.Done():
			// A signal: one De-register attempt, and out within
			// signalStopBound whatever the server does.
			if err := stop(signalStopBound); err != nil {
				return fmt.Errorf("%w; the De-register got no answer within %v", context.Cause(ctx), signalStopBound)
			}
			return context.Cause(ctx)
		case line := <-lines:
			quit, err := control(ctx, c, line)
			if err != nil {
				out.Lock()
				fmt.Fprintf(stderr, "tether: %v\n", err) // even with --json or -q: it answers the line
				out.Unlock()
				continue
			}
			if quit {
				return stop(quitStopBound)
			}
		}
	}
}

// How long the client may take to deregister before tether device exits:
// after SIGINT or SIGTERM, promptly (a service manager waits for it); on
// a quit line, long enough for a retransmission on a slow link.
const (
	signalStopBound = 1500 * time.Millisecond
	quitStopBound   = 10 * time.Second
)

// control carries out one control line; it reports a quit.
func control(ctx context.Context, c *lwm2m.Client, line string) (bool, error) {
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return false, nil
	}
	var ts []download.Transport
	switch fields[0] {
	case "offline", "online":
		for _, a := range fields[1:] {
			switch a {
			case "udp":
				ts = append(ts, download.UDP)
			case "tcp":
				ts = append(ts, download.TCP)
			default:
				return false, fmt.Errorf("%s: unknown transport %q (udp or tcp)", fields[0], a)
			}
		}
	case "update", "reconnect", "quit", "exit":
		if len(fields) > 1 {
			return false, fmt.Errorf("%s takes no argument", fields[0])
		}
	default:
		return false, fmt.Errorf("unknown control line %q: offline [udp|tcp], online [udp|tcp], update, reconnect or quit", line)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	switch fields[0] {
	case "offline":
		return false, c.EnterOffline(cctx, ts...)
	case "online":
		return false, c.ExitOffline(cctx, ts...)
	case "update":
		return false, c.Update(cctx)
	case "reconnect":
		return false, c.Reconnect(cctx)
	}
	return true, nil // quit, exit
}

// eventLine is an event as one line for people.
func eventLine(ev lwm2m.Event) string {
	parts := []string{ev.Kind}
	for _, s := range []string{ev.Op, ev.Path, ev.Code, ev.Detail} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, " ")
}

// installer runs --update-cmd with the image's path; with none, every
// Update fails (Result 8) and says why.
func installer(command string) func(context.Context, string) error {
	return func(ctx context.Context, image string) error {
		if command == "" {
			return errors.New("no --update-cmd to install with")
		}
		abs, err := filepath.Abs(image)
		if err != nil {
			return err
		}
		cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command+` "$1"`, "tether-update", abs)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %w", command, err)
		}
		return nil
	}
}

// firmwareDownloads is the template of the device's firmware downloads
// (lwm2m.Firmware.Download) from the flags: the CoAP parameters,
// --max-size, and Q-Block2 (over coaps unless --no-qblock, over coap with
// --qblock). The credentials are added by runDevice.
func (f *deviceFlags) firmwareDownloads() (download.Options, error) {
	maxSize, err := parseSize(f.maxSize)
	if err != nil {
		return download.Options{}, usageError{fmt.Errorf("--max-size: %w", err)}
	}
	params := coap.DefaultParams
	params.AckTimeout = f.ackTimeout
	dl := download.Options{Params: params, MaxSize: maxSize}
	return dl, f.qblock.choose(&dl)
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/tether-iot/tether/lwm2m"
)

// fleetFlags are fleet's options.
type fleetFlags struct {
	devices   int
	endpoint  string
	pskID     string
	psk       string
	pskFile   string
	ramp      float64
	lifetime  time.Duration
	duration  time.Duration
	firmware  bool
	stateDir  string
	interval  time.Duration
	json      bool
	metrics   string
	stopBound time.Duration
}

func newFleet(stdout, stderr io.Writer) *cobra.Command {
	var f fleetFlags
	cmd := &cobra.Command{
		Use:   "fleet SERVER-URL --devices N",
		Short: "Load an LwM2M server with N simulated devices, each the real LwM2M client",
		Long: `fleet runs N devices against an LwM2M server (Wakaama's, Leshan's, a
platform's), each the lwm2m client tether device is made of, with /1, /3 and
(with --firmware) /5: they register at --ramp a second, keep their
registrations with Updates, and answer the server's reads, writes,
observations and firmware pulls (an install is simulated). Endpoint names
come from --endpoint, a pattern in which %d is the device's number; coaps
keys from --psk-id and --psk patterns, or from --psk-file, whose line i
('IDENTITY KEY') is device i's (its identity is then its endpoint name).

A line a second says how many are registered, the Registers and Updates a
second, the latency of those exchanges (p50, p99) and the errors by kind
(--json: one JSON object a line). Ctrl-C, SIGTERM or --duration stops
them: every device deregisters, within --stop-timeout in all.

Keep it on servers of your own: this is a load test.`,
		Example: `  tether fleet coap://127.0.0.1:5683 --devices 1000 --ramp 200
  tether fleet coaps://127.0.0.1:5684 --devices 100 --psk-id 'dev-%d' --psk 'key-%d' --duration 10m`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{fmt.Errorf("fleet takes one SERVER-URL, not %d arguments", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runFleet(cmd.Context(), &f, args[0], stdout, stderr)
		},
	}
	fs := cmd.Flags()
	fs.IntVar(&f.devices, "devices", 10, "how many devices")
	fs.StringVar(&f.endpoint, "endpoint", "tether-fleet-%d", "the endpoint names: a `PATTERN` where %d is the device's number, from 0")
	fs.StringVar(&f.pskID, "psk-id", "", "coaps: the identities, a `PATTERN` as --endpoint's")
	fs.StringVar(&f.psk, "psk", "", "coaps: the keys, a `PATTERN` as --endpoint's")
	fs.StringVar(&f.pskFile, "psk-file", "", "coaps: one 'IDENTITY KEY' line per device in `FILE`; the identity is the endpoint name")
	fs.Float64Var(&f.ramp, "ramp", 100, "devices started a second")
	fs.DurationVar(&f.lifetime, "lifetime", 300*time.Second, "the registrations' lifetime")
	fs.DurationVar(&f.duration, "duration", 0, "stop after this long (default: at Ctrl-C or SIGTERM)")
	fs.BoolVar(&f.firmware, "firmware", false, "give each device /5 Firmware Update (images kept under --state, installs simulated)")
	fs.StringVar(&f.stateDir, "state", "", "with --firmware: where each device keeps its image and /5's state (default: a temporary folder)")
	fs.DurationVar(&f.interval, "every", time.Second, "how often the summary is printed")
	fs.BoolVar(&f.json, "json", false, "print the summary as JSON lines")
	fs.StringVar(&f.metrics, "metrics", "", "serve Prometheus metrics (/metrics) and /healthz on `ADDR`")
	fs.DurationVar(&f.stopBound, "stop-timeout", 10*time.Second, "how long the devices may take to deregister at the end")
	return cmd
}

// fleetStats are counted from the devices' events.
type fleetStats struct {
	m         *fleetMetrics // nil without --metrics
	mu        sync.Mutex
	registers int
	updates   int
	errors    map[string]int
	latencies []time.Duration // of Registers and Updates since the last summary
	sent      map[*lwm2m.Client]time.Time
}

func (s *fleetStats) event(c *lwm2m.Client, ev lwm2m.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case (ev.Kind == "register" || ev.Kind == "update") && ev.Code == "":
		if s.sent == nil {
			s.sent = map[*lwm2m.Client]time.Time{}
		}
		if ev.Kind == "update" || strings.HasPrefix(ev.Detail, "POST /rd") {
			s.sent[c] = ev.Time
		}
	case ev.Kind == "register" && strings.HasPrefix(ev.Code, "2."), ev.Kind == "update" && strings.HasPrefix(ev.Code, "2."):
		if ev.Kind == "register" {
			s.registers++
		} else {
			s.updates++
		}
		if s.m != nil {
			s.m.exchanges.WithLabelValues(ev.Kind).Inc()
		}
		if t, ok := s.sent[c]; ok {
			s.latencies = append(s.latencies, ev.Time.Sub(t))
			if s.m != nil {
				s.m.latency.Observe(ev.Time.Sub(t).Seconds())
			}
			delete(s.sent, c)
		}
	case ev.Kind == "error":
		if s.errors == nil {
			s.errors = map[string]int{}
		}
		s.errors[ev.Op]++
		if s.m != nil {
			s.m.errors.WithLabelValues(ev.Op).Inc()
		}
	}
}

// summary is one line of the live summary.
type summary struct {
	V          int            `json:"v"`
	Event      string         `json:"event"`
	Seconds    float64        `json:"seconds"`
	Started    int            `json:"started"`
	Registered int            `json:"registered"`
	Registers  float64        `json:"registers_per_s"`
	Updates    float64        `json:"updates_per_s"`
	P50        float64        `json:"latency_p50_ms"`
	P99        float64        `json:"latency_p99_ms"`
	Errors     map[string]int `json:"errors"`
}

// runFleet is tether fleet: the devices started at the ramp's pace, a
// summary every interval until a signal or --duration, then every device
// deregistered within --stop-timeout and a last summary.
func runFleet(ctx context.Context, f *fleetFlags, serverURL string, stdout, stderr io.Writer) error {
	if err := f.check(); err != nil {
		return err
	}
	keys, err := fleetKeys(f)
	if err != nil {
		return err
	}
	fl := &fleet{f: f, serverURL: serverURL, keys: keys, stdout: stdout, stderr: stderr}
	if f.firmware {
		dir, cleanup, err := fleetStateDir(f)
		if err != nil {
			return err
		}
		defer cleanup()
		fl.stateDir = dir
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stopMetrics, err := fl.serveMetrics()
	if err != nil {
		return err
	}
	defer stopMetrics()
	stop := ctx.Done()
	if f.duration > 0 {
		dctx, dcancel := context.WithTimeout(ctx, f.duration)
		defer dcancel()
		stop = dctx.Done()
	}
	rampDone := make(chan struct{})
	go func() { // start at the ramp's pace, in the background
		defer close(rampDone)
		fl.ramp(runCtx, stop)
	}()
	fl.begin = time.Now()
	fl.last = fl.begin
	fl.summarize(stop)
	<-rampDone
	fl.deregister(f.stopBound)
	cancel()
	fl.mu.Lock()
	clients := fl.clients
	fl.mu.Unlock()
	for _, c := range clients {
		<-c.Done()
	}
	fl.report("stopped")
	return nil
}

// check refuses flags that cannot make a fleet.
func (f *fleetFlags) check() error {
	if f.devices <= 0 {
		return usageError{errors.New("--devices must be positive")}
	}
	if f.ramp <= 0 {
		return usageError{errors.New("--ramp must be positive")}
	}
	if !strings.Contains(f.endpoint, "%d") && f.devices > 1 {
		return usageError{errors.New("--endpoint needs %d, so that each device has its own name")}
	}
	return nil
}

// fleetStateDir is where the devices of --firmware keep their images and
// /5's state: --state, or a temporary folder that cleanup removes.
func fleetStateDir(f *fleetFlags) (dir string, cleanup func(), err error) {
	if f.stateDir != "" {
		return f.stateDir, func() {}, nil
	}
	if dir, err = os.MkdirTemp("", "tether-fleet-"); err != nil {
		return "", nil, err
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

// fleet is a running tether fleet: its devices, their counts, and what
// the last summary line said.
type fleet struct {
	f              *fleetFlags
	serverURL      string
	keys           func(i int) ([]byte, []byte) // nil: no PSKs
	stateDir       string                       // with --firmware
	stdout, stderr io.Writer
	stats          fleetStats

	mu      sync.Mutex
	clients []*lwm2m.Client
	started atomic.Int64

	begin, last           time.Time // of the run, of the last summary
	lastRegs, lastUpdates int
}

// serveMetrics serves --metrics, if given, until stop is called.
func (fl *fleet) serveMetrics() (stop func(), err error) {
	if fl.f.metrics == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", fl.f.metrics)
	if err != nil {
		return nil, usageError{fmt.Errorf("--metrics: %w", err)}
	}
	fl.stats.m = newFleetMetrics()
	mctx, mcancel := context.WithCancel(context.Background())
	go fl.stats.m.serve(mctx, ln)
	return mcancel, nil
}

// ramp starts the devices, --ramp a second, until all run or stop; each
// runs until ctx ends.
func (fl *fleet) ramp(ctx context.Context, stop <-chan struct{}) {
	tick := time.NewTicker(max(time.Duration(float64(time.Second)/fl.f.ramp), time.Microsecond))
	defer tick.Stop()
	for i := range fl.f.devices {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		fl.start(ctx, i)
	}
}

// start starts device i; a configuration the client refuses is counted as
// an error and said on stderr.
func (fl *fleet) start(ctx context.Context, i int) {
	cfg := fl.config(i)
	var c *lwm2m.Client
	cfg.OnEvent = func(ev lwm2m.Event) { fl.stats.event(c, ev) }
	c, err := lwm2m.New(cfg)
	if err != nil {
		fmt.Fprintf(fl.stderr, "tether: device %d: %v\n", i, err)
		fl.stats.event(nil, lwm2m.Event{Kind: "error", Op: "config"})
		return
	}
	fl.mu.Lock()
	fl.clients = append(fl.clients, c)
	fl.mu.Unlock()
	fl.started.Add(1)
	// Started, not run on a goroutine of ours: an idle device then holds
	// none (see lwm2m.Client.Start).
	if err := c.Start(ctx); err != nil {
		fmt.Fprintf(fl.stderr, "tether: device %d: %v\n", i, err)
	}
}

// config is device i's configuration: its endpoint name, its keys, and
// with --firmware a /5 whose installs are simulated (a second each).
func (fl *fleet) config(i int) lwm2m.Config {
	f := fl.f
	cfg := lwm2m.Config{
		Endpoint:  fmt.Sprintf(f.endpoint, i),
		ServerURL: fl.serverURL,
		Lifetime:  f.lifetime,
		Device:    lwm2m.Device{Manufacturer: "tether", Model: "fleet", SerialNumber: fmt.Sprint(i), FirmwareVersion: "1.0"},
	}
	if f.devices == 1 && !strings.Contains(f.endpoint, "%d") {
		cfg.Endpoint = f.endpoint
	}
	if fl.keys != nil {
		cfg.PSKIdentity, cfg.PSK = fl.keys(i)
	}
	if f.firmware {
		cfg.Firmware = &lwm2m.Firmware{Dir: filepath.Join(fl.stateDir, cfg.Endpoint), Install: func(ctx context.Context, _ string) error {
			select {
			case <-time.After(time.Second):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}}
	}
	return cfg
}

// summarize prints a summary every --every until stop.
func (fl *fleet) summarize(stop <-chan struct{}) {
	tick := time.NewTicker(fl.f.interval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			fl.report("summary")
		}
	}
}

// report prints one line of the summary (JSON with --json): the devices
// started and registered, the Registers and Updates a second and their
// latency since the last line, the errors by kind.
func (fl *fleet) report(event string) {
	now := time.Now()
	fl.mu.Lock()
	registered := 0
	for _, c := range fl.clients {
		if c.Status().Registered {
			registered++
		}
	}
	fl.mu.Unlock()
	stats := &fl.stats
	stats.mu.Lock()
	lat := slices.Clone(stats.latencies)
	stats.latencies = stats.latencies[:0]
	regs, updates := stats.registers, stats.updates
	errs := map[string]int{}
	for k, v := range stats.errors {
		errs[k] = v
	}
	stats.mu.Unlock()
	slices.Sort(lat)
	pct := func(q float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Microseconds()) / 1000
	}
	dt := now.Sub(fl.last).Seconds()
	sum := summary{V: jsonVersion, Event: event, Seconds: now.Sub(fl.begin).Seconds(), Started: int(fl.started.Load()), Registered: registered,
		Registers: float64(regs-fl.lastRegs) / dt, Updates: float64(updates-fl.lastUpdates) / dt, P50: pct(0.5), P99: pct(0.99), Errors: errs}
	fl.last, fl.lastRegs, fl.lastUpdates = now, regs, updates
	if stats.m != nil {
		stats.m.started.Set(float64(sum.Started))
		stats.m.registered.Set(float64(registered))
	}
	if fl.f.json {
		b, _ := json.Marshal(sum)
		fmt.Fprintf(fl.stdout, "%s\n", b)
		return
	}
	fmt.Fprintf(fl.stdout, "%6.1fs  %s: %d started, %d registered, %.0f Registers/s, %.0f Updates/s, latency p50 %.1f ms p99 %.1f ms, errors %v\n",
		sum.Seconds, event, sum.Started, sum.Registered, sum.Registers, sum.Updates, sum.P50, sum.P99, errs)
}

// deregister stops every device at once, each deregistering, within bound
// in all.
func (fl *fleet) deregister(bound time.Duration) {
	sctx, scancel := context.WithTimeout(context.Background(), bound)
	defer scancel()
	fl.mu.Lock()
	all := slices.Clone(fl.clients)
	fl.mu.Unlock()
	var stopped sync.WaitGroup
	for _, c := range all {
		stopped.Add(1)
		go func() { defer stopped.Done(); c.Stop(sctx) }()
	}
	stopped.Wait()
}

// fleetKeys returns each device's PSK identity and key, or nil without
// any.
func fleetKeys(f *fleetFlags) (func(i int) ([]byte, []byte), error) {
	switch {
	case f.pskFile != "" && (f.pskID != "" || f.psk != ""):
		return nil, usageError{errors.New("--psk-file, or --psk-id with --psk: not both")}
	case f.pskFile != "":
		entries, err := loadPSKFile(f.pskFile)
		if err != nil {
			return nil, usageError{fmt.Errorf("--psk-file: %w", err)}
		}
		if len(entries) < f.devices {
			return nil, usageError{fmt.Errorf("--psk-file has %d keys for %d devices", len(entries), f.devices)}
		}
		return func(i int) ([]byte, []byte) { return []byte(entries[i].id), entries[i].key }, nil
	case f.pskID != "" || f.psk != "":
		if f.pskID == "" || f.psk == "" {
			return nil, usageError{errors.New("--psk-id and --psk go together")}
		}
		return func(i int) ([]byte, []byte) {
			return []byte(pattern(f.pskID, i)), []byte(pattern(f.psk, i))
		}, nil
	}
	return nil, nil
}

// pattern puts i where the pattern has %d.
func pattern(p string, i int) string {
	if strings.Contains(p, "%d") {
		return fmt.Sprintf(p, i)
	}
	return p
}

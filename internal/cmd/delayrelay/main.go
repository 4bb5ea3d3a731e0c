// Command delayrelay relays UDP datagrams between clients and one server on
// loopback, delaying, jittering and dropping them in each direction: the
// fault rig for tests and measurements on machines whose kernel has no
// netem (see package relay, which tests use in-process). It is a measuring
// tool, not part of tether's command.
//
//	delayrelay -server 127.0.0.1:5683 -delay 50ms -jitter 5ms -loss 0.01 -seed 7
//
// The first line on stdout is the address it listens on; statistics go to
// stderr on SIGUSR1 and when SIGINT or SIGTERM ends it. Run with -h for
// every flag.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/tether-iot/tether/internal/delayrelay"
)

func main() {
	sig := make(chan os.Signal, 1)
	signals := []os.Signal{syscall.SIGINT, syscall.SIGTERM}
	if statsSignal != nil {
		signals = append(signals, statsSignal)
	}
	signal.Notify(sig, signals...)
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, sig))
}

const usage = `Usage: delayrelay -server 127.0.0.1:PORT [flags]

Relays UDP datagrams between clients and one server, all on loopback, and
degrades each direction on its own: a fixed delay, a jitter drawn
uniformly from [0, jitter] on top of it, and random loss, all drawn from
-seed so that a run can be repeated. A fault rig for tests and
measurements where the kernel has no netem.

Delays are ONE WAY: -delay 50ms delays each direction by 50ms, so a round
trip takes at least 100ms. -delay, -jitter and -loss set both directions;
-up-* (client to server) and -down-* (server to client) set one, and win
over them. Jitter never reorders a client's datagrams (a datagram waits
for the previous one of its direction) unless -reorder is given.

Each client gets its own socket towards the server, as behind a NAT, so
several clients work at once; a mapping idle for -idle is forgotten and
the client's next datagram reaches the server from a new port.

The first line on stdout is the address the relay listens on (-listen
127.0.0.1:0 picks a free port). Statistics (datagrams each way, dropped
by loss, dropped over the bounds) go to stderr on SIGUSR1, and when
SIGINT or SIGTERM ends the relay. Listen and server addresses must be
loopback IPs (or localhost): anything else is refused.

Exit status: 0 ended by SIGINT or SIGTERM, 1 could not start (the port
is taken), 2 the command line is wrong (a non-loopback address included).

Example: a CoAP server on 5683 behind a 100ms round trip with 5ms of
jitter and 1% loss each way, then through it:

  delayrelay -server 127.0.0.1:5683 -delay 50ms -jitter 5ms -loss 0.01 -seed 7
  tether get coap://127.0.0.1:PRINTED-PORT/fw.bin

Flags:
`

// run is the command; it returns the exit status. sig ends it (statsSignal,
// SIGUSR1, prints the statistics and goes on).
func run(args []string, stdout, stderr io.Writer, sig <-chan os.Signal) int {
	cfg, err := parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		if !errors.Is(err, errReported) {
			fmt.Fprintln(stderr, "delayrelay:", err)
		}
		return 2
	}
	r, err := delayrelay.Start(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "delayrelay:", err)
		return 1
	}
	fmt.Fprintln(stdout, r.Addr())
	for s := range sig {
		if statsSignal == nil || s != statsSignal {
			break
		}
		printStats(stderr, r.Stats())
	}
	r.Close()
	printStats(stderr, r.Stats())
	return 0
}

// errReported is a command-line error the flag package has already printed.
var errReported = errors.New("reported")

// parse reads the flags into a validated Config.
func parse(args []string, stderr io.Writer) (delayrelay.Config, error) {
	fs := flag.NewFlagSet("delayrelay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	var cfg delayrelay.Config
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:0", "`address` clients send to, a loopback IP and port (port 0: pick one)")
	fs.StringVar(&cfg.Server, "server", "", "the server's `address`, a loopback IP and port (required)")
	var both delayrelay.Link
	fs.DurationVar(&both.Delay, "delay", 0, "one-way delay of each direction (round trip: twice it)")
	fs.DurationVar(&both.Jitter, "jitter", 0, "extra one-way delay of each direction, uniform in [0, jitter]")
	fs.Float64Var(&both.Loss, "loss", 0, "`probability` (0 to 1) that a datagram is dropped, each direction")
	fs.DurationVar(&cfg.Up.Delay, "up-delay", 0, "delay from client to server, instead of -delay")
	fs.DurationVar(&cfg.Up.Jitter, "up-jitter", 0, "jitter from client to server, instead of -jitter")
	fs.Float64Var(&cfg.Up.Loss, "up-loss", 0, "`probability` of loss from client to server, instead of -loss")
	fs.DurationVar(&cfg.Down.Delay, "down-delay", 0, "delay from server to client, instead of -delay")
	fs.DurationVar(&cfg.Down.Jitter, "down-jitter", 0, "jitter from server to client, instead of -jitter")
	fs.Float64Var(&cfg.Down.Loss, "down-loss", 0, "`probability` of loss from server to client, instead of -loss")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "seed of loss and jitter: the same seed, the same run")
	fs.BoolVar(&cfg.Reorder, "reorder", false, "let jitter reorder datagrams")
	fs.IntVar(&cfg.MaxQueued, "max-queue", delayrelay.DefaultMaxQueued, "datagrams waiting per direction at most; more are dropped and counted")
	fs.IntVar(&cfg.MaxQueuedBytes, "max-queue-bytes", delayrelay.DefaultMaxQueuedBytes, "bytes waiting per direction at most; more are dropped and counted")
	fs.IntVar(&cfg.MaxClients, "max-clients", delayrelay.DefaultMaxClients, "clients mapped at most; datagrams of more are dropped and counted")
	fs.DurationVar(&cfg.Idle, "idle", delayrelay.DefaultIdle, "a client's mapping is forgotten after this long without a datagram")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, err
		}
		return cfg, errReported
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q (flags only; -h for help)", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, d := range []struct {
		name string
		l    *delayrelay.Link
	}{{"up", &cfg.Up}, {"down", &cfg.Down}} {
		if !set[d.name+"-delay"] {
			d.l.Delay = both.Delay
		}
		if !set[d.name+"-jitter"] {
			d.l.Jitter = both.Jitter
		}
		if !set[d.name+"-loss"] {
			d.l.Loss = both.Loss
		}
	}
	// In a Config, 0 means the default; on the command line it would mean
	// nothing gets through, which is never what was meant.
	for _, b := range []struct {
		name string
		zero bool
	}{{"max-queue", cfg.MaxQueued == 0}, {"max-queue-bytes", cfg.MaxQueuedBytes == 0}, {"max-clients", cfg.MaxClients == 0}, {"idle", cfg.Idle == 0}} {
		if b.zero {
			return cfg, fmt.Errorf("-%s must be above 0", b.name)
		}
	}
	if cfg.Server == "" {
		return cfg, errors.New("-server is required (-h for help)")
	}
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

func printStats(w io.Writer, st delayrelay.Stats) {
	for _, d := range []struct {
		name string
		s    delayrelay.DirStats
	}{{"up (client to server)", st.Up}, {"down (server to client)", st.Down}} {
		fmt.Fprintf(w, "delayrelay: %s: %d received, %d forwarded, %d dropped by loss, %d dropped over the queue bounds, %d failed, %d waiting\n",
			d.name, d.s.Received, d.s.Forwarded, d.s.Lost, d.s.Overflow, d.s.Failed, d.s.Queued)
	}
	fmt.Fprintf(w, "delayrelay: clients: %d mapped now, %d in all, %d expired, %d datagrams refused over -max-clients, %d stray datagrams\n",
		st.Clients, st.Mapped, st.Expired, st.Refused, st.Stray)
}

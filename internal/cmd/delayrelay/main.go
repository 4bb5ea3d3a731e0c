// Command delayrelay relays UDP datagrams between clients and one server on
// loopback, delaying, jittering and dropping them in each direction: the
// fault rig for tests and measurements on machines whose kernel has no
// netem (see package relay, which tests use in-process). It is a measuring
// tool, not part of tether's command.
//
//	delayrelay -server 127.0.0.1:5683 -delay 50ms -jitter 5ms -loss 0.01 -seed 7
//	delayrelay -server 127.0.0.1:5683 -delay 300ms -rate 64k -queue 16KiB -overhead 28
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
	"math"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/tether-iot/tether/internal/delayrelay"
)

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	if sigStats != nil {
		signal.Notify(sig, sigStats)
	}
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

-rate makes each direction a narrow link shared by every client: one
datagram at a time goes on the wire, taking (its length + -overhead) x 8 /
rate (-rate 64k: a 1052-byte datagram with -overhead 28 takes 135 ms),
and its delay begins after it. Datagrams that come while the link is busy
wait in a drop-tail queue of -queue bytes (counted as the rate counts
them, the one on the wire excluded); one that does not fit is dropped.
-up-rate, -down-rate, -up-queue and -down-queue set one direction.

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

A narrow link: 64 kbit/s each way, 300ms one way, a 16 KiB queue, IPv4
and UDP headers counted on the wire:

  delayrelay -server 127.0.0.1:5683 -delay 300ms -rate 64k -queue 16KiB -overhead 28

Flags:
`

// run is the command; it returns the exit status. sig ends it (sigStats,
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
		if sigStats == nil || s != sigStats {
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
	var bothRate rate
	var bothQueue size
	fs.Var(&bothRate, "rate", "bits per second of each direction, as 64000, 64k, 1.5M (0: no limit)")
	fs.Var(&bothQueue, "queue", "bytes each direction's link queue holds, as 16384, 16KiB, 1MiB (needs a rate; 0: unbounded)")
	fs.Var((*rate)(&cfg.Up.Rate), "up-rate", "bits per second from client to server, instead of -rate")
	fs.Var((*rate)(&cfg.Down.Rate), "down-rate", "bits per second from server to client, instead of -rate")
	fs.Var((*size)(&cfg.Up.Queue), "up-queue", "bytes of the link queue from client to server, instead of -queue")
	fs.Var((*size)(&cfg.Down.Queue), "down-queue", "bytes of the link queue from server to client, instead of -queue")
	var overhead int
	fs.IntVar(&overhead, "overhead", 0, "`bytes` counted per datagram on top of its payload by -rate and -queue (28: IPv4 and UDP headers)")
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
		if !set[d.name+"-rate"] {
			d.l.Rate = int64(bothRate)
		}
		if !set[d.name+"-queue"] {
			d.l.Queue = int(bothQueue)
		}
		d.l.Overhead = overhead
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
		fmt.Fprintf(w, "delayrelay: %s: %d received, %d forwarded, %d dropped by loss, %d dropped by the link's full queue, %d dropped over the queue bounds, %d failed, %d waiting; %d bytes forwarded\n",
			d.name, d.s.Received, d.s.Forwarded, d.s.Lost, d.s.Dropped, d.s.Overflow, d.s.Failed, d.s.Queued, d.s.ForwardedBytes)
	}
	fmt.Fprintf(w, "delayrelay: clients: %d mapped now, %d in all, %d expired, %d datagrams refused over -max-clients, %d stray datagrams\n",
		st.Clients, st.Mapped, st.Expired, st.Refused, st.Stray)
}

// rate is a flag of bits per second: a number, with k, M or G for
// thousands, millions, billions (decimal, as link rates are given).
type rate int64

func (r *rate) String() string { return strconv.FormatInt(int64(*r), 10) }

func (r *rate) Set(s string) error {
	v, err := scaled(s, map[string]float64{"": 1, "k": 1e3, "M": 1e6, "G": 1e9})
	if err != nil {
		return fmt.Errorf("%w (bits per second: 64000, 64k, 1.5M)", err)
	}
	*r = rate(v)
	return nil
}

// size is a flag of bytes: a number, with KiB or MiB.
type size int

func (z *size) String() string { return strconv.Itoa(int(*z)) }

func (z *size) Set(s string) error {
	v, err := scaled(s, map[string]float64{"": 1, "KiB": 1 << 10, "MiB": 1 << 20})
	if err != nil || v > math.MaxInt32 {
		return fmt.Errorf("bad size %q (bytes: 16384, 16KiB, 1MiB)", s)
	}
	*z = size(v)
	return nil
}

// scaled parses a non-negative number followed by one of units' suffixes
// into a whole number.
func scaled(s string, units map[string]float64) (int64, error) {
	i := strings.IndexFunc(s, func(c rune) bool { return (c < '0' || c > '9') && c != '.' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = s[:i], s[i:]
	}
	mul, ok := units[unit]
	f, err := strconv.ParseFloat(num, 64)
	if !ok || err != nil || f < 0 || f*mul > 1e15 || f*mul != math.Trunc(f*mul) {
		return 0, fmt.Errorf("bad value %q", s)
	}
	return int64(f * mul), nil
}

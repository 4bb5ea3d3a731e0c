package download_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/fileserver"
	"github.com/tether-iot/tether/download"
	"github.com/tether-iot/tether/internal/delayrelay"
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/sock/dtlssock"
)

// TestNarrowLink is issue 23's narrow link, measured: 128 KiB from
// tether's file server through the delay relay at 64 kbit/s each way, 300
// ms one way, a drop-tail queue of 16 KiB (and of 4 KiB) each way, 0%, 1%
// and 5% loss each way, over coap and coaps (PSK, AES-128-CCM-8), with
// Q-Block2 (Options.QBlock, as tether get --qblock), a window of 10
// (--window 10) and lockstep, and over coap Q-Block2 with MAX_PAYLOADS 15
// on both ends ("qblock15": the largest burst a 16 KiB queue takes whole,
// --max-payloads 15). It is a measurement, not a test: it runs
// only when TETHER_NARROW_LINK is set, each cell on a link of its own, all
// at once (hence -parallel), a few minutes in all, the longest lockstep
// run bounded by 10 minutes:
//
//	TETHER_NARROW_LINK=1 go test -run TestNarrowLink -v -parallel 100 -timeout 30m ./download
//
// TETHER_NARROW_LINK_SEEDS=N runs each lossy cell with N relay seeds (2),
// and -run 'TestNarrowLink/cells/coap/qblock' picks cells. It fails only
// when a download fails or its bytes are wrong.
//
// How it counts: the link time is the body's bytes on the wire once,
// divided by the rate: every block's datagram as the server sends it (CoAP
// header and options, over coaps the DTLS record, taken as the largest
// datagram the server sent less a full block's 1024 bytes), plus 28 bytes
// of IPv4 and UDP header, which the relay counts too (Link.Overhead). The
// share is link time / the time from Start to a verified end (the first
// round trip and, over coaps, the handshake included: with no loss a
// perfect client reaches 97%, 17.6 s of 18.2 s, over coap). "busy" is the
// relay's airtime down (duplicates and datagrams lost after the queue
// included) / that time; "sent" counts the datagrams the server sent down,
// against the body's 128 blocks. "gaps" are the down link's idle periods
// over 100 ms while the transfer ran, from the server's send times and the
// rate: how many, and their total.
func TestNarrowLink(t *testing.T) {
	if os.Getenv("TETHER_NARROW_LINK") == "" {
		t.Skip("a measurement: set TETHER_NARROW_LINK=1 (see its doc for the command)")
	}
	seeds := 2
	if v, err := strconv.Atoi(os.Getenv("TETHER_NARROW_LINK_SEEDS")); err == nil && v > 0 {
		seeds = v
	}
	data := testrig.Bytes(128<<10, 23)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "fw.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		results []narrowResult
	)
	t.Run("cells", func(t *testing.T) {
		for _, scheme := range []string{"coap", "coaps"} {
			for _, strat := range []string{"qblock", "qblock15", "window", "lockstep"} {
				if strat == "qblock15" && scheme != "coap" {
					continue
				}
				for _, queue := range []int{16 << 10, 4 << 10} {
					for _, loss := range []float64{0, 0.01, 0.05} {
						n := seeds
						if loss == 0 {
							n = 1
						}
						for seed := 1; seed <= n; seed++ {
							c := narrowCell{scheme: scheme, strat: strat, queue: queue, loss: loss, seed: uint64(seed)}
							t.Run(c.name(), func(t *testing.T) {
								t.Parallel()
								r := c.run(t, dir, data)
								mu.Lock()
								results = append(results, r)
								mu.Unlock()
							})
						}
					}
				}
			}
		}
	})
	slices.SortFunc(results, func(a, b narrowResult) int { return strings.Compare(a.key(), b.key()) })
	var b strings.Builder
	fmt.Fprintf(&b, "128 KiB, 64 kbit/s each way, 300 ms one way; link time %.2f s (coap), %.2f s (coaps)\n", linkTime("coap", results).Seconds(), linkTime("coaps", results).Seconds())
	fmt.Fprintf(&b, "%-6s %-8s %-6s %-5s %-4s %9s %6s %5s %5s %7s %6s %s\n", "scheme", "strategy", "queue", "loss", "seed", "time", "share", "busy", "sent", "dropped", "lost", "gaps")
	for _, r := range results {
		fmt.Fprintf(&b, "%-6s %-8s %-6s %-5s %-4d %9s %5.0f%% %4.0f%% %5d %7d %6d %d, %.1f s\n", r.scheme, r.strat, kib(r.queue), pct(r.loss), r.seed,
			r.took.Round(10*time.Millisecond), 100*r.share, 100*r.busy, r.sent, r.dropped, r.lost, r.gaps, r.idle.Seconds())
	}
	t.Log("\n" + b.String())
}

// narrowCell is one run of TestNarrowLink.
type narrowCell struct {
	scheme, strat string
	queue         int
	loss          float64
	seed          uint64
}

func (c narrowCell) name() string {
	return c.scheme + "/" + c.strat + "/" + kib(c.queue) + "/" + pct(c.loss) + "/seed" + strconv.FormatUint(c.seed, 10)
}

func kib(n int) string     { return strconv.Itoa(n>>10) + "KiB" }
func pct(p float64) string { return strconv.FormatFloat(p*100, 'g', -1, 64) + "%" }

// narrowResult is what a cell measured.
type narrowResult struct {
	narrowCell
	took        time.Duration
	link        time.Duration // the body's link time
	share, busy float64
	sent        int // datagrams the server sent down
	dropped     uint64
	lost        uint64
	gaps        int
	idle        time.Duration
}

func (r narrowResult) key() string {
	order := map[string]string{"qblock": "1", "qblock15": "2", "window": "3", "lockstep": "4"}
	return fmt.Sprintf("%s %s %06d %05.1f %d", r.scheme, order[r.strat], 1<<20-r.queue, r.loss*100, r.seed)
}

func linkTime(scheme string, rs []narrowResult) time.Duration {
	for _, r := range rs {
		if r.scheme == scheme && r.link > 0 {
			return r.link
		}
	}
	return 0
}

// Narrow link's parameters.
const (
	narrowRate     = 64000
	narrowOneWay   = 300 * time.Millisecond
	narrowOverhead = 28 // IPv4 and UDP headers
)

func (c narrowCell) run(t *testing.T, dir string, data []byte) narrowResult {
	fopts := &fileserver.Options{Logger: slog.New(slog.DiscardHandler)}
	if c.strat == "qblock15" {
		fopts.QBlock = coap.NonParams{MaxPayloads: 15}
	}
	fs, err := fileserver.New(dir, fopts)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc := &sendLog{PacketConn: raw}
	done := make(chan struct{})
	var opts download.Options
	if c.scheme == "coaps" {
		cfg := pskConfig()
		cfg.ConnectionIDs = true
		ln, err := dtlssock.Listen(pc, cfg)
		if err != nil {
			t.Fatal(err)
		}
		go func() { defer close(done); fs.ServeDatagramListener(ln) }()
		defer func() { fs.Close(); ln.Close(); <-done }()
		opts.DTLS = pskConfig()
	} else {
		go func() { defer close(done); fs.ServeUDP(pc) }()
		defer func() { fs.Close(); pc.Close(); <-done }()
	}
	link := delayrelay.Link{Delay: narrowOneWay, Loss: c.loss, Rate: narrowRate, Queue: c.queue, Overhead: narrowOverhead}
	r, err := delayrelay.Start(delayrelay.Config{Server: raw.LocalAddr().String(), Up: link, Down: link, Seed: c.seed})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	switch c.strat {
	case "qblock":
		opts.QBlock = true
	case "qblock15":
		opts.QBlock, opts.QBlockParams = true, coap.NonParams{MaxPayloads: 15}
	case "window":
		opts.Window = 10
	}
	want := sha256.Sum256(data)
	opts.SHA256 = want[:]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var sink memSink
	began := time.Now()
	d, err := download.Start(ctx, c.scheme+"://"+r.Addr().String()+"/fw.bin", &sink, &opts)
	if err == nil {
		err = d.Wait()
	}
	took := time.Since(began)
	if err != nil || sink.sum() != want {
		t.Fatalf("%s: %v after %v, %d bytes", c.name(), err, took, sink.len())
	}
	st := r.Stats()
	sends := pc.sends()
	res := narrowResult{narrowCell: c, took: took, sent: len(sends), dropped: st.Down.Dropped, lost: st.Down.Lost}
	largest := 0
	for _, s := range sends {
		largest = max(largest, s.n)
	}
	nblk := (len(data) + 1023) / 1024
	wire := len(data) + nblk*(largest-1024+narrowOverhead)
	res.link = time.Duration(int64(wire) * 8 * int64(time.Second) / narrowRate)
	res.share = res.link.Seconds() / took.Seconds()
	res.busy = st.Down.Airtime.Seconds() / took.Seconds()
	res.gaps, res.idle = idleGaps(sends, 100*time.Millisecond)
	t.Logf("%s: %v, share %.0f%%, link busy %.0f%%, %d datagrams down, %d dropped by the queue, %d lost; up: %d dropped, %d lost; %d idle gaps over 100 ms, %v",
		c.name(), took.Round(time.Millisecond), 100*res.share, 100*res.busy, res.sent, st.Down.Dropped, st.Down.Lost, st.Up.Dropped, st.Up.Lost, res.gaps, res.idle.Round(time.Millisecond))
	return res
}

// sendLog is a server's PacketConn that notes when it sent each datagram
// and how large it was.
type sendLog struct {
	net.PacketConn
	mu  sync.Mutex
	log []sent
}

type sent struct {
	at time.Time
	n  int
}

func (s *sendLog) WriteTo(b []byte, addr net.Addr) (int, error) {
	s.mu.Lock()
	s.log = append(s.log, sent{time.Now(), len(b)})
	s.mu.Unlock()
	return s.PacketConn.WriteTo(b, addr)
}

func (s *sendLog) sends() []sent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// idleGaps replays the server's sends through the narrow link's rate (the
// queue's drops left out) and returns the idle periods longer than min
// between the first datagram and the last: how many, and their total.
func idleGaps(sends []sent, least time.Duration) (int, time.Duration) {
	var (
		free  time.Time
		n     int
		total time.Duration
	)
	for i, s := range sends {
		if i > 0 && s.at.Sub(free) > least {
			n++
			total += s.at.Sub(free)
		}
		start := s.at
		if start.Before(free) {
			start = free
		}
		free = start.Add(time.Duration(int64(s.n+narrowOverhead) * 8 * int64(time.Second) / narrowRate))
	}
	return n, total
}

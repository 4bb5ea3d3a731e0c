package delayrelay_test

import (
	"math"
	"slices"
	"testing"

	"github.com/tether-iot/tether/internal/delayrelay"
)

// TestLossFollowsTheSeed sends 2000 datagrams each way through a relay
// that loses 30% of them: the number lost is within five standard
// deviations of the binomial mean (600 ± 102), the relay's count matches
// what did not arrive, the same seed loses exactly the same datagrams and
// another seed other ones.
func TestLossFollowsTheSeed(t *testing.T) {
	const n, p = 2000, 0.3
	bound := 5 * math.Sqrt(n*p*(1-p))
	for _, dir := range []string{"up", "down"} {
		t.Run(dir, func(t *testing.T) {
			lost7 := lostThrough(t, dir, 7, n, p)
			if d := math.Abs(float64(len(lost7)) - n*p); d > bound {
				t.Errorf("seed 7 lost %d of %d, %.0f from the mean %.0f (bound %.0f)", len(lost7), n, d, n*p, bound)
			}
			again := lostThrough(t, dir, 7, n, p)
			if !slices.Equal(lost7, again) {
				t.Errorf("seed 7 lost different datagrams in a second run (%d, then %d)", len(lost7), len(again))
			}
			lost8 := lostThrough(t, dir, 8, n, p)
			if d := math.Abs(float64(len(lost8)) - n*p); d > bound {
				t.Errorf("seed 8 lost %d of %d (bound %.0f around %.0f)", len(lost8), n, bound, n*p)
			}
			if slices.Equal(lost7, lost8) {
				t.Error("seeds 7 and 8 lost the same datagrams")
			}
			t.Logf("lost of %d: %d (seed 7, twice), %d (seed 8); binomial mean %.0f ± %.0f", n, len(lost7), len(lost8), n*p, bound)
		})
	}
}

// lostThrough sends n datagrams in one direction through a relay losing
// share p of them (the other direction loses nothing) and returns the
// sequence numbers that did not arrive.
func lostThrough(t *testing.T, dir string, seed uint64, n int, p float64) []uint64 {
	t.Helper()
	srv := listen(t)
	cfg := delayrelay.Config{Server: addrOf(srv), Seed: seed}
	var stats func() delayrelay.DirStats
	var r *delayrelay.Relay
	if dir == "up" {
		cfg.Up.Loss = p
		stats = func() delayrelay.DirStats { return r.Stats().Up }
	} else {
		cfg.Down.Loss = p
		stats = func() delayrelay.DirStats { return r.Stats().Down }
	}
	r = start(t, cfg)
	c := dial(t, r)
	var sink *collector
	var send func(seq uint64)
	if dir == "up" {
		sink = collect(t, srv)
		send = func(seq uint64) { c.Write(seqDatagram(seq, 32)) }
	} else {
		// The client's first datagram makes the mapping; the server
		// answers the address it came from.
		c.Write(seqDatagram(0, 8))
		buf := make([]byte, 64)
		_, from, err := srv.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatal(err)
		}
		sink = collect(t, c)
		send = func(seq uint64) { srv.WriteToUDPAddrPort(seqDatagram(seq, 32), from) }
	}
	pump(t, n, send, func() uint64 { return stats().Received }, func() uint64 { return stats().Forwarded }, sink)
	waitFor(t, "every datagram to be forwarded or lost", func() bool {
		s := stats()
		return s.Forwarded+s.Lost == uint64(n) && uint64(sink.count()) == s.Forwarded
	})
	s := stats()
	if s.Overflow != 0 || s.Failed != 0 {
		t.Fatalf("stats %+v: nothing should overflow or fail", s)
	}
	got := sink.got()
	arrived := make([]bool, n)
	for _, seq := range got {
		arrived[seq] = true
	}
	var lost []uint64
	for i, ok := range arrived {
		if !ok {
			lost = append(lost, uint64(i))
		}
	}
	if uint64(len(lost)) != s.Lost {
		t.Fatalf("%d datagrams did not arrive, the relay counted %d lost", len(lost), s.Lost)
	}
	r.Close()
	return lost
}

package delayrelay

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// TestLinkArithmetic offers datagrams to a direction's scheduler at given
// times (an injected clock: nothing here reads the machine's) and checks
// when each is due, or why it is dropped: serialisation at the rate, one
// datagram at a time in arrival order, then the delay; a drop-tail queue
// that does not count the datagram on the wire, that a datagram finding
// the link idle never waits in, and that a dropped datagram leaves as it
// was; a lost datagram that still takes its turn on the link.
func TestLinkArithmetic(t *testing.T) {
	const ms = time.Millisecond
	type offer struct {
		at   time.Duration // arrival
		size int
		lost bool
		want time.Duration // when it is due; -1: dropped by the queue; -2: lost
	}
	const dropped, lost = -1, -2
	// 80 kbit/s: 1000 bytes take 100 ms on the wire.
	for _, tc := range []struct {
		name   string
		link   Link
		offers []offer
	}{
		{"no rate: the delay only", Link{Delay: 300 * ms}, []offer{
			{0, 1000, false, 300 * ms}, {0, 1000, false, 300 * ms}, {5 * ms, 60000, false, 305 * ms},
		}},
		{"idle link: airtime then delay", Link{Delay: 300 * ms, Rate: 80000}, []offer{
			{0, 1000, false, 400 * ms},
		}},
		{"back to back: one at a time", Link{Rate: 80000}, []offer{
			{0, 1000, false, 100 * ms}, {0, 1000, false, 200 * ms}, {0, 500, false, 250 * ms},
		}},
		{"arrives while one is on the wire", Link{Rate: 80000}, []offer{
			{0, 1000, false, 100 * ms}, {50 * ms, 1000, false, 200 * ms},
		}},
		{"arrives after the link went idle", Link{Rate: 80000}, []offer{
			{0, 1000, false, 100 * ms}, {250 * ms, 1000, false, 350 * ms},
		}},
		{"queue of two: the fourth of a burst is dropped", Link{Rate: 80000, Queue: 2000}, []offer{
			{0, 1000, false, 100 * ms}, // on the wire, not in the queue
			{0, 1000, false, 200 * ms}, // queued: 1000
			{0, 1000, false, 300 * ms}, // queued: 2000
			{0, 1000, false, dropped},  // 3000 would not fit
			{0, 1, false, dropped},     // nor 2001
		}},
		{"a datagram leaves the queue when its airtime begins", Link{Rate: 80000, Queue: 2000}, []offer{
			{0, 1000, false, 100 * ms}, {0, 1000, false, 200 * ms}, {0, 1000, false, 300 * ms}, {0, 1000, false, dropped},
			{100 * ms, 1000, false, 400 * ms},   // the second began at 100: 1000 waits
			{100 * ms, 1000, false, dropped},    // 2000 wait
			{199 * ms, 1000, false, dropped},    // still
			{200 * ms, 1000, false, 500 * ms},   // the third began
			{1000 * ms, 1000, false, 1100 * ms}, // all drained
		}},
		{"a queue filled exactly", Link{Rate: 80000, Queue: 1500}, []offer{
			{0, 1000, false, 100 * ms}, {0, 1000, false, 200 * ms}, {0, 500, false, 250 * ms}, {0, 1, false, dropped},
		}},
		{"larger than the queue, on an idle link", Link{Rate: 80000, Queue: 500}, []offer{
			{0, 1000, false, 100 * ms}, {0, 1000, false, dropped}, {100 * ms, 400, false, 140 * ms},
		}},
		{"a dropped datagram leaves the link as it was", Link{Rate: 80000, Queue: 1000}, []offer{
			{0, 1000, false, 100 * ms}, {0, 1000, false, 200 * ms}, {0, 2000, false, dropped}, {100 * ms, 1000, false, 300 * ms},
		}},
		{"overhead counts on the wire and in the queue", Link{Rate: 80000, Queue: 2000, Overhead: 28}, []offer{
			{0, 972, false, 100 * ms}, {0, 972, false, 200 * ms}, {0, 972, false, 300 * ms}, {0, 973, false, dropped}, {0, 0, false, dropped},
		}},
		{"a lost datagram takes its turn on the link", Link{Delay: 300 * ms, Rate: 80000}, []offer{
			{0, 1000, true, lost}, {0, 1000, false, 500 * ms}, {0, 1000, true, lost}, {0, 1000, false, 700 * ms},
		}},
		{"a lost datagram is dropped by a full queue first", Link{Rate: 80000, Queue: 1000}, []offer{
			{0, 1000, false, 100 * ms}, {0, 1000, false, 200 * ms}, {0, 1000, true, dropped}, {100 * ms, 1000, true, lost}, {100 * ms, 1000, false, dropped},
		}},
		{"64 kbit/s, a 1052-byte datagram", Link{Delay: 300 * ms, Rate: 64000, Queue: 16 << 10}, []offer{
			{0, 1052, false, 431500 * time.Microsecond}, {0, 1052, false, 563 * ms},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var st counters
			s := newScheduler(&st, tc.link, DefaultMaxQueued, DefaultMaxQueuedBytes, nil)
			epoch := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			f := &flow{rng: rand.New(rand.NewPCG(1, 2))}
			m := &mapping{client: netip.MustParseAddrPort("127.0.0.1:1")}
			var wantDropped, wantLost uint64
			for i, o := range tc.offers {
				due, ok := s.offer(epoch.Add(o.at), make([]byte, o.size), fate{lost: o.lost}, tc.link.Delay, f, false, m)
				switch {
				case o.want == dropped:
					wantDropped++
					if ok {
						t.Errorf("offer %d (%d bytes at %v): due at %v, want it dropped by the queue", i, o.size, o.at, due.Sub(epoch))
					}
				case o.want == lost:
					wantLost++
					if ok {
						t.Errorf("offer %d (%d bytes at %v): due at %v, want it lost", i, o.size, o.at, due.Sub(epoch))
					}
				case !ok:
					t.Errorf("offer %d (%d bytes at %v): dropped, want it due at %v", i, o.size, o.at, o.want)
				case due.Sub(epoch) != o.want:
					t.Errorf("offer %d (%d bytes at %v): due at %v, want %v", i, o.size, o.at, due.Sub(epoch), o.want)
				}
			}
			var wantBusy time.Duration
			if tc.link.Rate > 0 {
				for _, o := range tc.offers {
					if o.want != dropped {
						wantBusy += time.Duration(int64(o.size+tc.link.Overhead) * 8 * int64(time.Second) / tc.link.Rate)
					}
				}
			}
			if _, _, _, busy := s.queued(); busy != wantBusy {
				t.Errorf("airtime %v, want %v", busy, wantBusy)
			}
			if st.dropped.Load() != wantDropped || st.lost.Load() != wantLost {
				t.Errorf("counted %d dropped and %d lost, want %d and %d", st.dropped.Load(), st.lost.Load(), wantDropped, wantLost)
			}
		})
	}
}

// TestLinkQueueStaysSmall: a link kept busy for a long time (100,000
// datagrams, each arriving as the one before begins) keeps only the
// datagrams still waiting, not every one it has taken.
func TestLinkQueueStaysSmall(t *testing.T) {
	b := newBottleneck(Link{Rate: 80000, Queue: 3000})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 100000 {
		if _, ok := b.take(now, 1000); !ok && i > 3 {
			t.Fatalf("datagram %d dropped", i)
		}
		now = now.Add(100 * time.Millisecond)
	}
	if n := len(b.waiting) - b.head; n > 2 || cap(b.waiting) > 256 {
		t.Errorf("%d datagrams waiting (%d kept, room for %d): want at most 2 and a small slice", n, len(b.waiting), cap(b.waiting))
	}
}

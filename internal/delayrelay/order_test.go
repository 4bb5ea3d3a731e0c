package delayrelay_test

import (
	"testing"
	"time"

	"github.com/tether-iot/tether/internal/delayrelay"
)

// TestJitterKeepsOrderUnlessReorder sends 1000 datagrams through a relay
// whose jitter (0-30 ms) is far larger than the gaps between them. Without
// Reorder they all arrive in the order sent; with it, the same traffic
// arrives out of order, which shows the jitter was there to reorder it.
func TestJitterKeepsOrderUnlessReorder(t *testing.T) {
	const n = 1000
	for _, reorder := range []bool{false, true} {
		name := "ordered"
		if reorder {
			name = "reorder"
		}
		t.Run(name, func(t *testing.T) {
			srv := listen(t)
			sink := collect(t, srv)
			r := start(t, delayrelay.Config{
				Server:  addrOf(srv),
				Up:      delayrelay.Link{Delay: 2 * time.Millisecond, Jitter: 30 * time.Millisecond},
				Seed:    3,
				Reorder: reorder,
			})
			c := dial(t, r)
			// Wait for the relay to read each burst, not for it to
			// deliver: datagrams of a burst are in the relay together.
			pump(t, n, func(seq uint64) { c.Write(seqDatagram(seq, 16)) },
				func() uint64 { return r.Stats().Up.Received }, nil, nil)
			waitFor(t, "all datagrams", func() bool { return sink.count() == n })
			got := sink.got()
			inversions := 0
			for i := 1; i < len(got); i++ {
				if got[i] < got[i-1] {
					inversions++
				}
			}
			t.Logf("%d datagrams, %d arrived after a later one", n, inversions)
			if !reorder && inversions != 0 {
				t.Errorf("%d datagrams overtook others without Reorder; first 20 arrivals %v", inversions, got[:20])
			}
			if reorder && inversions == 0 {
				t.Error("with Reorder and 30 ms of jitter, nothing was reordered")
			}
		})
	}
}

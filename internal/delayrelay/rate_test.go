package delayrelay_test

import (
	"testing"
	"time"

	"github.com/tether-iot/tether/internal/delayrelay"
)

// TestRateAndQueueOnSockets sends a burst of 10 datagrams of 1000 bytes,
// back to back, through a relay whose up link is 80 kbit/s (100 ms a
// datagram) with a queue of 3000 bytes. The arithmetic is
// TestLinkArithmetic's; here only what holds on any machine is checked:
// the k-th datagram to arrive does so no sooner than k+1 airtimes after the
// burst began; at least 4 get through (one on the wire and three queued,
// however fast the burst came); every other one is counted dropped and
// none arrives.
func TestRateAndQueueOnSockets(t *testing.T) {
	const n, size, airtime = 10, 1000, 100 * time.Millisecond
	srv := listen(t)
	type arrival struct {
		seq uint64
		at  time.Time
	}
	got := make(chan arrival, n)
	go func() {
		buf := make([]byte, 2048)
		for {
			m, err := srv.Read(buf)
			if err != nil {
				return
			}
			if m == size {
				got <- arrival{uint64(buf[7]), time.Now()}
			}
		}
	}()
	r := start(t, delayrelay.Config{Server: addrOf(srv), Up: delayrelay.Link{Rate: 80000, Queue: 3000}})
	c := dial(t, r)
	began := time.Now()
	for i := range n {
		if _, err := c.Write(seqDatagram(uint64(i), size)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the relay to read the burst", func() bool { return r.Stats().Up.Received == n })
	st := settled(t, r)
	waitFor(t, "every datagram to be sent on or dropped", func() bool {
		st = r.Stats()
		return st.Up.Forwarded+st.Up.Dropped == n && st.Up.Queued == 0
	})
	if st.Up.Forwarded < 4 {
		t.Errorf("%d forwarded, want at least 4 (one on the wire, three in 3000 bytes)", st.Up.Forwarded)
	}
	if st.Up.ForwardedBytes != st.Up.Forwarded*size {
		t.Errorf("%d bytes forwarded in %d datagrams of %d", st.Up.ForwardedBytes, st.Up.Forwarded, size)
	}
	last := uint64(0)
	for k := range int(st.Up.Forwarded) {
		var a arrival
		select {
		case a = <-got:
		case <-time.After(wait):
			t.Fatalf("datagram %d of %d never arrived", k+1, st.Up.Forwarded)
		}
		if took, least := a.at.Sub(began), time.Duration(k+1)*airtime; took < least {
			t.Errorf("datagram %d arrived %v after the burst began, before %v", k+1, took, least)
		}
		if k > 0 && a.seq <= last {
			t.Errorf("datagram %d arrived after %d", a.seq, last)
		}
		last = a.seq
	}
	select {
	case a := <-got:
		t.Errorf("datagram %d arrived, beyond the %d counted forwarded", a.seq, st.Up.Forwarded)
	case <-time.After(2 * airtime):
	}
	t.Logf("%d of %d through, %d dropped by the queue", st.Up.Forwarded, n, st.Up.Dropped)
}

package delayrelay_test

import (
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tether-iot/tether/internal/delayrelay"
)

// wait is the bound of every wait in these tests: long enough for a slow
// machine under -race, short enough to fail rather than hang.
const wait = 20 * time.Second

// waitFor polls cond until it holds, failing the test after wait.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for %s", wait, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// start starts a relay to server and closes it at the end of the test.
func start(t testing.TB, cfg delayrelay.Config) *delayrelay.Relay {
	t.Helper()
	r, err := delayrelay.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// listen opens a UDP socket on 127.0.0.1 with a large receive buffer (as
// large as the kernel allows), closed at the end of the test.
func listen(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadBuffer(4 << 20)
	t.Cleanup(func() { c.Close() })
	return c
}

// dial opens a client socket connected to the relay.
func dial(t testing.TB, r *delayrelay.Relay) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(r.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadBuffer(4 << 20)
	t.Cleanup(func() { c.Close() })
	return c
}

func addrOf(c *net.UDPConn) string { return c.LocalAddr().String() }

// echo answers every datagram on c with itself, until the test ends; the
// sources it saw are returned by the function it returns.
func echo(t testing.TB, c *net.UDPConn, stamp func(b []byte)) func() []netip.AddrPort {
	t.Helper()
	var (
		mu      sync.Mutex
		sources []netip.AddrPort
		wg      sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 65536)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if stamp != nil {
				stamp(buf[:n])
			}
			mu.Lock()
			if !slices.Contains(sources, from) {
				sources = append(sources, from)
			}
			mu.Unlock()
			c.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	t.Cleanup(func() { c.Close(); wg.Wait() })
	return func() []netip.AddrPort {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(sources)
	}
}

// collector records the sequence numbers (first 8 bytes) of the datagrams
// arriving on c, in arrival order.
type collector struct {
	mu   sync.Mutex
	seqs []uint64
	wg   sync.WaitGroup
}

func collect(t testing.TB, c *net.UDPConn) *collector {
	t.Helper()
	col := &collector{}
	col.wg.Add(1)
	go func() {
		defer col.wg.Done()
		buf := make([]byte, 65536)
		for {
			n, _, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if n < 8 {
				continue
			}
			col.mu.Lock()
			col.seqs = append(col.seqs, binary.BigEndian.Uint64(buf))
			col.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.Close(); col.wg.Wait() })
	return col
}

func (col *collector) got() []uint64 {
	col.mu.Lock()
	defer col.mu.Unlock()
	return slices.Clone(col.seqs)
}

func (col *collector) count() int {
	col.mu.Lock()
	defer col.mu.Unlock()
	return len(col.seqs)
}

// seqDatagram is a datagram of size bytes (at least 8) carrying seq.
func seqDatagram(seq uint64, size int) []byte {
	b := make([]byte, max(size, 8))
	binary.BigEndian.PutUint64(b, seq)
	return b
}

// burst is how many datagrams are sent before waiting for the relay to
// have read them: far below what a loopback socket buffer holds, so the
// kernel drops nothing and every count is the relay's doing.
const burst = 50

// pump sends n datagrams (seq 0..n-1) with send, burst by burst; after each
// burst it waits until the relay has read them (received) and, when sink is
// set, until the sink has everything the relay forwarded (forwarded).
func pump(t testing.TB, n int, send func(seq uint64), received func() uint64, forwarded func() uint64, sink *collector) {
	t.Helper()
	for i := 0; i < n; {
		for j := 0; j < burst && i < n; j, i = j+1, i+1 {
			send(uint64(i))
		}
		waitFor(t, "the relay to read the burst", func() bool { return received() == uint64(i) })
		if sink != nil {
			waitFor(t, "the burst to arrive", func() bool { return uint64(sink.count()) == forwarded() })
		}
	}
}

// settled waits until every datagram the relay has read is accounted for
// (forwarded, dropped or waiting: a datagram being sent is none of these
// yet, so a count may lag behind what a peer has already received), and
// returns the stats then.
func settled(t testing.TB, r *delayrelay.Relay) delayrelay.Stats {
	t.Helper()
	var st delayrelay.Stats
	waitFor(t, "the relay's counts to settle", func() bool {
		st = r.Stats()
		up, down := st.Up, st.Down
		return up.Received == up.Forwarded+up.Lost+up.Dropped+up.Overflow+up.Failed+uint64(up.Queued)+st.Refused &&
			down.Received == down.Forwarded+down.Lost+down.Dropped+down.Overflow+down.Failed+uint64(down.Queued)
	})
	return st
}

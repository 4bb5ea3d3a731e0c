package client_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/client"
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/sock/simnet"
)

// narrowLink is the server's side of a narrow link: what the server
// sends leaves at rate bytes a second, one datagram after the other,
// through a drop-tail queue of queue bytes (a datagram that does not fit
// is dropped, as the delay relay's Link.Queue does); simnet then adds
// the one-way delay. It notes when each block left the queue and which
// it dropped.
type narrowLink struct {
	pc    net.PacketConn
	rate  int
	queue int

	mu      sync.Mutex
	waiting int // bytes queued
	free    time.Time
	dropped []uint32
	left    []time.Time // when each datagram left, in order
	wg      sync.WaitGroup
}

func (l *narrowLink) send(b []byte, to net.Addr, num uint32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.waiting+len(b) > l.queue {
		l.dropped = append(l.dropped, num)
		return
	}
	l.waiting += len(b)
	start := time.Now()
	if start.Before(l.free) {
		start = l.free
	}
	l.free = start.Add(time.Duration(len(b)) * time.Second / time.Duration(l.rate))
	at := l.free
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		time.Sleep(time.Until(at))
		l.mu.Lock()
		l.waiting -= len(b)
		l.left = append(l.left, time.Now())
		l.mu.Unlock()
		l.pc.WriteTo(b, to)
	}()
}

// startNarrow serves what handle answers through a narrow link.
func startNarrow(t *testing.T, h *simnet.Host, handle func(*coap.Message, net.Addr) [][]byte, rate, queue int) *narrowLink {
	t.Helper()
	pc, err := h.ListenPacket("udp", ":5683")
	if err != nil {
		t.Fatal(err)
	}
	l := &narrowLink{pc: pc, rate: rate, queue: queue}
	done := serveFake(pc, handle, func(out []byte, to net.Addr) {
		var r coap.Message
		coap.DecodeUDP(out, &r)
		v, _ := coap.Uint(r.Options, coap.QBlock2)
		b, _ := coap.ParseBlock(v, false)
		l.send(out, to, b.Num)
	})
	t.Cleanup(func() { pc.Close(); <-done; l.wg.Wait() })
	return l
}

// qgetNarrow downloads size bytes from a qserver behind a narrow link of
// 8000 B/s (64 kbit/s) and 300 ms one way, with a drop-tail queue of
// queue bytes; the server leaves out the blocks in drop (each that many
// times). It returns the requests the server saw, when the client sent
// each (the server reads it 300 ms later: a datagram crosses the client's
// link and the server's, 150 ms each), when each block reached the
// client, and the link.
func qgetNarrow(t *testing.T, size, queue int, drop map[uint32]int) ([]string, []time.Duration, map[uint32]time.Duration, *narrowLink) {
	_, body := testrig.RandomFile(t, "x", size, 3)
	r := newSimRig(t, 1, "")
	r.dev.SetLink(simnet.LinkConfig{Delay: 150 * time.Millisecond})
	r.srv.SetLink(simnet.LinkConfig{Delay: 150 * time.Millisecond})
	start := time.Now()
	srv := &qserver{t: t, body: body, start: start, drop: drop}
	l := startNarrow(t, r.srv, srv.handle, 8000, queue)
	c := r.dial(t, "udp", &client.Config{Rand: rand.New(rand.NewPCG(1, 2))})
	got := make([]byte, size)
	arrived := map[uint32]time.Duration{}
	err := c.GetBlocks(context.Background(), client.BlockRequest{Path: "x", QBlock: true, Unordered: true}, func(ch client.Chunk) error {
		copy(got[ch.Offset:], ch.Payload)
		arrived[ch.Block.Num] = time.Since(start)
		return nil
	})
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("%v, or the bytes differ", err)
	}
	reqs := srv.requests()
	sent := make([]time.Duration, len(reqs))
	for i, line := range reqs {
		d, _ := time.ParseDuration(strings.Fields(line)[0])
		sent[i] = d - 300*time.Millisecond // the client's link, then the server's
	}
	return reqs, sent, arrived, l
}

// newBlocks returns, for each request, the blocks it asks for that no
// request before it asked for (M set: the rest of the set of 10).
func newBlocks(reqs []string) [][]uint32 {
	out := make([][]uint32, len(reqs))
	hi := -1
	for i, line := range reqs {
		for _, f := range strings.Fields(line) {
			var n, m, sz int
			if _, err := fmt.Sscanf(f, "QB2:%d/%d/%d", &n, &m, &sz); err != nil {
				continue
			}
			end := n
			if m == 1 {
				end = (n/10+1)*10 - 1
			}
			for b := max(n, hi+1); b <= end; b++ {
				out[i] = append(out[i], uint32(b))
			}
			hi = max(hi, end)
		}
	}
	return out
}

// TestQBlockPipelinesOnANarrowLink: on a link where the rate sets the pace
// (64 kbit/s, 300 ms one way, a queue that takes every burst) the client,
// once the first burst shows the pace, asks for blocks by name as blocks
// come, each request before the block asked just before it has arrived,
// so the link does not stand idle a round trip between sets; nothing is
// dropped and nothing asked for twice.
func TestQBlockPipelinesOnANarrowLink(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reqs, sent, arrived, l := qgetNarrow(t, 60*1024, 64<<10, nil)
		if len(l.dropped) != 0 {
			t.Fatalf("the queue dropped %v", l.dropped)
		}
		fresh := newBlocks(reqs)
		asked := 0
		for i, blocks := range fresh {
			asked += len(blocks)
			if i < 2 || len(blocks) == 0 {
				continue // block 0 alone, then the rest of the first set
			}
			// The burst before this one ends just before its first block.
			before := blocks[0] - 1
			if at, ok := arrived[before]; !ok || sent[i] >= at {
				t.Errorf("request %d (%s) sent at %v, after block %d arrived (%v): the link waits a round trip", i, reqs[i], sent[i], before, at)
			}
		}
		if asked != 60 || len(reqs) != len(fresh) {
			t.Errorf("asked for %d blocks in all, want 60", asked)
		}
		for i, blocks := range fresh {
			if len(blocks) == 0 {
				t.Errorf("request %d (%s) asks for nothing new", i, reqs[i])
			}
		}
		t.Logf("requests:\n\t%s", strings.Join(reqs, "\n\t"))
	})
}

// TestQBlockBurstsShrinkOnTailDrop: behind a queue of 4 KiB (three
// blocks and a bit) the first burst of nine loses its last blocks; from
// then on the client asks for two blocks at most per request, a window of
// them in flight, so the queue drops a few blocks in all (a set of ten a
// burst would lose six of every set), and the body arrives. A request for
// two blocks whose second the queue dropped does not make the client take
// the server for one that answers one block per request.
func TestQBlockBurstsShrinkOnTailDrop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reqs, _, _, l := qgetNarrow(t, 60*1024, 4<<10, nil)
		if len(l.dropped) == 0 || l.dropped[0] > 9 {
			t.Fatalf("the queue dropped %v; want the first burst's tail", l.dropped)
		}
		fresh := newBlocks(reqs)
		smaller := false
		for i, blocks := range fresh[2:] {
			if len(blocks) > 0 && len(blocks) < 9 {
				smaller = true
			}
			if len(blocks) > 8 && i < 2 {
				t.Errorf("request %d (%s): a burst of %d right after the tail drop", i+2, reqs[i+2], len(blocks))
			}
		}
		if !smaller {
			t.Errorf("no smaller burst asked for after the tail drop:\n\t%s", strings.Join(reqs, "\n\t"))
		}
		if len(l.dropped) > 12 { // ten a burst: six or more of every set
			t.Errorf("the queue dropped %d blocks (%v): the bursts did not shrink enough", len(l.dropped), l.dropped)
		}
		t.Logf("dropped %v; requests:\n\t%s", l.dropped, strings.Join(reqs, "\n\t"))
	})
}

// TestQBlockWindowOnANarrowLink: asking for blocks as blocks come, the
// client never has more blocks in flight than the window's bound (the
// round trip over the pace, plus two: here 8), never asks for more than
// two new blocks in one request, and a block the link lost is asked for
// again, once, as soon as three blocks asked after it have come, not
// when a timer says so: the link does not stand idle for it.
func TestQBlockWindowOnANarrowLink(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reqs, sent, arrived, l := qgetNarrow(t, 60*1024, 64<<10, map[uint32]int{30: 1})
		if len(l.dropped) != 0 {
			t.Fatalf("the queue dropped %v", l.dropped)
		}
		fresh := newBlocks(reqs)
		var askedAt []time.Duration // when each block was first asked for
		for i, blocks := range fresh {
			for range blocks {
				askedAt = append(askedAt, sent[i])
			}
			if i >= 2 && len(blocks) > 2 {
				t.Errorf("request %d (%s) asks for %d new blocks", i, reqs[i], len(blocks))
			}
		}
		for i := 2; i < len(reqs); i++ {
			flying := 0
			for n, at := range askedAt {
				if at <= sent[i] && (arrived[uint32(n)] > sent[i] || n == 30) {
					flying++
				}
			}
			if flying > 8+1 { // the lost block counts until it is asked again
				t.Errorf("request %d (%s): %d blocks in flight", i, reqs[i], flying)
			}
		}
		again := -1
		for i, line := range reqs {
			if i > 0 && strings.Contains(line, "QB2:30/0/") && !slices.Contains(fresh[i], 30) {
				if again >= 0 {
					t.Errorf("block 30 asked for again twice: requests %d and %d", again, i)
				}
				again = i
			}
		}
		if again < 0 {
			t.Fatalf("block 30 never asked for again:\n\t%s", strings.Join(reqs, "\n\t"))
		}
		if d := sent[again] - arrived[33]; d < 0 || d > time.Millisecond {
			t.Errorf("block 30 asked for again at %v, not as the third block asked after it came (33 at %v)", sent[again], arrived[33])
		}
		t.Logf("requests:\n\t%s", strings.Join(reqs, "\n\t"))
	})
}

package peer_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/peer"
)

// pair is two Peers joined in memory: what one sends goes to the other's
// inbox, and a reader goroutine per Peer hands its inbox to Input, as a
// socket's reader would. fate, when set, says how many copies of a datagram
// arrive: 0 (lost), 1, or 2 (duplicated).
type pair struct {
	a, b     *peer.Peer
	inA, inB chan []byte
	free     chan []byte // datagram buffers, so the link does not allocate
	fate     func(from byte, b []byte) int
	readers  sync.WaitGroup
}

func newPair(cfgA, cfgB *peer.Config, fate func(byte, []byte) int) *pair {
	p := &pair{
		inA:  make(chan []byte, 4096),
		inB:  make(chan []byte, 4096),
		free: make(chan []byte, 64),
		fate: fate,
	}
	p.a = peer.New(p.sender('A', p.inB), cfgA)
	p.b = peer.New(p.sender('B', p.inA), cfgB)
	p.readers.Go(func() { p.read(p.a, p.inA) })
	p.readers.Go(func() { p.read(p.b, p.inB) })
	return p
}

func (p *pair) sender(from byte, to chan<- []byte) func([]byte) error {
	return func(b []byte) error {
		n := 1
		if p.fate != nil {
			n = p.fate(from, b)
		}
		for range n {
			var buf []byte
			select {
			case buf = <-p.free:
			default:
				buf = make([]byte, 0, 1280)
			}
			to <- append(buf[:0], b...)
		}
		return nil
	}
}

func (p *pair) read(pe *peer.Peer, in <-chan []byte) {
	for b := range in {
		pe.Input(b)
		select {
		case p.free <- b:
		default:
		}
	}
}

// close ends both Peers and their readers. Nothing may be sending: every
// exchange has ended and, in a bubble, the links are idle.
func (p *pair) close() {
	p.a.Close()
	p.b.Close()
	close(p.inA)
	close(p.inB)
	p.readers.Wait()
}

// lossy decides the fate of each datagram from a seeded hash of its
// direction, header and token and of how many times that same message was
// sent before: the same run after run, whichever goroutine sends first, as
// message IDs and tokens are drawn from seeded generators.
type lossy struct {
	seed       uint64
	loss, dup  float64
	mu         sync.Mutex
	seen       map[string]uint64
	lost, dups int
}

func (l *lossy) fate(from byte, b []byte) int {
	tkl := 0
	if len(b) >= 4 {
		tkl = min(int(b[0]&15), len(b)-4)
	}
	key := append([]byte{from}, b[:min(len(b), 4+tkl)]...)
	l.mu.Lock()
	defer l.mu.Unlock()
	k := l.seen[string(key)]
	l.seen[string(key)]++
	draw := func(salt byte) float64 {
		h := fnv.New64a()
		var n [17]byte
		binary.BigEndian.PutUint64(n[:], l.seed)
		binary.BigEndian.PutUint64(n[8:], k)
		n[16] = salt
		h.Write(n[:])
		h.Write(key)
		return float64(h.Sum64()>>11) / (1 << 53)
	}
	switch {
	case draw(0) < l.loss:
		l.lost++
		return 0
	case draw(1) < l.dup:
		l.dups++
		return 2
	}
	return 1
}

// counting is a Handler that answers its side's name and the request's
// payload, and counts the calls per payload.
type counting struct {
	name  string
	mu    sync.Mutex
	calls map[string]int
}

func (c *counting) handle(req *coap.Message) coap.Message {
	c.mu.Lock()
	c.calls[string(req.Payload)]++
	c.mu.Unlock()
	return coap.Message{Code: coap.Content, Payload: fmt.Appendf(nil, "%s:%s", c.name, req.Payload)}
}

// TestBothWaysLossy: both Peers send N requests at once over a link that
// loses 30% of datagrams and duplicates 10% of the rest; every request is
// answered right, and every handler runs once per request.
//
// With MAX_RETRANSMIT 12 a request fails only if 13 attempts in a row lose
// the request or its answer (0.51^13, about 1.6e-4), so a seed fails with
// about 1% probability; the outcome is a function of the seed, and the ones
// below all pass.
func TestBothWaysLossy(t *testing.T) {
	const n = 25 // under cache.go's 32, so no retransmission outlives its cached answer
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				link := &lossy{seed: seed, loss: 0.3, dup: 0.1, seen: map[string]uint64{}}
				params := coap.DefaultParams
				params.MaxRetransmit = 12
				ha := &counting{name: "A", calls: map[string]int{}}
				hb := &counting{name: "B", calls: map[string]int{}}
				pr := newPair(
					&peer.Config{Handler: ha.handle, Params: params, Rand: rand.New(rand.NewPCG(seed, 'A'))},
					&peer.Config{Handler: hb.handle, Params: params, Rand: rand.New(rand.NewPCG(seed, 'B'))},
					link.fate)

				type outcome struct {
					want string
					resp *coap.Message
					err  error
				}
				results := make([]outcome, 2*n)
				var wg sync.WaitGroup
				for i := range 2 * n {
					from, to, other := pr.a, "a", "B"
					if i >= n {
						from, to, other = pr.b, "b", "A"
					}
					payload := fmt.Sprintf("%s%d", to, i%n)
					results[i].want = other + ":" + payload
					wg.Go(func() {
						req := &coap.Message{Code: coap.POST, Payload: []byte(payload)}
						results[i].resp, results[i].err = from.Do(context.Background(), req)
					})
				}
				wg.Wait()
				synctest.Wait() // the readers have answered the last duplicates
				pr.close()
				for _, r := range results {
					switch {
					case r.err != nil:
						t.Errorf("request for %q: %v", r.want, r.err)
					case string(r.resp.Payload) != r.want || r.resp.Code != coap.Content:
						t.Errorf("request for %q answered %v %q", r.want, r.resp.Code, r.resp.Payload)
					}
				}
				for _, h := range []*counting{ha, hb} {
					for payload, calls := range h.calls {
						if calls != 1 {
							t.Errorf("handler %s ran %d times for %q", h.name, calls, payload)
						}
					}
					if len(h.calls) != n {
						t.Errorf("handler %s ran for %d requests; want %d", h.name, len(h.calls), n)
					}
				}
				sa, sb := pr.a.Stats(), pr.b.Stats()
				t.Logf("lost %d, duplicated %d; A %+v; B %+v", link.lost, link.dups, sa, sb)
				// The rig did what it claims: the test ran the paths it is about.
				if link.lost == 0 || link.dups == 0 || sa.Retransmissions == 0 || sb.Retransmissions == 0 || sa.Duplicates == 0 || sb.Duplicates == 0 {
					t.Errorf("no loss, duplication, retransmission or duplicate on some side")
				}
				settled(t, pr.a)
				settled(t, pr.b)
			})
		})
	}
}

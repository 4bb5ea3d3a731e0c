package client_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/client"
	"github.com/tether-iot/tether/coap/fileserver"
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/internal/testrig/coaprig"
	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/simnet"
)

// qserver is a scripted Q-Block2 server for wire-level tests of the
// client: it answers each Q-Block2 option as RFC 9177 4.4 says (M unset:
// that block; M set: that block and the rest of its set of 10), never
// paces sets of its own, and drops the responses listed in drop (block
// number → how many of its sends to drop). It records every request as
// the RFC's figures write them, with the simulated instant.
type qserver struct {
	t     *testing.T
	body  []byte
	start time.Time

	mu      sync.Mutex
	drop    map[uint32]int
	silent  bool   // answer nothing
	breakAt uint32 // from this block on, break the rules as how says
	how     string
	echo    bool // serve bursts only to requests with the Echo value 0xec (RFC 9175)
	log     []string
	mid     int32
}

func (s *qserver) handle(req *coap.Message, _ net.Addr) [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	var line strings.Builder
	fmt.Fprintf(&line, "%v %s GET", time.Since(s.start), [...]string{"CON", "NON", "ACK", "RST"}[req.Type&3])
	var asked []coap.Block
	for _, o := range req.Options {
		if o.ID == coap.QBlock2 || o.ID == coap.Block2 {
			var v uint32
			for _, c := range o.Value {
				v = v<<8 | uint32(c)
			}
			blk, _ := coap.ParseBlock(v, false)
			name := map[coap.OptionID]string{coap.QBlock2: "QB2", coap.Block2: "B2"}[o.ID]
			fmt.Fprintf(&line, " %s:%v", name, blk)
			asked = append(asked, blk)
		}
	}
	e, hasEcho := coap.Bytes(req.Options, coap.Echo)
	if hasEcho {
		line.WriteString(" Echo")
	}
	s.log = append(s.log, line.String())
	if s.silent {
		return nil
	}
	if s.echo && req.Type == coap.NonConfirmable && (!hasEcho || string(e) != "\xec") {
		s.mid++
		return [][]byte{encode(s.t, coap.NonConfirmable, coap.Unauthorized, s.mid, req.Token, nil, coap.Option{ID: coap.Echo, Value: []byte{0xec}})}
	}
	var out [][]byte
	n := uint32((len(s.body) + 1023) / 1024)
	sent := map[uint32]bool{}
	for _, a := range asked {
		end := a.Num + 1
		if a.More {
			end = (a.Num/10 + 1) * 10
		}
		for b := a.Num; b < end && b < n; b++ {
			if sent[b] {
				continue
			}
			sent[b] = true
			if s.drop[b] > 0 {
				s.drop[b]--
				continue
			}
			typ, mid := coap.NonConfirmable, s.mid
			s.mid++
			if req.Type == coap.Confirmable {
				typ, mid = coap.Acknowledgement, req.MessageID
			}
			off := int(b) * 1024
			payload := s.body[off:min(off+1024, len(s.body))]
			blk := coap.Block{Num: b, More: off+len(payload) < len(s.body), SZX: 6}
			code, etag, size2 := coap.Content, []byte{1, 2, 3, 4}, uint32(len(s.body))
			if s.how != "" && b >= s.breakAt && req.Type != coap.Confirmable {
				switch s.how {
				case "etag":
					etag = []byte{9}
				case "no-etag":
					etag = nil
				case "large":
					payload = append(append([]byte(nil), payload...), 0)
				case "short":
					payload = payload[:len(payload)-1]
				case "size2":
					size2 -= 10
				case "szx":
					blk.Num, blk.SZX, payload = blk.Num*2, 5, payload[:512]
				case "early-end":
					blk.More = false
				case "404":
					code, payload = coap.NotFound, nil
				}
			}
			opts := []coap.Option{uintOpt(coap.QBlock2, blk.Value()), uintOpt(coap.Size2, size2)}
			if etag != nil {
				opts = append(opts, coap.Option{ID: coap.ETag, Value: etag})
			}
			out = append(out, encode(s.t, typ, code, mid, req.Token, payload, opts...))
			if req.Type == coap.Confirmable {
				return out // one block, piggybacked
			}
		}
	}
	return out
}

func (s *qserver) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.log
	s.log = nil
	return out
}

// qget runs a Q-Block2 GET of x from a qserver and returns the body, the
// requests the server saw and the error.
func qget(t *testing.T, size int, drop map[uint32]int, silentAfter int) ([]byte, []byte, []string, error) {
	_, body := testrig.RandomFile(t, "x", size, 3)
	r := newSimRig(t, 1, "")
	r.dev.SetLink(simnet.LinkConfig{Delay: 50 * time.Millisecond}) // a 100 ms round trip
	srv := &qserver{t: t, body: body, start: time.Now(), drop: drop}
	startFake(t, r.srv, func(req *coap.Message, from net.Addr) [][]byte {
		out := srv.handle(req, from)
		if silentAfter > 0 {
			silentAfter--
			srv.silent = silentAfter == 0
		}
		return out
	})
	c := r.dial(t, "udp", &client.Config{Rand: rand.New(rand.NewPCG(1, 2))})
	got := make([]byte, 0, size)
	err := c.GetBlocks(context.Background(), client.BlockRequest{Path: "x", QBlock: true}, func(ch client.Chunk) error {
		if ch.Offset != int64(len(got)) {
			t.Fatalf("chunk at %d, want %d", ch.Offset, len(got))
		}
		got = append(got, ch.Payload...)
		return nil
	})
	return body, got, srv.requests(), err
}

func sameLines(t *testing.T, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("the client sent\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// TestQBlockRequests: the requests of a Q-Block2 transfer, exactly
// (RFC 9177 10.2, without Observe). The first block alone, confirmable,
// tests the server; then the rest of the first set, and a Continue for each
// next set as soon as a set has arrived whole.
func TestQBlockRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		body, got, reqs, err := qget(t, 25*1024-100, nil, 0)
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("%v, %d bytes of %d", err, len(got), len(body))
		}
		sameLines(t, reqs, // the instants the server reads them, 50 ms after they are sent
			"50ms CON GET QB2:0/0/1024",
			"150ms NON GET QB2:1/1/1024",
			"250ms NON GET QB2:10/1/1024",
			"350ms NON GET QB2:20/1/1024")
	})
}

// TestQBlockEcho: a server that serves bursts only to an address that has
// echoed its Echo value (RFC 9175; tether's file server gives it with the
// first block, this one only in a 4.01) gets each request asked again, once,
// with the value, and every later request carries it.
func TestQBlockEcho(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, body := testrig.RandomFile(t, "x", 25*1024, 3)
		r := newSimRig(t, 1, "")
		r.dev.SetLink(simnet.LinkConfig{Delay: 50 * time.Millisecond})
		srv := &qserver{t: t, body: body, start: time.Now(), echo: true}
		startFake(t, r.srv, srv.handle)
		c := r.dial(t, "udp", nil)
		_, _, err := download(context.Background(), c, client.BlockRequest{Path: "x", QBlock: true})
		if err != nil {
			t.Fatal(err)
		}
		sameLines(t, srv.requests(),
			"50ms CON GET QB2:0/0/1024",
			"150ms NON GET QB2:1/1/1024",
			"250ms NON GET QB2:1/1/1024 Echo",
			"350ms NON GET QB2:10/1/1024 Echo",
			"450ms NON GET QB2:20/1/1024 Echo")
	})
}

// TestQBlockRecovery: RFC 9177 10.2.3 and 10.2.4, on a 100 ms round
// trip. Blocks 3 and 5 are lost in the first set: the set's last block
// shows the gap; once the missing blocks are overdue (a round trip and a
// quarter, or the RFC 6298 bound, after they were asked for: blocks of a
// burst may arrive out of order) they are asked for with the Continue, in
// one request, as in the RFC's figure. Block 3 is lost again and asked for
// again, twice the wait later. The last block of the second set (19) is
// lost: no later block shows it, but the burst's other blocks came at one
// instant, so a quarter round trip after them (the srtt is 150 ms by
// then) it is overdue, and asked for with the Continue for the last set.
func TestQBlockRecovery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		body, got, reqs, err := qget(t, 30*1024, map[uint32]int{3: 2, 5: 1, 19: 1}, 0)
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("%v, %d bytes of %d", err, len(got), len(body))
		}
		sameLines(t, reqs,
			"50ms CON GET QB2:0/0/1024",
			"150ms NON GET QB2:1/1/1024",
			"400ms NON GET QB2:3/0/1024 QB2:5/0/1024 QB2:10/1/1024", // asked for at 100 ms, overdue at 350 ms
			"612.5ms NON GET QB2:19/0/1024 QB2:20/1/1024",           // 10-18 came at 450 ms
			"768.75ms NON GET QB2:3/0/1024")
	})
}

// TestQBlockGivesUp: a server that goes silent after the first set (block
// 7 lost) is asked for block 7 (with the Continue) when it is overdue and
// once more, with the Continue that brought nothing, twice the wait later; then, with nothing arriving, NON_RECEIVE_TIMEOUT (4 s) after
// that request, and after 8, 16 and 32 s (doubling): NON_MAX_RETRANSMIT
// requests. 64 s after the last, the transfer ends with a timeout, having
// delivered what came before the gap.
func TestQBlockGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		body, got, reqs, err := qget(t, 30*1024, map[uint32]int{7: 1}, 2)
		if !errors.Is(err, sock.ErrTimeout) {
			t.Fatalf("%v, want a timeout", err)
		}
		if took := time.Since(start); took != 850*time.Millisecond+124*time.Second {
			t.Errorf("gave up after %v, want 124.85 s (the last request at 850 ms, then 4+8+16+32+64 s)", took)
		}
		if !bytes.Equal(got, body[:7*1024]) {
			t.Errorf("delivered %d bytes, want the 7 blocks before the gap", len(got))
		}
		sameLines(t, reqs,
			"50ms CON GET QB2:0/0/1024",
			"150ms NON GET QB2:1/1/1024",
			"400ms NON GET QB2:7/0/1024 QB2:10/1/1024",
			"900ms NON GET QB2:7/0/1024 QB2:10/1/1024", // the Continue brought nothing either: again
			"4.9s NON GET QB2:7/0/1024 QB2:10/1/1024",
			"12.9s NON GET QB2:7/0/1024 QB2:10/1/1024",
			"28.9s NON GET QB2:7/0/1024 QB2:10/1/1024",
			"1m0.9s NON GET QB2:7/0/1024 QB2:10/1/1024")
	})
}

// TestQBlockKeepsTheRules: in a Q-Block2 transfer every block is checked
// as in lockstep: an ETag that changes or disappears, a block larger or
// smaller than the transfer's, a Size2 that changes, a block size that
// changes, a body that ends before Size2 says, an error code: each ends
// the transfer with its error, having delivered only good blocks.
func TestQBlockKeepsTheRules(t *testing.T) {
	for how, want := range map[string]error{
		"etag":      client.ErrETagChanged,
		"no-etag":   client.ErrETagChanged,
		"large":     client.ErrBlockSize,
		"short":     client.ErrBlockSize,
		"size2":     client.ErrSizeMismatch,
		"szx":       client.ErrBlockSize,
		"early-end": client.ErrSizeMismatch,
		"404":       nil, // a *client.ResponseError
	} {
		synctest.Test(t, func(t *testing.T) {
			_, body := testrig.RandomFile(t, "x", 30*1024, 3)
			r := newSimRig(t, 1, "")
			srv := &qserver{t: t, body: body, start: time.Now(), breakAt: 14, how: how}
			startFake(t, r.srv, srv.handle)
			c := r.dial(t, "udp", nil)
			var got []byte
			err := c.GetBlocks(context.Background(), client.BlockRequest{Path: "x", QBlock: true}, func(ch client.Chunk) error {
				if !bytes.Equal(ch.Payload, body[ch.Offset:ch.Offset+int64(len(ch.Payload))]) {
					t.Fatalf("%s: bad bytes delivered at %d", how, ch.Offset)
				}
				got = append(got, ch.Payload...)
				return nil
			})
			var re *client.ResponseError
			switch {
			case want == nil && !errors.As(err, &re):
				t.Fatalf("%s: %v, want a response error", how, err)
			case want != nil && !errors.Is(err, want):
				t.Fatalf("%s: %v, want %v", how, err, want)
			case len(got) > 14*1024:
				t.Fatalf("%s: %d bytes delivered, past the first broken block", how, len(got))
			}
		})
	}
}

// TestQBlockFallsBack: a server that does not do Q-Block2 (4.02 to the
// first request) is asked with Block2, in lockstep, from the same block.
func TestQBlockFallsBack(t *testing.T) {
	dir, data := testrig.RandomFile(t, "fw.bin", 5000, 8)
	synctest.Test(t, func(t *testing.T) {
		r := newSimRig(t, 1, "")
		startNoQBlockServer(t, r, dir)
		c := r.dial(t, "udp", nil)
		for _, offset := range []int64{0, 1500} {
			sum, _, err := download(context.Background(), c, client.BlockRequest{Path: "fw.bin", QBlock: true, Offset: offset})
			if err != nil || sum != sha256.Sum256(data[offset:]) {
				t.Fatalf("from %d: %v, or the bytes differ", offset, err)
			}
		}
	})
}

// TestQBlockOverHostileLinks: Q-Block2 against tether's file server over
// links that lose, duplicate and reorder delivers exactly the file, in
// order or, with Unordered, each byte once.
func TestQBlockOverHostileLinks(t *testing.T) {
	dir, data := testrig.RandomFile(t, "fw.bin", 300*1024, 5)
	want := sha256.Sum256(data)
	for _, link := range hostileLinks {
		for _, unordered := range []bool{false, true} {
			synctest.Test(t, func(t *testing.T) {
				r := newSimRig(t, 7, dir)
				r.dev.SetLink(link)
				c := r.dial(t, "udp", &client.Config{Rand: rand.New(rand.NewPCG(1, 2))})
				got := make([]byte, len(data))
				seen := make([]bool, len(data))
				var offset int64
				for resumes := 0; ; resumes++ {
					err := c.GetBlocks(context.Background(), client.BlockRequest{Path: "fw.bin", Offset: offset, QBlock: true, Unordered: unordered,
						Have: func(off int64, n int) bool { return seen[off] }},
						func(ch client.Chunk) error {
							if !unordered && ch.Offset != offset {
								t.Fatalf("chunk at %d, want %d", ch.Offset, offset)
							}
							for i := range ch.Payload {
								if seen[ch.Offset+int64(i)] {
									t.Fatalf("byte %d delivered twice", ch.Offset+int64(i))
								}
								seen[ch.Offset+int64(i)] = true
							}
							copy(got[ch.Offset:], ch.Payload)
							for offset < int64(len(seen)) && seen[offset] {
								offset++
							}
							return nil
						})
					if err == nil {
						break
					}
					if !errors.Is(err, sock.ErrTimeout) || resumes > 20 {
						t.Fatalf("after %d resumes at %d: %v", resumes, offset, err)
					}
				}
				if sha256.Sum256(got) != want || offset != int64(len(data)) {
					t.Fatalf("link %+v, unordered %v: the bytes differ", link, unordered)
				}
			})
		}
	}
}

// startNoQBlockServer serves dir on the rig's server, UDP port 5683, with
// Q-Block2 off.
func startNoQBlockServer(t *testing.T, r simRig, dir string) {
	t.Helper()
	pc, err := r.srv.ListenPacket("udp", ":5683")
	if err != nil {
		t.Fatal(err)
	}
	coaprig.Serve(t, dir, &fileserver.Options{NoQBlock: true}, pc, nil)
}

// TestThroughput compares, in simulated time (so the figures are exact),
// 1 MiB in 1024-byte blocks from tether's file server in lockstep Block2,
// with a window of 10 Block2 requests, and with Q-Block2 (bursts of
// MAX_PAYLOADS 10), at 100 ms and 600 ms round trips, with 0%, 1% and 10%
// loss each way. The figures go to the log (the README has them). The
// test checks the SHA-256 of every transfer, and that the window and
// Q-Block2 are each at least 9x lockstep without loss, 6x with 1% (a lost
// block is asked for as soon as the gap shows: at the end of its set, with
// the Continue, for Q-Block2; once later requests are answered, for the
// window), and faster with 10%. With loss the figures vary a little from
// run to run, since which datagrams are lost depends on the order in
// which the simulated network serves datagrams sent at one instant.
func TestThroughput(t *testing.T) {
	if testing.Short() {
		t.Skip("1 MiB transfers in lockstep at 600 ms round trips: seconds of real time")
	}
	dir, data := testrig.RandomFile(t, "fw.bin", 1<<20, 11)
	want := sha256.Sum256(data)
	for _, rtt := range []time.Duration{100 * time.Millisecond, 600 * time.Millisecond} {
		for _, loss := range []float64{0, 0.01, 0.1} {
			var took [3]time.Duration
			for i, req := range []client.BlockRequest{{}, {Window: 10}, {QBlock: true}} {
				synctest.Test(t, func(t *testing.T) {
					r := newSimRig(t, 3, dir)
					r.dev.SetLink(simnet.LinkConfig{Delay: rtt / 2, Loss: loss})
					c := r.dial(t, "udp", &client.Config{Rand: rand.New(rand.NewPCG(4, 5))})
					sum, d := fetchWith(t, c, req)
					if sum != want {
						t.Fatal("SHA-256 differs")
					}
					took[i] = d
				})
			}
			window, qblock := float64(took[0])/float64(took[1]), float64(took[0])/float64(took[2])
			t.Logf("RTT %v, loss %2.0f%% each way: lockstep %8v, window 10 %8v (%4.1fx), Q-Block2 %8v (%4.1fx)", rtt, loss*100,
				took[0].Round(time.Millisecond), took[1].Round(time.Millisecond), window, took[2].Round(time.Millisecond), qblock)
			for name, ratio := range map[string]float64{"window 10": window, "Q-Block2": qblock} {
				if (loss == 0 && ratio < 9) || (loss <= 0.01 && ratio < 6) || ratio <= 1 {
					t.Errorf("RTT %v, loss %v: %s only %.1fx lockstep", rtt, loss, name, ratio)
				}
			}
		}
	}
}

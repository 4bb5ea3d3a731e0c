package client_test

// Hostile-server and hostile-network probes of BlockRequest.Window. Every
// test runs in a synctest bubble on simnet, so times and counts are exact.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/client"
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/simnet"
)

// reqBlock is the Block2 a request asks for.
func reqBlock(m *coap.Message) coap.Block {
	v, _ := coap.Uint(m.Options, coap.Block2)
	blk, _ := coap.ParseBlock(v, false)
	return blk
}

// blockMsg encodes a 2.05 of typ/mid/token carrying block blk of body
// (blk.SZX says the size; More is set from body), with ETag etag (none when
// nil) and Size2 when size2 >= 0.
func blockMsg(t testing.TB, typ coap.Type, mid int32, token []byte, body []byte, blk coap.Block, etag []byte, size2 int64) []byte {
	off := min(int(blk.Offset()), len(body))
	end := min(off+blk.Size(), len(body))
	blk.More = end < len(body)
	var opts []coap.Option
	if etag != nil {
		opts = append(opts, coap.Option{ID: coap.ETag, Value: etag})
	}
	opts = append(opts, uintOpt(coap.Block2, blk.Value()))
	if size2 >= 0 {
		opts = append(opts, uintOpt(coap.Size2, uint32(size2)))
	}
	return encode(t, typ, coap.Content, mid, token, body[off:end], opts...)
}

// collect runs one GetBlocks and returns the bytes, checking that chunks
// follow each other byte for byte.
func collect(t *testing.T, ctx context.Context, c *client.Conn, req client.BlockRequest) ([]byte, error) {
	t.Helper()
	var got []byte
	err := c.GetBlocks(ctx, req, func(ch client.Chunk) error {
		if ch.Offset != req.Offset+int64(len(got)) {
			return fmt.Errorf("chunk at %d, want %d", ch.Offset, req.Offset+int64(len(got)))
		}
		got = append(got, ch.Payload...)
		return nil
	})
	return got, err
}

// D1. A resumed transfer from a byte inside a block, against a server
// that answers the first (lockstep) block with a smaller size than asked,
// so that the first block ends before the wanted byte, and later shrinks
// its blocks again inside the window. The window hands lockstep an
// unaligned st.want; lockstep then asks for a block and rejects the
// server's (correct) answer because its offset is not st.want.
func TestHostileWindowUnalignedResumeThenShrink(t *testing.T) {
	_, body := testrig.RandomFile(t, "x", 8*1024+33, 21)
	for _, offset := range []int64{700, 300, 1000} {
		synctest.Test(t, func(t *testing.T) {
			r := newSimRig(t, 1, "")
			startFake(t, r.srv, func(m *coap.Message, _ net.Addr) [][]byte {
				if m.Code != coap.GET {
					return nil
				}
				blk := reqBlock(m)
				switch {
				case blk.SZX == 6: // 1024 asked: answer 256 (RFC 7959 2.4)
					blk.Num, blk.SZX = blk.Num*4, 4
				case blk.SZX == 4 && blk.Offset() >= 512: // from byte 512 on: 128
					blk.Num, blk.SZX = blk.Num*2, 3
				}
				var size2 int64 = -1
				if _, ok := coap.Uint(m.Options, coap.Size2); ok {
					size2 = int64(len(body))
				}
				return [][]byte{blockMsg(t, coap.Acknowledgement, m.MessageID, m.Token, body, blk, []byte{9}, size2)}
			})
			c := r.dial(t, "udp", nil)
			got, err := collect(t, context.Background(), c, client.BlockRequest{Path: "x", Offset: offset, BlockSize: 1024, Window: 4})
			if err != nil || !bytes.Equal(got, body[offset:]) {
				t.Errorf("from %d, window 4: %v, %d bytes of %d", offset, err, len(got), len(body)-int(offset))
			}
			// The same server in lockstep, as a control.
			got, err = collect(t, context.Background(), c, client.BlockRequest{Path: "x", Offset: offset, BlockSize: 1024})
			if err != nil || !bytes.Equal(got, body[offset:]) {
				t.Errorf("from %d, lockstep (control): %v, %d bytes", offset, err, len(got))
			}
		})
	}
}

// D2. Karn's problem: the gap check takes the round trip of a response
// from the request's last transmission. A response to a block's original
// transmission that arrives just after the block was sent again (by the
// gap check itself) measures a round trip of ~0, and every older request
// then counts as lost: a burst of spurious retransmissions, each charged
// against MAX_RETRANSMIT, on a link that lost nothing.
func TestHostileWindowKarnBurst(t *testing.T) {
	_, body := testrig.RandomFile(t, "x", 60*1024, 22)
	synctest.Test(t, func(t *testing.T) {
		r := newSimRig(t, 1, "")
		r.dev.SetLink(simnet.LinkConfig{Delay: 10 * time.Millisecond}) // 20 ms round trip, no loss
		var (
			mu   sync.Mutex
			held []byte
			seen = map[int32]int{}
			log  []string
		)
		var fake *fakeServer
		fake = startFake(t, r.srv, func(m *coap.Message, from net.Addr) [][]byte {
			if m.Code != coap.GET {
				return nil
			}
			blk := reqBlock(m)
			var size2 int64 = -1
			if _, ok := coap.Uint(m.Options, coap.Size2); ok {
				size2 = int64(len(body))
			}
			resp := blockMsg(t, coap.Acknowledgement, m.MessageID, m.Token, body, blk, []byte{1}, size2)
			mu.Lock()
			defer mu.Unlock()
			seen[m.MessageID]++
			log = append(log, fmt.Sprintf("%v blk %d tx %d", time.Now().Format("05.000"), blk.Num, seen[m.MessageID]))
			switch {
			case blk.Num == 20 && seen[m.MessageID] == 1:
				held = resp // a slow answer, not a lost one
				return nil
			case blk.Num == 23 && seen[m.MessageID] == 1 && held != nil:
				h := held
				go func() { time.Sleep(time.Millisecond); fake.pc.WriteTo(h, from) }()
			case blk.Num > 23 && blk.Num <= 29 && seen[m.MessageID] == 1:
				// a few ms slower than 23: still outstanding when the
				// slow answer to 20 comes
				go func() { time.Sleep(5 * time.Millisecond); fake.pc.WriteTo(resp, from) }()
				return nil
			}
			return [][]byte{resp}
		})
		t.Cleanup(func() { time.Sleep(5 * time.Second) })
		c := r.dial(t, "udp", &client.Config{Rand: rand.New(rand.NewPCG(1, 1))})
		got, err := collect(t, context.Background(), c, client.BlockRequest{Path: "x", BlockSize: 1024, Window: 10})
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("%v, %d bytes", err, len(got))
		}
		st := c.Stats()
		mu.Lock()
		defer mu.Unlock()
		t.Logf("stats %+v; server saw:\n%v", st, log[18:45])
		if st.Retransmissions > 1 {
			t.Errorf("no loss, one slow block: %d retransmissions, want at most 1 (the slow block's); server saw:\n%v", st.Retransmissions, log[18:40])
		}
	})
}

// D3. Pure jitter and reordering, no loss at all: how many gap
// retransmissions fire? Lockstep on the same links sends none.
func TestHostileWindowJitterSpurious(t *testing.T) {
	dir, data := testrig.RandomFile(t, "fw.bin", 256*1024, 23)
	want := sha256.Sum256(data)
	for _, link := range []simnet.LinkConfig{
		{Delay: 20 * time.Millisecond, Jitter: 15 * time.Millisecond},
		{Delay: 20 * time.Millisecond, Jitter: 40 * time.Millisecond},
		{Delay: 20 * time.Millisecond, Jitter: 15 * time.Millisecond, Reorder: 0.2},
		{Delay: 50 * time.Millisecond, Jitter: 100 * time.Millisecond, Reorder: 0.1},
	} {
		var retx [2]uint64
		for i, window := range []int{1, 10} {
			synctest.Test(t, func(t *testing.T) {
				r := newSimRig(t, 31, dir)
				r.dev.SetLink(link)
				c := r.dial(t, "udp", &client.Config{Rand: rand.New(rand.NewPCG(3, 1))})
				if sum, _ := fetch(t, c, window); sum != want {
					t.Fatal("SHA-256 differs")
				}
				if ns := r.n.Stats(); ns.Lost != 0 {
					t.Fatalf("the link lost %d", ns.Lost)
				}
				retx[i] = c.Stats().Retransmissions
			})
		}
		t.Logf("no loss, %+v: lockstep %d retransmissions, window 10 %d (of 256 blocks)", link, retx[0], retx[1])
		if retx[1] > 256/20 { // 5%
			t.Errorf("no loss, delay %v jitter %v reorder %v: window sent %d spurious retransmissions for 256 blocks (lockstep %d)",
				link.Delay, link.Jitter, link.Reorder, retx[1], retx[0])
		}
	}
}

// Held? A server that answers each block out of order (random delays) and
// twice delivers exactly.
func TestHostileWindowOutOfOrderAndTwice(t *testing.T) {
	_, body := testrig.RandomFile(t, "x", 100*1024+5, 24)
	synctest.Test(t, func(t *testing.T) {
		r := newSimRig(t, 1, "")
		rng := rand.New(rand.NewPCG(7, 7))
		var mu sync.Mutex
		var fake *fakeServer
		fake = startFake(t, r.srv, func(m *coap.Message, from net.Addr) [][]byte {
			if m.Code != coap.GET {
				return nil
			}
			var size2 int64 = -1
			if _, ok := coap.Uint(m.Options, coap.Size2); ok {
				size2 = int64(len(body))
			}
			resp := blockMsg(t, coap.Acknowledgement, m.MessageID, m.Token, body, reqBlock(m), []byte{1}, size2)
			mu.Lock()
			d1, d2 := time.Duration(rng.Int64N(int64(300*time.Millisecond))), time.Duration(rng.Int64N(int64(3*time.Second)))
			mu.Unlock()
			go func() { time.Sleep(d1); fake.pc.WriteTo(resp, from) }()
			go func() { time.Sleep(d2); fake.pc.WriteTo(resp, from) }()
			return nil
		})
		t.Cleanup(func() { time.Sleep(5 * time.Second) }) // let delayed answers go out
		c := r.dial(t, "udp", &client.Config{Rand: rand.New(rand.NewPCG(1, 3))})
		got, err := collect(t, context.Background(), c, client.BlockRequest{Path: "x", BlockSize: 1024, Window: 16})
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("%v, %d bytes", err, len(got))
		}
		// The second copies keep arriving during the next transfer.
		got, err = collect(t, context.Background(), c, client.BlockRequest{Path: "x", BlockSize: 1024, Window: 16, Offset: 5000})
		if err != nil || !bytes.Equal(got, body[5000:]) {
			t.Fatalf("second transfer: %v, %d bytes", err, len(got))
		}
		t.Logf("stats %+v", c.Stats())
	})
}

// D4. Separate responses for every block in a window of 64: the server
// sends an empty ACK, then the response as a CON, and sends that CON again
// a second later as if our ACK had been lost (RFC 7252 4.2). The client
// must acknowledge every copy (RFC 7252 4.5: "SHOULD acknowledge each
// duplicate copy of a Confirmable message"); a Reset instead tells the
// server that the client does not know the exchange. The ring of 16
// acknowledged IDs is outrun by a window of 64.
func TestHostileWindowSeparateDuplicates(t *testing.T) {
	_, body := testrig.RandomFile(t, "x", 1000*1024, 25)
	for _, window := range []int{1, 64} { // lockstep is the control
		synctest.Test(t, func(t *testing.T) {
			r := newSimRig(t, 1, "")
			r.dev.SetLink(simnet.LinkConfig{Delay: 10 * time.Millisecond})
			var (
				mu     sync.Mutex
				smid   int32 = 1000
				acked        = map[int32]bool{}
				resets []int32
			)
			var fake *fakeServer
			fake = startFake(t, r.srv, func(m *coap.Message, from net.Addr) [][]byte {
				mu.Lock()
				defer mu.Unlock()
				switch {
				case m.Type == coap.Acknowledgement:
					acked[m.MessageID] = true
					return nil
				case m.Type == coap.Reset:
					if acked[m.MessageID] {
						resets = append(resets, m.MessageID)
					}
					return nil
				case m.Code != coap.GET:
					return nil
				}
				var size2 int64 = -1
				if _, ok := coap.Uint(m.Options, coap.Size2); ok {
					size2 = int64(len(body))
				}
				smid++
				resp := blockMsg(t, coap.Confirmable, smid, m.Token, body, reqBlock(m), []byte{1}, size2)
				go func() {
					time.Sleep(50 * time.Millisecond)
					fake.pc.WriteTo(resp, from)
					time.Sleep(200 * time.Millisecond)
					fake.pc.WriteTo(resp, from)
				}()
				return [][]byte{encode(t, coap.Acknowledgement, coap.Empty, m.MessageID, nil, nil)}
			})
			t.Cleanup(func() { time.Sleep(5 * time.Second) })
			c := r.dial(t, "udp", &client.Config{Rand: rand.New(rand.NewPCG(1, 4))})
			got, err := collect(t, context.Background(), c, client.BlockRequest{Path: "x", BlockSize: 1024, Window: window})
			if err != nil || !bytes.Equal(got, body) {
				t.Fatalf("window %d: %v, %d bytes", window, err, len(got))
			}
			// Duplicates after the transfer meet nobody reading; only those
			// that came during it count.
			synctest.Wait()
			mu.Lock()
			defer mu.Unlock()
			if len(resets) > 0 {
				t.Errorf("window %d: %d duplicate separate responses, already acknowledged, were answered with Reset instead of ACK (first MIDs %v); stats %+v",
					window, len(resets), resets[:min(5, len(resets))], c.Stats())
			}
		})
	}
}

// Held? A Reset for one block ends the transfer with ErrReset; late
// answers to the abandoned window then arrive during the next transfer on
// the same Conn, which must not be confused by them.
func TestHostileWindowResetThenStrays(t *testing.T) {
	_, body := testrig.RandomFile(t, "x", 64*1024, 26)
	synctest.Test(t, func(t *testing.T) {
		r := newSimRig(t, 1, "")
		r.dev.SetLink(simnet.LinkConfig{Delay: 10 * time.Millisecond})
		var (
			mu      sync.Mutex
			resetAt = uint32(9)
		)
		var fake *fakeServer
		fake = startFake(t, r.srv, func(m *coap.Message, from net.Addr) [][]byte {
			if m.Code != coap.GET {
				return nil
			}
			blk := reqBlock(m)
			mu.Lock()
			rst := blk.Num == resetAt
			if rst {
				resetAt = 1 << 30
			}
			mu.Unlock()
			if rst {
				return [][]byte{encode(t, coap.Reset, coap.Empty, m.MessageID, nil, nil)}
			}
			var size2 int64 = -1
			if _, ok := coap.Uint(m.Options, coap.Size2); ok {
				size2 = int64(len(body))
			}
			ack := blockMsg(t, coap.Acknowledgement, m.MessageID, m.Token, body, blk, []byte{1}, size2)
			con := blockMsg(t, coap.Confirmable, m.MessageID^0x5555, m.Token, body, blk, []byte{1}, size2)
			// answered at once, then late copies: as ACK and as a CON
			go func() {
				time.Sleep(300 * time.Millisecond)
				fake.pc.WriteTo(ack, from)
				fake.pc.WriteTo(con, from)
			}()
			return [][]byte{ack}
		})
		t.Cleanup(func() { time.Sleep(5 * time.Second) })
		c := r.dial(t, "udp", &client.Config{Rand: rand.New(rand.NewPCG(1, 5))})
		_, err := collect(t, context.Background(), c, client.BlockRequest{Path: "x", BlockSize: 1024, Window: 8})
		if !errors.Is(err, client.ErrReset) {
			t.Fatalf("reset block: %v, want ErrReset", err)
		}
		got, err := collect(t, context.Background(), c, client.BlockRequest{Path: "x", BlockSize: 1024, Window: 8})
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("after the reset, with stray answers: %v, %d bytes", err, len(got))
		}
		t.Logf("stats %+v", c.Stats())
	})
}

// Held? Cancel mid-window: the transfer returns context.Canceled within
// 100 ms, and the Conn goes on with the next transfer exactly.
func TestHostileWindowCancel(t *testing.T) {
	dir, data := testrig.RandomFile(t, "fw.bin", 256*1024, 27)
	synctest.Test(t, func(t *testing.T) {
		r := newSimRig(t, 1, dir)
		r.dev.SetLink(simnet.LinkConfig{Delay: 30 * time.Millisecond, Jitter: 20 * time.Millisecond})
		c := r.dial(t, "udp", nil)
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(200*time.Millisecond, cancel)
		start := time.Now()
		got, err := collect(t, ctx, c, client.BlockRequest{Path: "fw.bin", BlockSize: 1024, Window: 32})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled: %v", err)
		}
		if el := time.Since(start); el > 300*time.Millisecond {
			t.Fatalf("cancel noticed after %v", el)
		}
		if !bytes.Equal(got, data[:len(got)]) {
			t.Fatal("delivered bytes differ")
		}
		off := int64(len(got))
		got2, err := collect(t, context.Background(), c, client.BlockRequest{Path: "fw.bin", BlockSize: 1024, Window: 32, Offset: off})
		if err != nil || !bytes.Equal(got2, data[off:]) {
			t.Fatalf("resume after cancel at %d: %v", off, err)
		}
	})
}

// One block black-holed while the others flow: TimeoutError after
// 1+MAX_RETRANSMIT transmissions. Logged: how long it waited, against the
// RFC span lockstep waits.
func TestHostileWindowOneBlockExhausts(t *testing.T) {
	_, body := testrig.RandomFile(t, "x", 64*1024, 28)
	for _, window := range []int{1, 10} {
		synctest.Test(t, func(t *testing.T) {
			r := newSimRig(t, 1, "")
			r.dev.SetLink(simnet.LinkConfig{Delay: 10 * time.Millisecond})
			var mu sync.Mutex
			tx := 0
			startFake(t, r.srv, func(m *coap.Message, _ net.Addr) [][]byte {
				if m.Code != coap.GET {
					return nil
				}
				blk := reqBlock(m)
				if blk.Num == 7 {
					mu.Lock()
					tx++
					mu.Unlock()
					return nil
				}
				var size2 int64 = -1
				if _, ok := coap.Uint(m.Options, coap.Size2); ok {
					size2 = int64(len(body))
				}
				return [][]byte{blockMsg(t, coap.Acknowledgement, m.MessageID, m.Token, body, blk, []byte{1}, size2)}
			})
			c := r.dial(t, "udp", &client.Config{Rand: rand.New(rand.NewPCG(1, 6))})
			got, err := collect(t, context.Background(), c, client.BlockRequest{Path: "x", BlockSize: 1024, Window: window})
			var te *client.TimeoutError
			if !errors.As(err, &te) || te.Transmissions != 5 || len(got) != 7*1024 {
				t.Fatalf("window %d: %v after %d bytes", window, err, len(got))
			}
			synctest.Wait()
			mu.Lock()
			defer mu.Unlock()
			if tx != 5 {
				t.Fatalf("window %d: block 7 sent %d times", window, tx)
			}
			t.Logf("window %d: %v", window, err)
		})
	}
}

// Held? Edge sizes from tether's file server: empty, one byte, exact
// multiples of the block size (no empty last block is asked for), one
// block, window far larger than the body; chunks and Chunk.More exact.
func TestHostileWindowEdgeSizes(t *testing.T) {
	for _, n := range []int{0, 1, 16, 1023, 1024, 1025, 2048, 3 * 1024, 64*1024 - 1, 64 * 1024} {
		dir, data := testrig.RandomFile(t, "fw.bin", n, uint64(n))
		for _, bs := range []int{16, 1024} {
			for _, window := range []int{2, 64} {
				synctest.Test(t, func(t *testing.T) {
					r := newSimRig(t, 1, dir)
					c := r.dial(t, "udp", nil)
					var chunks []client.Chunk
					var got []byte
					err := c.GetBlocks(context.Background(), client.BlockRequest{Path: "fw.bin", BlockSize: bs, Window: window}, func(ch client.Chunk) error {
						got = append(got, ch.Payload...)
						ch.Payload = nil
						chunks = append(chunks, ch)
						return nil
					})
					if err != nil || !bytes.Equal(got, data) {
						t.Fatalf("size %d, block %d, window %d: %v, %d bytes", n, bs, window, err, len(got))
					}
					wantChunks := (n + bs - 1) / bs // an empty body: no chunk, as in lockstep
					if len(chunks) != wantChunks {
						t.Fatalf("size %d, block %d, window %d: %d chunks, want %d", n, bs, window, len(chunks), wantChunks)
					}
					for i, ch := range chunks {
						if ch.More != (i < len(chunks)-1) || ch.Size2 != int64(n) || int(ch.Block.Num) != i {
							t.Fatalf("size %d, block %d, window %d: chunk %d: %+v", n, bs, window, i, ch)
						}
					}
					if st := c.Stats(); st.Requests != uint64(max(1, wantChunks)) || st.Retransmissions != 0 {
						t.Fatalf("size %d, block %d, window %d: %+v (asked past the end?)", n, bs, window, st)
					}
				})
			}
		}
	}
}

// Held? Rules broken in one block only, mid-window: ETag on block 7 only,
// Size2 different on block 7 only, block 7 answered with a larger size,
// with the number of another outstanding block, with More=false early, a
// Size2 0 with a body.
func TestHostileWindowOneBlockBreaks(t *testing.T) {
	_, body := testrig.RandomFile(t, "x", 20*1024, 29)
	for how, want := range map[string]error{
		"etag-one":   client.ErrETagChanged,
		"etag-gone":  client.ErrETagChanged,
		"size2-one":  client.ErrSizeMismatch,
		"larger":     client.ErrBlockSize,
		"other-num":  client.ErrUnexpectedBlock,
		"early-last": client.ErrSizeMismatch,
		"size2-zero": client.ErrSizeMismatch,
		"size2-big":  client.ErrSizeMismatch,
	} {
		synctest.Test(t, func(t *testing.T) {
			r := newSimRig(t, 1, "")
			startFake(t, r.srv, func(m *coap.Message, _ net.Addr) [][]byte {
				if m.Code != coap.GET {
					return nil
				}
				blk := reqBlock(m)
				etag := []byte{1, 2}
				var size2 int64 = -1
				if _, ok := coap.Uint(m.Options, coap.Size2); ok {
					size2 = int64(len(body))
					switch how {
					case "size2-zero":
						size2 = 0
					case "size2-big":
						size2 = int64(len(body)) + 5000
					}
				}
				if blk.Num == 7 {
					switch how {
					case "etag-one":
						etag = []byte{1, 3}
					case "etag-gone":
						etag = nil
					case "size2-one":
						size2 = int64(len(body)) + 1
					case "larger":
						blk.SZX++
					case "other-num":
						blk.Num = 9
					case "early-last":
						off := int(blk.Offset())
						b := blk
						b.More = false
						return [][]byte{encode(t, coap.Acknowledgement, coap.Content, m.MessageID, m.Token, body[off:off+512],
							coap.Option{ID: coap.ETag, Value: etag}, uintOpt(coap.Block2, b.Value()))}
					}
				}
				return [][]byte{blockMsg(t, coap.Acknowledgement, m.MessageID, m.Token, body, blk, etag, size2)}
			})
			c := r.dial(t, "udp", nil)
			got, err := collect(t, context.Background(), c, client.BlockRequest{Path: "x", BlockSize: 512, Window: 8})
			if !errors.Is(err, want) {
				t.Fatalf("%s: %v, want %v", how, err, want)
			}
			if !bytes.Equal(got, body[:len(got)]) {
				t.Fatalf("%s: delivered bytes differ", how)
			}
		})
	}
}

// Held? Under loss, duplication, jitter and reordering: message IDs are
// never reused (within the test, well under EXCHANGE_LIFETIME), each ID
// always carries the same token and block, tokens are unique, and the
// server never sees a request more than a window ahead of the first block
// not yet answered (the bound on what waits in memory).
func TestHostileWindowIDsAndBound(t *testing.T) {
	_, body := testrig.RandomFile(t, "x", 300*1024, 30)
	const window = 12
	synctest.Test(t, func(t *testing.T) {
		r := newSimRig(t, 9, "")
		r.dev.SetLink(simnet.LinkConfig{Delay: 15 * time.Millisecond, Jitter: 20 * time.Millisecond, Loss: 0.3, Duplicate: 0.1, Reorder: 0.2})
		type req struct {
			tok string
			num uint32
		}
		var (
			mu      sync.Mutex
			byMID   = map[int32]req{}
			byToken = map[string]int32{}
			bad     []string
			maxAt   = map[uint32]bool{}
		)
		startFake(t, r.srv, func(m *coap.Message, _ net.Addr) [][]byte {
			if m.Code != coap.GET {
				return nil
			}
			blk := reqBlock(m)
			mu.Lock()
			q := req{string(m.Token), blk.Num}
			if p, ok := byMID[m.MessageID]; ok && p != q {
				bad = append(bad, fmt.Sprintf("MID %d: %v then %v", m.MessageID, p, q))
			}
			if p, ok := byToken[q.tok]; ok && p != m.MessageID {
				bad = append(bad, fmt.Sprintf("token %x: MID %d then %d", q.tok, p, m.MessageID))
			}
			byMID[m.MessageID], byToken[q.tok] = q, m.MessageID
			maxAt[blk.Num] = true
			mu.Unlock()
			var size2 int64 = -1
			if _, ok := coap.Uint(m.Options, coap.Size2); ok {
				size2 = int64(len(body))
			}
			return [][]byte{blockMsg(t, coap.Acknowledgement, m.MessageID, m.Token, body, blk, []byte{1}, size2)}
		})
		c := r.dial(t, "udp", &client.Config{Rand: rand.New(rand.NewPCG(1, 8))})
		var off int64
		var all []byte
		for resumes := 0; ; resumes++ {
			got, err := collect(t, context.Background(), c, client.BlockRequest{Path: "x", BlockSize: 1024, Window: window, Offset: off})
			all = append(all, got...)
			off += int64(len(got))
			if err == nil {
				break
			}
			if !errors.Is(err, sock.ErrTimeout) || resumes > 60 {
				t.Fatalf("at %d after %d resumes: %v", off, resumes, err)
			}
		}
		if !bytes.Equal(all, body) {
			t.Fatal("bytes differ")
		}
		mu.Lock()
		defer mu.Unlock()
		if len(bad) > 0 {
			t.Fatalf("%d ID problems: %v", len(bad), bad[:min(5, len(bad))])
		}
		t.Logf("%d distinct MIDs, %d tokens; stats %+v; net %+v", len(byMID), len(byToken), c.Stats(), r.n.Stats())
	})
}

// The in-memory bound, observed from the client side: with block 3 held
// back for a while, no block past 3+2*window-1 is asked for.
func TestHostileWindowMemoryBound(t *testing.T) {
	_, body := testrig.RandomFile(t, "x", 200*1024, 31)
	for _, window := range []int{2, 10, 64} {
		synctest.Test(t, func(t *testing.T) {
			r := newSimRig(t, 1, "")
			r.dev.SetLink(simnet.LinkConfig{Delay: 5 * time.Millisecond})
			var (
				mu      sync.Mutex
				maxNum  uint32
				answer3 bool
			)
			var fake *fakeServer
			fake = startFake(t, r.srv, func(m *coap.Message, from net.Addr) [][]byte {
				if m.Code != coap.GET {
					return nil
				}
				blk := reqBlock(m)
				var size2 int64 = -1
				if _, ok := coap.Uint(m.Options, coap.Size2); ok {
					size2 = int64(len(body))
				}
				resp := blockMsg(t, coap.Acknowledgement, m.MessageID, m.Token, body, blk, []byte{1}, size2)
				mu.Lock()
				defer mu.Unlock()
				if !answer3 {
					maxNum = max(maxNum, blk.Num)
				}
				if blk.Num == 3 && !answer3 {
					go func() {
						time.Sleep(1500 * time.Millisecond) // before its timer
						mu.Lock()
						answer3 = true
						mu.Unlock()
						fake.pc.WriteTo(resp, from)
					}()
					return nil
				}
				return [][]byte{resp}
			})
			t.Cleanup(func() { time.Sleep(5 * time.Second) })
			c := r.dial(t, "udp", nil)
			got, err := collect(t, context.Background(), c, client.BlockRequest{Path: "x", BlockSize: 1024, Window: window})
			if err != nil || !bytes.Equal(got, body) {
				t.Fatalf("window %d: %v", window, err)
			}
			mu.Lock()
			defer mu.Unlock()
			if maxNum > uint32(3+2*window-1) {
				t.Fatalf("window %d: asked for block %d while block 3 was outstanding (two windows ahead at most)", window, maxNum)
			}
		})
	}
}

// D5. A window of 70000 would put two outstanding requests on one 16-bit
// message ID (RFC 7252 4.4), and the older one would be lost to the
// window's map: the transfer would end in an error. The window is capped
// at MaxWindow, so it completes exactly.
func TestHostileWindowHugeWindowMIDs(t *testing.T) {
	const blocks = 70000
	dir, data := testrig.RandomFile(t, "fw.bin", blocks*16, 32)
	synctest.Test(t, func(t *testing.T) {
		r := newSimRig(t, 1, dir)
		r.dev.SetLink(simnet.LinkConfig{Delay: 10 * time.Millisecond})
		c := r.dial(t, "udp", nil)
		got, err := collect(t, context.Background(), c, client.BlockRequest{Path: "fw.bin", BlockSize: 16, Window: blocks})
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("window %d: %v after %d of %d bytes (want the body, or the window refused up front)", blocks, err, len(got), len(data))
		}
	})
}

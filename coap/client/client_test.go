package client_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strings"
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

func TestEveryBlockSize(t *testing.T) {
	dir, data := testrig.RandomFile(t, "fw.bin", 10007, 1)
	want := sha256.Sum256(data)
	synctest.Test(t, func(t *testing.T) {
		r := newSimRig(t, 1, dir)
		c := r.dial(t, "udp", nil)
		for size := 16; size <= 1024; size *= 2 {
			sum, chunks, err := download(context.Background(), c, client.BlockRequest{Path: "/fw.bin", BlockSize: size})
			if err != nil || sum != want {
				t.Fatalf("block size %d: %v, sha256 match %v", size, err, sum == want)
			}
			if n := (len(data) + size - 1) / size; len(chunks) != n {
				t.Errorf("block size %d: %d blocks, want %d", size, len(chunks), n)
			}
			if chunks[0].Size2 != int64(len(data)) || len(chunks[0].ETag) != 8 {
				t.Errorf("first block: Size2 %d, ETag %x", chunks[0].Size2, chunks[0].ETag)
			}
		}
	})
}

func TestResumeFromOffset(t *testing.T) {
	dir, data := testrig.RandomFile(t, "fw.bin", 5000, 2)
	synctest.Test(t, func(t *testing.T) {
		r := newSimRig(t, 1, dir)
		c := r.dial(t, "udp", nil)
		for _, offset := range []int64{0, 2048, 100, 511, 513, 4999, 5000} {
			var got []byte
			err := c.GetBlocks(context.Background(), client.BlockRequest{Path: "fw.bin", Offset: offset, BlockSize: 512}, func(ch client.Chunk) error {
				if ch.Offset != offset+int64(len(got)) {
					t.Fatalf("from %d: chunk at %d after %d bytes", offset, ch.Offset, len(got))
				}
				got = append(got, ch.Payload...)
				return nil
			})
			if err != nil || !bytes.Equal(got, data[offset:]) {
				t.Fatalf("resumed at %d: %v, %d bytes", offset, err, len(got))
			}
		}
		err := c.GetBlocks(context.Background(), client.BlockRequest{Path: "fw.bin", Offset: 5001, BlockSize: 512}, func(client.Chunk) error {
			t.Fatal("a byte delivered past the end")
			return nil
		})
		if !errors.Is(err, client.ErrSizeMismatch) {
			t.Fatalf("offset past the end: %v", err)
		}
		err = c.GetBlocks(context.Background(), client.BlockRequest{Path: "fw.bin", Offset: -1}, nil)
		if !errors.Is(err, coap.ErrBadBlock) {
			t.Fatalf("negative offset: %v", err)
		}
	})
}

// TestLossyDownload: 1 MiB over a link that drops 30% of datagrams,
// duplicates 5% and reorders some; the download resumes from where it
// stopped whenever an exchange gives up, as the download layer will.
func TestLossyDownload(t *testing.T) {
	dir, data := testrig.RandomFile(t, "fw.bin", 1<<20, 3)
	want := sha256.Sum256(data)
	synctest.Test(t, func(t *testing.T) {
		r := newSimRig(t, 42, dir)
		r.dev.SetLink(simnet.LinkConfig{Delay: 10 * time.Millisecond, Jitter: 5 * time.Millisecond, Loss: 0.3, Duplicate: 0.05, Reorder: 0.05})
		c := r.dial(t, "udp", &client.Config{Rand: rand.New(rand.NewPCG(1, 2))})
		h := sha256.New()
		var offset int64
		resumes := 0
		for {
			err := c.GetBlocks(context.Background(), client.BlockRequest{Path: "fw.bin", Offset: offset, BlockSize: 1024}, func(ch client.Chunk) error {
				h.Write(ch.Payload)
				offset += int64(len(ch.Payload))
				return nil
			})
			if err == nil {
				break
			}
			if !errors.Is(err, sock.ErrTimeout) || resumes > 100 {
				t.Fatalf("after %d resumes at offset %d: %v", resumes, offset, err)
			}
			resumes++
		}
		if got := [32]byte(h.Sum(nil)); got != want {
			t.Fatal("SHA-256 differs")
		}
		st, ns := c.Stats(), r.n.Stats()
		if st.Retransmissions == 0 || ns.Duplicated == 0 || ns.Lost == 0 {
			t.Fatalf("the link did not misbehave: %+v %+v", st, ns)
		}
		t.Logf("1 MiB over 30%% loss: %d retransmissions, %d resumes, junk %d; network %+v", st.Retransmissions, resumes, st.Junk, ns)
	})
}

// TestRetransmissionSchedule checks RFC 7252's schedule exactly, in
// simulated time: the first timeout in [2s, 3s], then doubling, four
// retransmissions, then a timeout error.
func TestRetransmissionSchedule(t *testing.T) {
	for seed := uint64(1); seed <= 5; seed++ {
		synctest.Test(t, func(t *testing.T) {
			r := newSimRig(t, 1, "")
			var (
				mu    sync.Mutex
				times []time.Time
				mids  []int32
			)
			startFake(t, r.srv, func(m *coap.Message, _ net.Addr) [][]byte {
				mu.Lock()
				times, mids = append(times, time.Now()), append(mids, m.MessageID)
				mu.Unlock()
				return nil // a black hole
			})
			c := r.dial(t, "udp", &client.Config{Rand: rand.New(rand.NewPCG(seed, 0))})
			start := time.Now()
			_, err := c.Do(context.Background(), &coap.Message{Code: coap.GET})
			var te *client.TimeoutError
			if !errors.As(err, &te) || te.Transmissions != 5 {
				t.Fatalf("Do against a black hole: %v, want a TimeoutError after 5 transmissions", err)
			}
			for _, target := range []error{sock.ErrTimeout, os.ErrDeadlineExceeded, context.DeadlineExceeded} {
				if !errors.Is(err, target) {
					t.Errorf("%v does not match %v", err, target)
				}
			}
			if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
				t.Errorf("%v is not a net.Error timeout", err)
			}
			synctest.Wait()
			mu.Lock()
			defer mu.Unlock()
			if len(times) != 5 || times[0] != start {
				t.Fatalf("server saw %d transmissions, first at +%v", len(times), times[0].Sub(start))
			}
			first := times[1].Sub(times[0])
			if first < 2*time.Second || first > 3*time.Second {
				t.Fatalf("initial timeout %v, want in [2s, 3s]", first)
			}
			for i := 2; i < len(times); i++ {
				if got, want := times[i].Sub(times[i-1]), first<<(i-1); got != want {
					t.Fatalf("gap %d = %v, want %v (doubling)", i, got, want)
				}
			}
			if got, want := time.Since(start), 31*first; got != want {
				t.Fatalf("gave up after %v, want %v (1+2+4+8+16 initial timeouts)", got, want)
			}
			for _, m := range mids {
				if m != mids[0] {
					t.Fatalf("retransmissions changed the message ID: %v", mids)
				}
			}
		})
	}
}

func TestSeparateResponse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newSimRig(t, 1, "")
		var (
			mu   sync.Mutex
			acks []int32
			gets int
		)
		var fake *fakeServer
		fake = startFake(t, r.srv, func(m *coap.Message, from net.Addr) [][]byte {
			switch {
			case m.Type == coap.Confirmable && m.Code == coap.GET:
				mu.Lock()
				gets++
				first := gets == 1
				mu.Unlock()
				if !first {
					return nil // the second exchange only waits, to see the duplicate
				}
				token := append([]byte(nil), m.Token...)
				resp := encode(t, coap.Confirmable, coap.Content, 900, token, []byte("later"))
				go func() {
					time.Sleep(time.Second)
					fake.pc.WriteTo(resp, from)
					time.Sleep(time.Second) // our ACK "was lost": send it again
					fake.pc.WriteTo(resp, from)
				}()
				return [][]byte{encode(t, coap.Acknowledgement, coap.Empty, m.MessageID, nil, nil)}
			case m.Type == coap.Acknowledgement:
				mu.Lock()
				acks = append(acks, m.MessageID)
				mu.Unlock()
			}
			return nil
		})
		c := r.dial(t, "udp", nil)
		resp, err := c.Do(context.Background(), &coap.Message{Code: coap.GET})
		if err != nil || string(resp.Payload) != "later" {
			t.Fatalf("separate response: %v", err)
		}
		// The duplicate arrives during the next exchange, which re-ACKs it.
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		c.Do(ctx, &coap.Message{Code: coap.GET})
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if len(acks) < 2 || acks[0] != 900 || acks[1] != 900 {
			t.Fatalf("server got ACKs %v, want the separate response (MID 900) acknowledged twice", acks)
		}
		if c.Stats().Duplicates != 1 {
			t.Fatalf("stats: %+v", c.Stats())
		}
	})
}

func TestResetAndPing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newSimRig(t, 1, "")
		var (
			mu     sync.Mutex
			resets []int32
		)
		startFake(t, r.srv, func(m *coap.Message, _ net.Addr) [][]byte {
			switch {
			case m.Type == coap.Reset:
				mu.Lock()
				resets = append(resets, m.MessageID)
				mu.Unlock()
			case string(m.Token) == "rst!":
				return [][]byte{encode(t, coap.Reset, coap.Empty, m.MessageID, nil, nil)}
			case m.Code == coap.GET:
				return [][]byte{
					encode(t, coap.Confirmable, coap.Empty, 7, nil, nil),                              // a ping
					encode(t, coap.Confirmable, coap.Content, 8, []byte("other"), []byte("stranger")), // not ours
					[]byte("\x00junk"),
					encode(t, coap.Acknowledgement, coap.Content, m.MessageID, m.Token, []byte("ok")),
				}
			}
			return nil
		})
		c := r.dial(t, "udp", nil)
		resp, err := c.Do(context.Background(), &coap.Message{Code: coap.GET})
		if err != nil || string(resp.Payload) != "ok" {
			t.Fatalf("Do: %v", err)
		}
		synctest.Wait()
		mu.Lock()
		if len(resets) != 2 || resets[0] != 7 || resets[1] != 8 {
			t.Fatalf("server got RSTs %v, want the ping (7) and the unexpected CON (8) reset", resets)
		}
		mu.Unlock()
		if _, err := c.Do(context.Background(), &coap.Message{Code: coap.GET, Token: []byte("rst!")}); !errors.Is(err, client.ErrReset) {
			t.Fatalf("Do answered by RST: %v", err)
		}
		if c.Stats().Junk < 2 {
			t.Fatalf("junk not counted: %+v", c.Stats())
		}
	})
}

func TestCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newSimRig(t, 1, "")
		startFake(t, r.srv, func(*coap.Message, net.Addr) [][]byte { return nil })
		c := r.dial(t, "udp", nil)
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(500*time.Millisecond, cancel)
		start := time.Now()
		_, err := c.Do(ctx, &coap.Message{Code: coap.GET})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled Do: %v", err)
		}
		if el := time.Since(start); el > 600*time.Millisecond {
			t.Fatalf("cancel noticed after %v", el)
		}
		ctx, cancel = context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := c.Do(ctx, &coap.Message{Code: coap.GET}); !errors.Is(err, sock.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Do past its context deadline: %v", err)
		}
	})
}

// hostile serves a body block by block, breaking the rules as told.
func hostile(t *testing.T, body []byte, breakAt uint32, how string) func(*coap.Message, net.Addr) [][]byte {
	return func(m *coap.Message, _ net.Addr) [][]byte {
		v, _ := coap.Uint(m.Options, coap.Block2)
		blk, _ := coap.ParseBlock(v, false)
		size := blk.Size()
		if how == "smaller" && blk.SZX == 6 {
			blk.Num, blk.SZX, size = blk.Num*4, blk.SZX-2, size/4 // answer 4x smaller blocks
		}
		if how == "shrinks" && blk.Offset() >= int64(breakAt)*1024 && blk.SZX > 5 {
			blk.Num, blk.SZX, size = blk.Num*2, blk.SZX-1, size/2 // renegotiated down mid-transfer
		}
		off := int(blk.Offset())
		end := min(off+size, len(body))
		payload := body[off:end]
		blk.More = end < len(body)
		code := coap.Content
		etag := []byte{1, 1, 1, 1}
		opts := []coap.Option{}
		if blk.Num >= breakAt {
			switch how {
			case "etag":
				etag = []byte{2, 2, 2, 2}
			case "no-etag":
				etag = nil
			case "number":
				blk.Num++
			case "large":
				payload = append(append([]byte(nil), payload...), 0)
			case "short":
				payload = payload[:len(payload)-1]
			case "size2":
				opts = append(opts, uintOpt(coap.Size2, uint32(len(body)-10)))
			case "404":
				code = coap.NotFound
			case "503":
				code = coap.ServiceUnavailable
				opts = append(opts, uintOpt(coap.MaxAge, 7))
			case "500":
				code = coap.InternalServerError
			}
		}
		if etag != nil {
			opts = append(opts, coap.Option{ID: coap.ETag, Value: etag})
		}
		opts = append(opts, uintOpt(coap.Block2, blk.Value()))
		if blk.Num == 0 {
			opts = append(opts, uintOpt(coap.Size2, uint32(len(body))))
		}
		return [][]byte{encode(t, coap.Acknowledgement, code, m.MessageID, m.Token, payload, opts...)}
	}
}

// TestServerBlockSizes: a server may answer smaller blocks than asked
// (RFC 7959 2.4), from the first block or from the middle of a transfer;
// whatever the size, a transfer started at any byte delivers exactly the
// bytes from there, and Chunk.Block tells the size the server used.
func TestServerBlockSizes(t *testing.T) {
	_, body := testrig.RandomFile(t, "x", 5*1024+77, 9)
	for _, how := range []string{"smaller", "shrinks"} {
		for _, offset := range []int64{0, 300, 700, 1024, 2600, 4095, int64(len(body)) - 1} {
			synctest.Test(t, func(t *testing.T) {
				r := newSimRig(t, 1, "")
				startFake(t, r.srv, hostile(t, body, 2, how))
				c := r.dial(t, "udp", nil)
				var got []byte
				sizes := map[int]bool{}
				err := c.GetBlocks(context.Background(), client.BlockRequest{Path: "x", Offset: offset, BlockSize: 1024}, func(ch client.Chunk) error {
					if ch.Offset != offset+int64(len(got)) {
						t.Fatalf("chunk at %d, want %d", ch.Offset, offset+int64(len(got)))
					}
					got = append(got, ch.Payload...)
					sizes[ch.Block.Size()] = true
					return nil
				})
				if err != nil || !bytes.Equal(got, body[offset:]) {
					t.Fatalf("%s, from %d: %v, %d bytes of %d", how, offset, err, len(got), len(body)-int(offset))
				}
				if how == "smaller" && (len(sizes) != 1 || !sizes[256]) {
					t.Fatalf("%s: block sizes seen %v, want 256 only", how, sizes)
				}
			})
		}
	}
}

func TestHostileServer(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 64*5) // 5 KiB
	for _, tc := range []struct {
		how  string
		want error
	}{
		{"etag", client.ErrETagChanged},
		{"no-etag", client.ErrETagChanged},
		{"number", client.ErrUnexpectedBlock},
		{"large", client.ErrBlockSize},
		{"short", client.ErrBlockSize},
		{"size2", client.ErrSizeMismatch},
		{"404", nil},
		{"503", nil},
		{"500", nil},
		{"smaller", nil},
	} {
		t.Run(tc.how, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newSimRig(t, 1, "")
				startFake(t, r.srv, hostile(t, body, 2, tc.how))
				c := r.dial(t, "udp", nil)
				var got []byte
				err := c.GetBlocks(context.Background(), client.BlockRequest{Path: "x", BlockSize: 1024}, func(ch client.Chunk) error {
					got = append(got, ch.Payload...)
					return nil
				})
				switch tc.how {
				case "smaller":
					if err != nil || !bytes.Equal(got, body) {
						t.Fatalf("server with smaller blocks: %v, %d bytes", err, len(got))
					}
				case "404":
					var re *client.ResponseError
					if !errors.As(err, &re) || re.Code != coap.NotFound || !sock.IsPermanent(err) || re.RetryAfter() != 0 {
						t.Fatalf("4.04 mid-transfer: %v, want a permanent *ResponseError", err)
					}
					if want := "coap: 4.04 Not Found: "; !strings.HasPrefix(err.Error(), want) {
						t.Errorf("error text %q, want it to start with %q", err, want)
					}
				case "503":
					var re *client.ResponseError
					if !errors.As(err, &re) || sock.IsPermanent(err) || re.RetryAfter() != 7*time.Second {
						t.Fatalf("5.03 with Max-Age 7: %v, want transient, retry after 7s", err)
					}
				case "500":
					var re *client.ResponseError
					if !errors.As(err, &re) || sock.IsPermanent(err) || re.RetryAfter() != 0 {
						t.Fatalf("5.00: %v, want transient, no Max-Age wait", err)
					}
				default:
					if !errors.Is(err, tc.want) || !sock.IsPermanent(err) {
						t.Fatalf("got %v, want %v (permanent)", err, tc.want)
					}
					if len(got) > 2*1024 {
						t.Fatalf("%d bytes delivered past the broken block", len(got))
					}
				}
			})
		})
	}
}

func TestTCPDownload(t *testing.T) {
	dir, data := testrig.RandomFile(t, "fw.bin", 300<<10+5, 4)
	want := sha256.Sum256(data)
	for _, noBERT := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			r := newSimRig(t, 1, dir)
			c := r.dial(t, "tcp", &client.Config{NoBERT: noBERT})
			if c.BERT() == noBERT {
				t.Fatalf("BERT() = %v with NoBERT %v", c.BERT(), noBERT)
			}
			sum, chunks, err := download(context.Background(), c, client.BlockRequest{Path: "fw.bin"})
			if err != nil || sum != want {
				t.Fatalf("TCP download (BERT %v): %v", c.BERT(), err)
			}
			t.Logf("BERT %v: %d messages for %d bytes", c.BERT(), len(chunks), len(data))
			if !noBERT && len(chunks) > len(data)/(8<<10) {
				t.Errorf("BERT used %d messages; the server offers 16 KiB per message", len(chunks))
			}
		})
	}
}

// TestURIOptionsAndTrace: a transfer's Uri-Host and Uri-Query reach the
// server, in order, with every block; and a logger at LevelTrace gets one
// record per message, with what an operator needs to read the exchange.
func TestURIOptionsAndTrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newSimRig(t, 1, "")
		var (
			mu   sync.Mutex
			seen []string
		)
		startFake(t, r.srv, func(m *coap.Message, _ net.Addr) [][]byte {
			mu.Lock()
			var opts []string
			for _, o := range m.Options {
				switch o.ID {
				case coap.URIHost, coap.URIPath, coap.URIQuery:
					opts = append(opts, fmt.Sprintf("%d=%s", o.ID, o.Value))
				}
			}
			seen = append(seen, strings.Join(opts, " "))
			mu.Unlock()
			v, _ := coap.Uint(m.Options, coap.Block2)
			blk, _ := coap.ParseBlock(v, false)
			blk.More = blk.Num == 0
			return [][]byte{encode(t, coap.Acknowledgement, coap.Content, m.MessageID, m.Token, make([]byte, 16),
				coap.Option{ID: coap.ETag, Value: []byte{7}}, uintOpt(coap.Block2, blk.Value()))}
		})
		var trace bytes.Buffer
		log := slog.New(slog.NewTextHandler(&trace, &slog.HandlerOptions{Level: client.LevelTrace}))
		c := r.dial(t, "udp", &client.Config{Logger: log})
		err := c.GetBlocks(context.Background(), client.BlockRequest{Path: "/fw/a b.bin", BlockSize: 16, Host: "fw.example",
			Query: []string{"v=2", "a&b"}}, func(client.Chunk) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		want := "3=fw.example 11=fw 11=a b.bin 15=v=2 15=a&b"
		if len(seen) != 2 || seen[0] != want || seen[1] != want {
			t.Fatalf("options seen by the server: %q, want %q for each block", seen, want)
		}
		lines := strings.Split(strings.TrimSpace(trace.String()), "\n")
		if len(lines) != 4 || !strings.Contains(lines[0], `msg="coap send" type=CON`) || !strings.Contains(lines[0], `code="0.01 GET"`) ||
			!strings.Contains(lines[1], `msg="coap recv" type=ACK`) || !strings.Contains(lines[1], `code="2.05 Content"`) ||
			!strings.Contains(lines[1], "block2=0/1/16 etag=07 payload=16") {
			t.Fatalf("trace:\n%s", trace.String())
		}
	})
}

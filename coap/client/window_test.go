package client_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/coap/client"
	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/simnet"
)

// fetch downloads fw.bin from offset 0 to its end through c, resuming
// after timeouts as a download does, and returns the SHA-256 and the
// simulated time it took.
func fetch(t *testing.T, c *client.Conn, window int) ([32]byte, time.Duration) {
	t.Helper()
	h := sha256.New()
	var offset int64
	start := time.Now()
	for resumes := 0; ; resumes++ {
		err := c.GetBlocks(context.Background(), client.BlockRequest{Path: "fw.bin", Offset: offset, BlockSize: 1024, Window: window},
			func(ch client.Chunk) error {
				if ch.Offset != offset {
					t.Fatalf("chunk at %d, want %d", ch.Offset, offset)
				}
				h.Write(ch.Payload)
				offset += int64(len(ch.Payload))
				return nil
			})
		if err == nil {
			break
		}
		if !errors.Is(err, sock.ErrTimeout) || resumes > 50 {
			t.Fatalf("window %d, after %d resumes at offset %d: %v", window, resumes, offset, err)
		}
	}
	return [32]byte(h.Sum(nil)), time.Since(start)
}

// TestWindowOverHostileLinks: a window of 10 over links that lose,
// duplicate and reorder delivers exactly the file, in order.
func TestWindowOverHostileLinks(t *testing.T) {
	dir, data := randomFile(t, "fw.bin", 300*1024, 5)
	want := sha256.Sum256(data)
	for _, link := range []simnet.LinkConfig{
		{Delay: 20 * time.Millisecond},
		{Delay: 20 * time.Millisecond, Jitter: 15 * time.Millisecond, Reorder: 0.2},
		{Delay: 10 * time.Millisecond, Loss: 0.1, Duplicate: 0.05, Reorder: 0.05},
		{Delay: 10 * time.Millisecond, Loss: 0.3},
	} {
		synctest.Test(t, func(t *testing.T) {
			r := newSimRig(t, 7, dir)
			r.dev.SetLink(link)
			c := r.dial(t, "udp", &client.Config{Rand: rand.New(rand.NewPCG(1, 2))})
			if sum, _ := fetch(t, c, 10); sum != want {
				t.Fatalf("link %+v: SHA-256 differs", link)
			}
		})
	}
}

// TestWindowServerBlockSizes: a server that answers smaller blocks than
// asked, from the start or from the middle, is followed by a window too
// (in lockstep once it changed its size), from any byte.
func TestWindowServerBlockSizes(t *testing.T) {
	_, body := randomFile(t, "x", 20*1024+77, 9)
	for _, how := range []string{"smaller", "shrinks"} {
		for _, offset := range []int64{0, 700, 4095, int64(len(body)) - 1} {
			synctest.Test(t, func(t *testing.T) {
				r := newSimRig(t, 1, "")
				startFake(t, r.srv, hostile(t, body, 5, how))
				c := r.dial(t, "udp", nil)
				var got []byte
				err := c.GetBlocks(context.Background(), client.BlockRequest{Path: "x", Offset: offset, BlockSize: 1024, Window: 4}, func(ch client.Chunk) error {
					if ch.Offset != offset+int64(len(got)) {
						t.Fatalf("chunk at %d, want %d", ch.Offset, offset+int64(len(got)))
					}
					got = append(got, ch.Payload...)
					return nil
				})
				if err != nil || !bytes.Equal(got, body[offset:]) {
					t.Fatalf("%s, from %d: %v, %d bytes of %d", how, offset, err, len(got), len(body)-int(offset))
				}
			})
		}
	}
}

// TestWindowKeepsTheRules: in a window, every block is checked as in
// lockstep: an ETag that changes, a block of another number or size, a
// Size2 that changes, an error code end the transfer with their errors.
func TestWindowKeepsTheRules(t *testing.T) {
	_, body := randomFile(t, "x", 20*1024, 9)
	for how, want := range map[string]error{
		"etag":   client.ErrETagChanged,
		"number": client.ErrUnexpectedBlock,
		"large":  client.ErrBlockSize,
		"short":  client.ErrBlockSize,
		"size2":  client.ErrSizeMismatch,
		"404":    nil, // a *client.ResponseError
	} {
		synctest.Test(t, func(t *testing.T) {
			r := newSimRig(t, 1, "")
			startFake(t, r.srv, hostile(t, body, 6, how))
			c := r.dial(t, "udp", nil)
			_, _, err := download(context.Background(), c, client.BlockRequest{Path: "x", BlockSize: 1024, Window: 4})
			var re *client.ResponseError
			switch {
			case want == nil && !errors.As(err, &re):
				t.Fatalf("%s: %v, want a response error", how, err)
			case want != nil && !errors.Is(err, want):
				t.Fatalf("%s: %v, want %v", how, err, want)
			}
		})
	}
}

// TestWindowThroughput compares, in simulated time (so the figures are
// exact), 1 MiB in 1024-byte blocks in lockstep and with a window of 10,
// at 100 ms and 600 ms round trips, with 0% and 1% loss each way. The
// ratios go to the log; the test checks the window is at least 9x faster
// without loss (the ideal is 10x less the first block's lockstep round
// trip), and at least 6x with 1% loss (a lost block is asked for again
// once the gap shows, not after its timer, and the window keeps moving
// meanwhile). With loss the figure varies from run to run, since which
// datagrams are lost depends on the order in which the simulated network
// serves datagrams sent at one instant: over eight runs, 9.2x to 12.7x at
// 100 ms and 9.3x to 9.9x at 600 ms.
func TestWindowThroughput(t *testing.T) {
	if testing.Short() {
		t.Skip("1 MiB transfers in lockstep at 600 ms round trips: seconds of real time")
	}
	dir, data := randomFile(t, "fw.bin", 1<<20, 11)
	want := sha256.Sum256(data)
	for _, rtt := range []time.Duration{100 * time.Millisecond, 600 * time.Millisecond} {
		for _, loss := range []float64{0, 0.01} {
			var took [2]time.Duration
			for i, window := range []int{1, 10} {
				synctest.Test(t, func(t *testing.T) {
					r := newSimRig(t, 3, dir)
					r.dev.SetLink(simnet.LinkConfig{Delay: rtt / 2, Loss: loss})
					c := r.dial(t, "udp", &client.Config{Rand: rand.New(rand.NewPCG(4, 5))})
					sum, d := fetch(t, c, window)
					if sum != want {
						t.Fatal("SHA-256 differs")
					}
					took[i] = d
				})
			}
			ratio := float64(took[0]) / float64(took[1])
			t.Logf("RTT %v, loss %.0f%% each way: lockstep %v, window 10 %v: %.1fx", rtt, loss*100, took[0].Round(time.Millisecond), took[1].Round(time.Millisecond), ratio)
			if (loss == 0 && ratio < 9) || ratio < 6 {
				t.Errorf("RTT %v, loss %v: window 10 only %.1fx lockstep", rtt, loss, ratio)
			}
		}
	}
}

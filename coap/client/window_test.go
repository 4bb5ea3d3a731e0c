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
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/sock"
)

// fetch downloads fw.bin from offset 0 to its end through c with a window
// of requests, resuming after timeouts as a download does, and returns the
// SHA-256 and the simulated time it took.
func fetch(t *testing.T, c *client.Conn, window int) ([32]byte, time.Duration) {
	t.Helper()
	return fetchWith(t, c, client.BlockRequest{Window: window})
}

// fetchWith is fetch with the request's Window and QBlock from req.
func fetchWith(t *testing.T, c *client.Conn, req client.BlockRequest) ([32]byte, time.Duration) {
	t.Helper()
	h := sha256.New()
	var offset int64
	start := time.Now()
	for resumes := 0; ; resumes++ {
		err := c.GetBlocks(context.Background(), client.BlockRequest{Path: "fw.bin", Offset: offset, BlockSize: 1024, Window: req.Window, QBlock: req.QBlock},
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
			t.Fatalf("window %d, Q-Block2 %v, after %d resumes at offset %d: %v", req.Window, req.QBlock, resumes, offset, err)
		}
	}
	return [32]byte(h.Sum(nil)), time.Since(start)
}

// TestWindowOverHostileLinks: a window of 10 over links that lose,
// duplicate and reorder delivers exactly the file, in order.
func TestWindowOverHostileLinks(t *testing.T) {
	dir, data := testrig.RandomFile(t, "fw.bin", 300*1024, 5)
	want := sha256.Sum256(data)
	for _, link := range hostileLinks {
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
	_, body := testrig.RandomFile(t, "x", 20*1024+77, 9)
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
	_, body := testrig.RandomFile(t, "x", 20*1024, 9)
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

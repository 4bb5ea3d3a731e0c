package client_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/coap/client"
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/simnet"
)

// The schedulers' suite: what every way of asking for a body block by
// block (lockstep, a window, Q-Block2 in order and not) must do against
// tether's file server, as socktest is what every socket must do. The
// transfer they share owns the checks and the delivery; a scheduler only
// decides what to ask for and when, so each passes the same suite. A new
// scheduler joins the list; a new property joins testScheduler.

// hostileLinks are the links every scheduler must cross exactly: plain,
// jittered and reordered, lossy with duplicates, very lossy.
var hostileLinks = []simnet.LinkConfig{
	{Delay: 20 * time.Millisecond},
	{Delay: 20 * time.Millisecond, Jitter: 15 * time.Millisecond, Reorder: 0.2},
	{Delay: 10 * time.Millisecond, Loss: 0.1, Duplicate: 0.05, Reorder: 0.05},
	{Delay: 10 * time.Millisecond, Loss: 0.3},
}

// schedulers are the ways of asking, as a BlockRequest chooses them.
var schedulers = []struct {
	name string
	req  client.BlockRequest
}{
	{"lockstep", client.BlockRequest{}},
	{"window", client.BlockRequest{Window: 10}},
	{"qblock", client.BlockRequest{QBlock: true}},
	{"qblock-unordered", client.BlockRequest{QBlock: true, Unordered: true}},
}

// TestSchedulers runs the suite for every scheduler.
func TestSchedulers(t *testing.T) {
	for _, s := range schedulers {
		t.Run(s.name, func(t *testing.T) { testScheduler(t, s.req) })
	}
}

// testScheduler checks one scheduler (the Window, QBlock and Unordered of
// req): over every hostile link, resuming after timeouts as a download
// does, the body arrives exactly, each byte once, in order unless
// Unordered; so it does from any byte, for bodies of every edge size; a
// cancelled transfer stops within cancelPoll's reach and the Conn goes on
// with the next.
func testScheduler(t *testing.T, req client.BlockRequest) {
	t.Run("links", func(t *testing.T) {
		dir, data := testrig.RandomFile(t, "fw.bin", 300*1024, 5)
		for _, link := range hostileLinks {
			synctest.Test(t, func(t *testing.T) {
				r := newSimRig(t, 7, dir)
				r.dev.SetLink(link)
				c := r.dial(t, "udp", &client.Config{Rand: rand.New(rand.NewPCG(1, 2))})
				if err := suiteFetch(t, c, req, data, 0, 50); err != nil {
					t.Fatalf("link %+v: %v", link, err)
				}
			})
		}
	})
	t.Run("offsets", func(t *testing.T) {
		dir, data := testrig.RandomFile(t, "fw.bin", 25*1024+77, 6)
		for _, offset := range []int64{0, 1, 700, 1024, 10 * 1024, 10*1024 + 5, int64(len(data)) - 1, int64(len(data))} {
			synctest.Test(t, func(t *testing.T) {
				r := newSimRig(t, 7, dir)
				r.dev.SetLink(simnet.LinkConfig{Delay: 10 * time.Millisecond})
				c := r.dial(t, "udp", nil)
				if err := suiteFetch(t, c, req, data, offset, 0); err != nil {
					t.Fatalf("from %d: %v", offset, err)
				}
			})
		}
	})
	t.Run("sizes", func(t *testing.T) {
		for _, n := range []int{0, 1, 1023, 1024, 1025, 10 * 1024, 10*1024 + 1, 40*1024 + 3} {
			dir, data := testrig.RandomFile(t, "fw.bin", n, uint64(n))
			synctest.Test(t, func(t *testing.T) {
				r := newSimRig(t, 7, dir)
				c := r.dial(t, "udp", nil)
				if err := suiteFetch(t, c, req, data, 0, 0); err != nil {
					t.Fatalf("%d bytes: %v", n, err)
				}
			})
		}
	})
	t.Run("cancel", func(t *testing.T) {
		dir, data := testrig.RandomFile(t, "fw.bin", 256*1024, 27)
		synctest.Test(t, func(t *testing.T) {
			r := newSimRig(t, 1, dir)
			r.dev.SetLink(simnet.LinkConfig{Delay: 30 * time.Millisecond, Jitter: 20 * time.Millisecond})
			c := r.dial(t, "udp", nil)
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(200*time.Millisecond, cancel)
			start := time.Now()
			req := req
			req.Path, req.BlockSize, req.Unordered = "fw.bin", 1024, false // the bytes so far are a prefix, to resume from
			got, err := collect(t, ctx, c, req)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled: %v", err)
			}
			if el := time.Since(start); el > 300*time.Millisecond {
				t.Fatalf("cancel noticed after %v", el)
			}
			if !bytes.Equal(got, data[:len(got)]) {
				t.Fatal("delivered bytes differ")
			}
			req.Offset = int64(len(got))
			rest, err := collect(t, context.Background(), c, req)
			if err != nil || !bytes.Equal(rest, data[req.Offset:]) {
				t.Fatalf("resumed at %d after the cancel: %v", req.Offset, err)
			}
		})
	})
}

// suiteFetch fetches fw.bin from offset through c, resuming after
// timeouts at most resumes times, and checks every chunk: in order unless
// req.Unordered, each byte once, the bytes of data; then that every byte
// from offset came.
func suiteFetch(t *testing.T, c *client.Conn, req client.BlockRequest, data []byte, offset int64, resumes int) error {
	t.Helper()
	seen := make([]bool, len(data))
	next := offset // the first byte not yet delivered, in order
	var bad error
	for tries := 0; ; tries++ {
		req := req
		req.Path, req.BlockSize, req.Offset = "fw.bin", 1024, next
		req.Have = func(off int64, n int) bool { return seen[off] }
		err := c.GetBlocks(context.Background(), req, func(ch client.Chunk) error {
			end := ch.Offset + int64(len(ch.Payload))
			switch {
			case !req.Unordered && ch.Offset != next:
				bad = errors.New("a chunk out of order")
			case ch.Offset < offset || end > int64(len(data)) || !bytes.Equal(ch.Payload, data[ch.Offset:end]):
				bad = errors.New("a chunk of the wrong bytes")
			}
			for i := ch.Offset; i < end && bad == nil; i++ {
				if seen[i] {
					bad = errors.New("a byte delivered twice")
				}
				seen[i] = true
			}
			for next < int64(len(seen)) && seen[next] {
				next++
			}
			return bad
		})
		if err == nil {
			break
		}
		if bad != nil || !errors.Is(err, sock.ErrTimeout) || tries >= resumes {
			return err
		}
	}
	if next != int64(len(data)) {
		return errors.New("the transfer ended before the body did")
	}
	return nil
}

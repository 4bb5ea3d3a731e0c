package client_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/client"
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/sock"
)

// qblockAnswer encodes block num of body as a Q-Block2 response to req:
// piggybacked to a confirmable request, else Non-confirmable; with Size2
// unless size2 is false.
func qblockAnswer(t *testing.T, req *coap.Message, body []byte, num uint32, more bool, size2 bool, mid int32) []byte {
	off := int(num) * 1024
	payload := body[off:min(off+1024, len(body))]
	opts := []coap.Option{uintOpt(coap.QBlock2, coap.Block{Num: num, More: more, SZX: 6}.Value()), {ID: coap.ETag, Value: []byte{1, 2, 3, 4}}}
	if size2 {
		opts = append(opts, uintOpt(coap.Size2, uint32(len(body))))
	}
	typ := coap.NonConfirmable
	if req.Type == coap.Confirmable {
		typ, mid = coap.Acknowledgement, req.MessageID
	}
	return encode(t, typ, coap.Content, mid, req.Token, payload, opts...)
}

// TestQBlockDuplicatesAreNoProgress: a peer that, once the transfer has
// begun, replays its first block every 100 ms with the token of the
// client's latest request (and answers nothing else) sends only blocks
// the transfer has: they are no progress, and the transfer ends with a
// timeout as it does against a silent server, instead of running for as
// long as the replay lasts.
func TestQBlockDuplicatesAreNoProgress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, body := testrig.RandomFile(t, "x", 30*1024, 3)
		r := newSimRig(t, 1, "")
		var (
			mu   sync.Mutex
			last []byte // the latest request's block 0, as a NON response
			to   net.Addr
			mid  int32
		)
		f := startFake(t, r.srv, func(req *coap.Message, from net.Addr) [][]byte {
			mu.Lock()
			defer mu.Unlock()
			if req.Type == coap.Confirmable {
				return [][]byte{qblockAnswer(t, req, body, 0, true, true, 0)}
			}
			mid++
			last, to = qblockAnswer(t, req, body, 0, true, true, mid), from
			return nil
		})
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
				mu.Lock()
				if last != nil {
					f.pc.WriteTo(last, to)
				}
				mu.Unlock()
			}
		}()
		c := r.dial(t, "udp", nil)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		defer cancel()
		start := time.Now()
		err := c.GetBlocks(ctx, client.BlockRequest{Path: "x", QBlock: true}, func(client.Chunk) error { return nil })
		if took := time.Since(start); !errors.Is(err, sock.ErrTimeout) || took >= 30*time.Minute {
			t.Fatalf("%v after %v of duplicates, want a timeout (%d requests sent)", err, took, c.Stats().Requests)
		}
	})
}

// TestQBlockBlocksPastTheEnd: without Size2, a burst whose block 5 says
// it is the last (M unset) while blocks 6-9, past it, came before it
// contradicts itself: the transfer ends with ErrSizeMismatch, not with a
// body cut at block 5 as if nothing were wrong. Blocks past the last one
// arriving after it are the same contradiction.
func TestQBlockBlocksPastTheEnd(t *testing.T) {
	for _, lastFirst := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			_, body := testrig.RandomFile(t, "x", 30*1024, 3)
			r := newSimRig(t, 1, "")
			var mid int32
			startFake(t, r.srv, func(req *coap.Message, _ net.Addr) [][]byte {
				if req.Type == coap.Confirmable {
					return [][]byte{qblockAnswer(t, req, body, 0, true, false, 0)}
				}
				order := []uint32{1, 2, 3, 4, 6, 7, 8, 9, 5}
				if lastFirst {
					order = []uint32{1, 2, 3, 5, 6, 7, 8, 9, 4}
				}
				var out [][]byte
				for _, n := range order {
					mid++
					out = append(out, qblockAnswer(t, req, body, n, n != 5, false, mid))
				}
				return out
			})
			c := r.dial(t, "udp", nil)
			var got []byte
			err := c.GetBlocks(context.Background(), client.BlockRequest{Path: "x", QBlock: true}, func(ch client.Chunk) error {
				got = append(got, ch.Payload...)
				return nil
			})
			if !errors.Is(err, client.ErrSizeMismatch) {
				t.Fatalf("last first %v: %v with %d bytes (%v), want ErrSizeMismatch", lastFirst, err, len(got), bytes.Equal(got, body[:len(got)]))
			}
		})
	}
}

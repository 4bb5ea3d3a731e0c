package client_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/client"
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/sock/simnet"
)

// TestQBlockNoSize2LastBlockLost: a Q-Block2 server that gives no Size2
// (RFC 7959 and 9177 make it optional) and answers a request for a block
// past the body 4.02, as RFC 7959 2.2 has it; the body's last block (of a
// set not whole) is lost once. Asking set by set, the client must not ask
// for blocks past an end it does not know as if they were missing: the
// transfer completes, exactly.
func TestQBlockNoSize2LastBlockLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, body := testrig.RandomFile(t, "x", 14*1024+300, 3)
		nblk := uint32((len(body) + 1023) / 1024) // 15: the last set is 10..14
		r := newSimRig(t, 1, "")
		r.dev.SetLink(simnet.LinkConfig{Delay: 50 * time.Millisecond})
		srv := &qserver{t: t, body: body, start: time.Now(), drop: map[uint32]int{nblk - 1: 1}}
		// 4.02 for a request that names a block past the body.
		startFake(t, r.srv, withoutSize2(t, srv, func(asked []uint32) bool { return slices.Max(asked) >= nblk }))
		c := r.dial(t, "udp", &client.Config{Rand: rand.New(rand.NewPCG(1, 2))})
		var got []byte
		err := c.GetBlocks(context.Background(), client.BlockRequest{Path: "x", QBlock: true}, func(ch client.Chunk) error {
			got = append(got, ch.Payload...)
			return nil
		})
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("%v, %d bytes of %d; requests:\n\t%s", err, len(got), len(body), strings.Join(srv.requests(), "\n\t"))
		}
	})
}

// withoutSize2 serves srv's answers without Size2, and answers 4.02 Bad
// Option (RFC 7959 2.2) to a request whose Q-Block2 block numbers refuse
// says are past the body, logged as srv logs the others.
func withoutSize2(t *testing.T, srv *qserver, refuse func(asked []uint32) bool) func(*coap.Message, net.Addr) [][]byte {
	var mid int32
	return func(req *coap.Message, from net.Addr) [][]byte {
		var asked []uint32
		for _, o := range req.Options {
			if o.ID == coap.QBlock2 {
				v, _ := coap.Uint(coap.Options{o}, coap.QBlock2)
				b, _ := coap.ParseBlock(v, false)
				asked = append(asked, b.Num)
			}
		}
		if len(asked) > 0 && refuse(asked) {
			srv.handle(req, from) // logged
			mid++
			return [][]byte{encode(t, coap.NonConfirmable, coap.BadOption, 30000+mid, req.Token, []byte("no such block"))}
		}
		var out [][]byte
		for _, d := range srv.handle(req, from) {
			var m coap.Message
			if err := coap.DecodeUDP(d, &m); err != nil {
				t.Fatal(err)
			}
			m.Options = m.Options.Remove(coap.Size2)
			b, err := coap.AppendUDP(nil, &m)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
		}
		return out
	}
}

package client

import (
	"testing"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/sock"
)

// nopSocket sends into the void.
type nopSocket struct{ sock.Socket }

func (nopSocket) Send([]byte) error { return nil }

// TestQBlockStateIsBounded: a long transfer's bookkeeping (blocks kept,
// asked for, the instants sets began to arrive) stays within the blocks
// it may keep ahead, not one entry per set of the whole body: a 1 GiB
// image is 100k sets of 10 blocks.
func TestQBlockStateIsBounded(t *testing.T) {
	c, err := NewUDP(nopSocket{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t0 := transfer{c: c, req: BlockRequest{}, fn: func(Chunk) error { return nil }, szx: 6, size2: -1}
	q := &qTransfer{transfer: t0, bs: 1024, mp: 10, ahead: 40, last: -1, followed: -1, deferred: -1,
		order: reorder{held: map[uint32][]byte{}}, asked: map[uint32]ask{}, setSeen: map[uint32]time.Time{}}
	m := &coap.Message{Payload: make([]byte, 1024)}
	for n := uint32(0); n < 100_000; n++ {
		if n%10 == 0 {
			q.request(int64(n)-1, true) // the Continue that asks for the set
		}
		if _, err := q.accept(coap.Block{Num: n, More: true, SZX: 6}, m); err != nil {
			t.Fatal(err)
		}
	}
	if q.order.next != 100_000 || len(q.order.held) > int(q.ahead) || len(q.asked) > int(q.ahead+q.mp) || len(q.setSeen) > int(q.ahead/q.mp+1) {
		t.Fatalf("after 100000 blocks: base %d, %d held, %d asked, %d sets seen", q.order.next, len(q.order.held), len(q.asked), len(q.setSeen))
	}
}

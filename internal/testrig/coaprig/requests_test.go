package coaprig_test

import (
	"net"
	"slices"
	"testing"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/internal/testrig/coaprig"
)

// queue is a server's socket that reads the datagrams it holds, then
// reports itself closed.
type queue struct {
	net.PacketConn
	in [][]byte
}

func (q *queue) ReadFrom(b []byte) (int, net.Addr, error) {
	if len(q.in) == 0 {
		return 0, nil, net.ErrClosed
	}
	n := copy(b, q.in[0])
	q.in = q.in[1:]
	return n, &net.UDPAddr{}, nil
}

// get is a GET datagram with the given Block2 or Q-Block2 values.
func get(t *testing.T, id coap.OptionID, blocks ...coap.Block) []byte {
	t.Helper()
	m := coap.Message{Type: coap.Confirmable, Code: coap.GET, MessageID: 1}
	for _, b := range blocks {
		m.Options, _ = coap.AppendUint(m.Options, nil, id, b.Value())
	}
	d, err := coap.AppendUDP(nil, &m)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestRequests: Block2 and Q-Block2 requests are logged as the blocks they
// ask for, a Q-Block2 set with M set up to the end of its set or of the
// body; what is not a GET is passed on and not counted; a held request is
// logged and not read.
func TestRequests(t *testing.T) {
	const kib = 6 // 1 KiB blocks
	var r coaprig.Requests
	r.SetSize(25 << 10)
	q := &queue{in: [][]byte{
		get(t, coap.Block2, coap.Block{Num: 0, SZX: kib}),
		get(t, coap.QBlock2, coap.Block{Num: 0, More: true, SZX: kib}),                                // the set 0..9
		get(t, coap.QBlock2, coap.Block{Num: 3, SZX: kib}, coap.Block{Num: 21, More: true, SZX: kib}), // 3, and 21..24
		{0x40, 0x00, 0x00, 0x02}, // an empty message: no GET
		get(t, coap.Block2, coap.Block{Num: 7, SZX: kib}),
	}}
	pc := r.Conn(q)
	buf := make([]byte, 1500)
	var read int
	for {
		if _, _, err := pc.ReadFrom(buf); err != nil {
			break
		}
		read++
		if read == 4 {
			r.Hold(7 << 10) // from block 7 on: the last GET goes unread
		}
	}
	if read != 4 || r.GETs() != 4 {
		t.Fatalf("%d datagrams read, %d GETs logged; want 4 and 4", read, r.GETs())
	}
	for num, want := range map[uint32]int{0: 2, 1: 1, 3: 2, 7: 2, 9: 1, 10: 0, 20: 0, 21: 1, 24: 1, 25: 0} {
		if got := r.Asked(num); got != want {
			t.Errorf("block %d asked %d times, want %d", num, got, want)
		}
	}
	if total := r.Total(); total != 1+10+1+4+1 {
		t.Errorf("Total %d, want 17", total)
	}
	if again, blocks := r.Refetched(); again != 3 || blocks != 14 {
		t.Errorf("Refetched %d again of %d blocks, want 3 of 14", again, blocks)
	}
	want := []coap.Block{{Num: 0, SZX: kib}, {Num: 0, More: true, SZX: kib}, {Num: 3, SZX: kib}, {Num: 21, More: true, SZX: kib}, {Num: 7, SZX: kib}}
	if got := r.Since(0); !slices.Equal(got, want) {
		t.Errorf("Since(0) = %v, want %v", got, want)
	}
	if got := r.Since(4); !slices.Equal(got, want[4:]) {
		t.Errorf("Since(4) = %v, want %v", got, want[4:])
	}
}

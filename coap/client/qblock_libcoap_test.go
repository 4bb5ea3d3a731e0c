package client_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/client"
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/sock/simnet"
)

// lcServer behaves on the wire as libcoap 4.3.5's coap-server -L 7 does
// (coap_block.c, measured against it): a request whose first Q-Block2
// option is 0 with M set starts a transfer, under a new ETag (a counter),
// and draws the first set, with ETag and Size2; while that transfer lives,
// every Q-Block2 option of a request is served (M on a set's first block:
// that set; M elsewhere: the rest of its set), the blocks of a Continue
// carrying the token of the request that started the transfer, the last
// one the Continue's own. Any other request is served by the resource's
// handler as a single block: the first option's block, alone, without ETag
// or Size2. With stateless set, no request ever starts a transfer (and
// single blocks carry ETag and Size2): a server that answers one option
// per request and never bursts.
type lcServer struct {
	t         *testing.T
	body      []byte
	mp        uint32
	stateless bool

	mu       sync.Mutex
	etag     byte
	origin   []byte // the token of the request that started the transfer; nil: none
	mid      int32
	requests int
}

func (s *lcServer) handle(req *coap.Message, _ net.Addr) [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.Code != coap.GET {
		return nil
	}
	s.requests++
	var blks []coap.Block
	for _, o := range req.Options {
		if o.ID == coap.QBlock2 {
			b, err := coap.ParseBlock(optValue(o.Value), false)
			if err != nil {
				s.t.Errorf("bad Q-Block2 %x", o.Value)
				return nil
			}
			blks = append(blks, b)
		}
	}
	if len(blks) == 0 {
		return nil
	}
	nblk := uint32((len(s.body) + 1023) / 1024)
	first := true
	var out [][]byte
	add := func(num uint32, token []byte, state bool) {
		if num >= nblk {
			return
		}
		off := int(num) * 1024
		opts := []coap.Option{uintOpt(coap.QBlock2, coap.Block{Num: num, More: num+1 < nblk, SZX: 6}.Value())}
		if state || s.stateless {
			opts = append(opts, coap.Option{ID: coap.ETag, Value: []byte{s.etag}}, uintOpt(coap.Size2, uint32(len(s.body))))
		}
		typ, mid := coap.NonConfirmable, s.mid
		if first && req.Type == coap.Confirmable {
			typ, mid = coap.Acknowledgement, req.MessageID
		} else {
			s.mid++
		}
		first = false
		out = append(out, encode(s.t, typ, coap.Content, mid, token, s.body[off:min(off+1024, len(s.body))], opts...))
	}
	switch {
	case !s.stateless && blks[0].Num == 0 && blks[0].More:
		s.etag++
		s.origin = bytes.Clone(req.Token)
		for n := range s.mp {
			add(n, req.Token, true)
		}
	case s.origin != nil:
		for _, b := range blks {
			end := b.Num
			if b.More {
				end = (b.Num/s.mp+1)*s.mp - 1
			}
			for n := b.Num; n <= end; n++ {
				tok := req.Token
				if b.More && b.Num%s.mp == 0 && n < end && n+1 < nblk {
					tok = s.origin
				}
				add(n, tok, true)
			}
		}
	default:
		add(blks[0].Num, req.Token, false)
	}
	return out
}

func optValue(b []byte) uint32 {
	var v uint32
	for _, c := range b {
		v = v<<8 | uint32(c)
	}
	return v
}

// lcGet downloads a body of size bytes from offset with Q-Block2 from srv
// over a simulated link of rtt, and returns the simulated time it took.
func lcGet(t *testing.T, srv *lcServer, size int, offset int64, rtt time.Duration) time.Duration {
	_, body := testrig.RandomFile(t, "x", size, 5)
	srv.t, srv.body, srv.mp = t, body, 10
	r := newSimRig(t, 1, "")
	r.dev.SetLink(simnet.LinkConfig{Delay: rtt / 2})
	startFake(t, r.srv, srv.handle)
	c := r.dial(t, "udp", &client.Config{Rand: rand.New(rand.NewPCG(1, 2))})
	began := time.Now()
	var got []byte
	err := c.GetBlocks(context.Background(), client.BlockRequest{Path: "x", QBlock: true, Offset: offset}, func(ch client.Chunk) error {
		if ch.Offset != offset+int64(len(got)) {
			t.Fatalf("chunk at %d, want %d", ch.Offset, offset+int64(len(got)))
		}
		got = append(got, ch.Payload...)
		return nil
	})
	took := time.Since(began)
	if err != nil || !bytes.Equal(got, body[offset:]) {
		t.Fatalf("%v, %d bytes of %d", err, len(got), len(body)-int(offset))
	}
	return took
}

// TestQBlockFromLibcoapStyleServer: against a server that answers the
// first request (block 0, M unset) without ETag or Size2 and bursts only
// for a request for the whole body, the client asks for the whole body, as
// libcoap's own client does, and then gets a set per round trip: 100
// blocks in 10 sets take the first request's round trip, the whole body's,
// and one per Continue, 12 in all, and 14 requests; the ETag every block
// is checked against is the burst's. Before, each block after the first
// took NON_RECEIVE_TIMEOUT (4 s): 4 minutes 45 seconds in all.
func TestQBlockFromLibcoapStyleServer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const rtt = 100 * time.Millisecond
		srv := &lcServer{}
		took := lcGet(t, srv, 100*1024, 0, rtt)
		t.Logf("%d blocks in %v (%.1f round trips), %d requests", 100, took, float64(took)/float64(rtt), srv.requests)
		if rounds := 12; took > time.Duration(rounds)*rtt {
			t.Errorf("took %v, more than %d round trips", took, rounds)
		}
		if srv.requests > 14 {
			t.Errorf("%d requests, want at most 14 (the first, the whole body, one Continue per set)", srv.requests)
		}
		if srv.etag != 1 {
			t.Errorf("the server started %d transfers, want 1", srv.etag)
		}
	})
}

// TestQBlockResumeFromLibcoapStyleServer: resumed past block 0 from that
// server, no request can start a burst, and the first block comes without
// ETag or Size2: the client asks one block per request, a set's worth at a
// time, and gets a set per round trip: 65 blocks from block 35, 7 sets, in
// at most 9 round trips (a window would take as many; lockstep 65).
func TestQBlockResumeFromLibcoapStyleServer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const rtt = 100 * time.Millisecond
		srv := &lcServer{}
		took := lcGet(t, srv, 100*1024, 35*1024+7, rtt)
		t.Logf("65 blocks in %v (%.1f round trips), %d requests", took, float64(took)/float64(rtt), srv.requests)
		if rounds := 9; took > time.Duration(rounds)*rtt {
			t.Errorf("took %v, more than %d round trips", took, rounds)
		}
		if srv.requests > 66 {
			t.Errorf("%d requests for 65 blocks", srv.requests)
		}
	})
}

// TestQBlockFromServerThatAnswersOneOption: a server that answers every
// request with the first block it names, alone (with ETag and Size2, so
// nothing tells it at first), is noticed after two requests for several
// blocks answered so, and then asked one block per request, a set's worth
// at a time: 60 blocks in at most 15 round trips (6 sets, and the round
// trips and overdue waits that tell), where NON_RECEIVE_TIMEOUT per block
// took 2 minutes 52 seconds.
func TestQBlockFromServerThatAnswersOneOption(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const rtt = 100 * time.Millisecond
		srv := &lcServer{stateless: true}
		took := lcGet(t, srv, 60*1024, 0, rtt)
		t.Logf("60 blocks in %v (%.1f round trips), %d requests", took, float64(took)/float64(rtt), srv.requests)
		if rounds := 15; took > time.Duration(rounds)*rtt {
			t.Errorf("took %v, more than %d round trips", took, rounds)
		}
	})
}

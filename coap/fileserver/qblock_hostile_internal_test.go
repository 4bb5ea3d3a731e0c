package fileserver

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/coap"
)

// TestQBlockReadFailureIsAPlainError: a file cut short in place while it
// is served (the server sees it at its next fstat, a millisecond later at most) makes a block of a
// burst unreadable: that block goes out as a 5.00 with no payload and no
// Q-Block2, ETag or Size2, not as a 5.00 that carries the options and the
// payload of the block sent before it.
func TestQBlockReadFailureIsAPlainError(t *testing.T) {
	synctest.Test(t, testQBlockReadFailure) // time stands still: within restat, the cut goes unseen
}

func testQBlockReadFailure(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fw.bin")
	if err := os.WriteFile(path, make([]byte, 40<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := New(dir, &Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	req := func(blocks ...uint32) *coap.Message {
		m := &coap.Message{Type: coap.NonConfirmable, Code: coap.GET, MessageID: 1, Token: []byte{1}}
		m.Options = m.Options.Add(coap.Option{ID: coap.URIPath, Value: []byte("fw.bin")})
		for _, n := range blocks {
			opts, _ := coap.AppendUint(nil, nil, coap.QBlock2, coap.Block{Num: n, SZX: 6}.Value())
			m.Options = m.Options.Add(opts[0])
		}
		return m
	}
	r := newResponse(udpMaxPayload)
	lim := limits{maxPayload: udpMaxPayload, qblock: true}
	s.handle(req(0), r, lim, client{}) // opens the file and reads ahead its first 32 KiB
	if r.m.Code != coap.Content {
		t.Fatalf("block 0: %v", r.m.Code)
	}
	if err := os.Truncate(path, 33000); err != nil { // in place: the open file shrinks
		t.Fatal(err)
	}
	m := req(31, 32)
	s.handle(m, r, lim, client{})
	if r.m.Code != coap.Content || !r.plan.active {
		t.Fatalf("block 31 (read ahead): %v", r.m.Code)
	}
	var mid uint16
	sent := 0
	s.afterQBlock(&qpacer{p: s.non, xfers: map[qkey]*qtransfer{}}, m, r, client{}, &mid, func(m *coap.Message, _ client) {
		sent++
		if m.Code == coap.Content {
			t.Fatalf("block 32 of a file cut at 33000 bytes: %v", m.Code)
		}
		for _, o := range m.Options {
			if o.ID == coap.QBlock2 || o.ID == coap.ETag || o.ID == coap.Size2 {
				t.Errorf("a %v response with option %d", m.Code, o.ID)
			}
		}
		if len(m.Payload) != 0 {
			t.Errorf("a %v response with a %d-byte payload", m.Code, len(m.Payload))
		}
	})
	if sent != 1 {
		t.Fatalf("%d responses sent, want block 32's", sent)
	}
}

// TestQBlockTransfersAreBounded: whole-body requests from 5000 addresses
// (or one address and 5000 queries) leave at most maxTransfers paced
// transfers on the socket, whatever pacing does meanwhile.
func TestQBlockTransfersAreBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "fw.bin"), make([]byte, 64<<10), 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := New(dir, &Options{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		r := newResponse(udpMaxPayload)
		lim := limits{maxPayload: udpMaxPayload, qblock: true}
		q := &qpacer{p: s.non, xfers: map[qkey]*qtransfer{}}
		var mid uint16
		sent := 0
		send := func(*coap.Message, client) { sent++ }
		for i := range 5000 {
			m := &coap.Message{Type: coap.NonConfirmable, Code: coap.GET, MessageID: 1, Token: []byte{1}}
			m.Options = m.Options.Add(coap.Option{ID: coap.URIPath, Value: []byte("fw.bin")})
			m.Options = m.Options.Add(coap.Option{ID: coap.URIQuery, Value: []byte(fmt.Sprint(i % 7))})
			opts, _ := coap.AppendUint(nil, nil, coap.QBlock2, coap.Block{Num: 0, More: true, SZX: 6}.Value())
			m.Options = m.Options.Add(opts[0])
			to := client{ap: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 5683)}
			s.handle(m, r, lim, to)
			if !r.plan.active {
				t.Fatalf("request %d: %v", i, r.m.Code)
			}
			s.afterQBlock(q, m, r, to, &mid, send)
			s.fire(q, r, &mid, send)
			if len(q.xfers) > maxTransfers {
				t.Fatalf("%d transfers paced after %d requests", len(q.xfers), i+1)
			}
			if i%100 == 0 {
				time.Sleep(time.Second) // some sets come due
			}
		}
		t.Logf("5000 requests: %d transfers paced, %d blocks sent", len(q.xfers), sent)
	})
}

package fileserver

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/tether-iot/tether/coap"
)

// FuzzQBlockRequest feeds the server arbitrary requests over UDP, Q-Block2
// options and all, and checks what it plans to send: blocks of the body
// only, in increasing order, each once, at most two sets; a Continue that
// paces at most the sets the body has; never a panic.
func FuzzQBlockRequest(f *testing.F) {
	dir := f.TempDir()
	body := bytes.Repeat([]byte("0123456789abcdef"), 2000) // 32000 bytes: 32 blocks of 1024
	if err := os.WriteFile(filepath.Join(dir, "fw.bin"), body, 0o644); err != nil {
		f.Fatal(err)
	}
	s, err := New(dir, &Options{QBlock: coap.NonParams{MaxPayloads: 4}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	seed := func(opts ...coap.Option) []byte {
		m := coap.Message{Type: coap.NonConfirmable, Code: coap.GET, MessageID: 1, Token: []byte{1}}
		m.Options = m.Options.Add(coap.Option{ID: coap.URIPath, Value: []byte("fw.bin")})
		for _, o := range opts {
			m.Options = m.Options.Add(o)
		}
		b, err := coap.AppendUDP(nil, &m)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	qb := func(num uint32, more bool, szx uint8) coap.Option {
		opts, _ := coap.AppendUint(nil, nil, coap.QBlock2, coap.Block{Num: num, More: more, SZX: szx}.Value())
		return opts[0]
	}
	f.Add(seed(qb(0, true, 6)))
	f.Add(seed(qb(3, false, 6), qb(5, false, 6), qb(8, true, 6)))
	f.Add(seed(qb(0, true, 0)))
	f.Add(seed(qb(31, false, 6), qb(40, true, 6)))
	f.Add(seed(qb(7, true, 5), qb(2, false, 5)))
	f.Fuzz(func(t *testing.T, datagram []byte) {
		var req coap.Message
		if coap.DecodeUDP(datagram, &req) != nil {
			return
		}
		r := newResponse(udpMaxPayload)
		lim := limits{maxPayload: udpMaxPayload, qblock: true}
		s.handle(&req, r, lim, client{})
		p := r.plan
		if !p.active {
			return
		}
		mp := int64(s.non.MaxPayloads)
		if len(p.rest)+1 > 2*int(mp) {
			t.Fatalf("%d blocks planned for one request; at most %d", len(p.rest)+1, 2*mp)
		}
		bs := int64(16) << p.szx
		first, _, err := coap.GetBlock(r.m.Options, coap.QBlock2, false)
		if err != nil || r.m.Code != coap.Content {
			t.Fatalf("first response %v, %v", coap.CodeString(r.m.Code), err)
		}
		prev := int64(first.Num)
		for _, n := range p.rest {
			if int64(n) <= prev || int64(n)*bs >= int64(len(body)) {
				t.Fatalf("block %d after %d, of a body of %d blocks", n, prev, (int64(len(body))+bs-1)/bs)
			}
			prev = int64(n)
		}
		if p.cont >= 0 && p.cont%mp != 0 {
			t.Fatalf("pacing from block %d, not the start of a set", p.cont)
		}
		// Send the rest and start the pacing, as the serving loop does.
		q := &qpacer{p: s.non, xfers: make(map[qkey]*qtransfer)}
		var mid uint16
		sent := 0
		send := func(m *coap.Message, _ client) {
			if _, err := coap.AppendUDP(nil, m); err != nil {
				t.Fatalf("encoding a response: %v", err)
			}
			sent++
		}
		s.afterQBlock(q, &req, r, client{ap: netip.MustParseAddrPort("192.0.2.1:5683")}, &mid, send)
		if sent != len(p.rest) || len(q.xfers) > 1 {
			t.Fatalf("%d responses sent for %d planned, %d transfers paced", sent, len(p.rest), len(q.xfers))
		}
	})
}

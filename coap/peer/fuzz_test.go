package peer_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"testing"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/peer"
)

// fuzzRig is a Peer with a request and a confirmable notification in
// flight and a non-confirmable notification sent, so that datagrams can
// match any of them. Its draws are seeded, so the seeds can name their
// message IDs and tokens; and it starts no goroutine, so a run is cheap
// and its coverage depends on the input alone.
type fuzzRig struct {
	p              *peer.Peer
	sent           [][]byte
	req, con       coap.Message
	nonMID         int32
	reqGot, conGot func() peer.Delivered
}

func newFuzzRig(t testing.TB) *fuzzRig {
	r := &fuzzRig{}
	r.p = peer.New(func(b []byte) error {
		r.sent = append(r.sent, append([]byte(nil), b...))
		return nil
	}, &peer.Config{
		Handler: func(req *coap.Message) coap.Message {
			// Echo what came, so whatever the decoder took in is encoded again.
			return coap.Message{Code: coap.Content, Options: req.Options, Payload: req.Payload}
		},
		OnReset:    func([]byte) {},
		OnResponse: func(m *coap.Message) bool { return len(m.Payload)%2 == 0 },
		Rand:       rand.New(rand.NewPCG(7, 7)),
	})
	non := coap.Message{Code: coap.Content, Token: []byte("obs")}
	if err := r.p.Notify(context.Background(), &non, false); err != nil {
		t.Fatal(err)
	}
	r.nonMID, r.sent = non.MessageID, nil
	var err error
	r.req = coap.Message{Code: coap.GET}
	if r.reqGot, err = r.p.Begin(&r.req, true); err != nil {
		t.Fatal(err)
	}
	r.con = coap.Message{Code: coap.Content, Token: []byte("obs2")}
	if r.conGot, err = r.p.Begin(&r.con, false); err != nil {
		t.Fatal(err)
	}
	return r
}

// FuzzInput: any sequence of datagrams is handled without a panic; all the
// Peer sends is well-formed CoAP; an exchange is answered at most once, and
// only by a response with its token; after Close nothing is left tracked.
//
// The input is a sequence of datagrams, each a length byte and its bytes.
func FuzzInput(f *testing.F) {
	r := newFuzzRig(f)
	enc := func(ms ...coap.Message) []byte {
		var out []byte
		for _, m := range ms {
			b, err := coap.AppendUDP(nil, &m)
			if err != nil {
				f.Fatal(err)
			}
			out = append(out, byte(len(b)))
			out = append(out, b...)
		}
		return out
	}
	tok, mid := string(r.req.Token), r.req.MessageID
	f.Add(enc(msg(coap.Acknowledgement, coap.Content, mid, tok, "piggy"), msg(coap.Acknowledgement, coap.Empty, r.con.MessageID, "", "")))
	f.Add(enc(msg(coap.Acknowledgement, coap.Empty, mid, "", ""), msg(coap.Confirmable, coap.Content, 9, tok, "sep"), msg(coap.Confirmable, coap.Content, 9, tok, "sep")))
	f.Add(enc(msg(coap.Reset, coap.Empty, mid, "", ""), msg(coap.Reset, coap.Empty, r.nonMID, "", ""), msg(coap.Reset, coap.Empty, r.con.MessageID, "", "")))
	f.Add(enc(msg(coap.Acknowledgement, coap.Content, mid, "other", "x"), msg(coap.NonConfirmable, coap.Content, 3, tok, "non")))
	f.Add(enc(msg(coap.Confirmable, coap.GET, 1, "t", "a"), msg(coap.Confirmable, coap.GET, 1, "t", "a"), msg(coap.NonConfirmable, coap.POST, 2, "n", "b"), msg(coap.NonConfirmable, coap.POST, 2, "n", "b")))
	f.Add(enc(msg(coap.Confirmable, coap.Empty, 5, "", ""), coap.Message{Type: coap.Confirmable, Code: coap.PUT, MessageID: 6, Token: []byte("12345678"),
		Options: coap.Options{{ID: coap.URIPath, Value: []byte("3")}, {ID: coap.Observe, Value: []byte{0}}, {ID: coap.Block2, Value: []byte{0x16}}}, Payload: []byte("v")}))
	f.Add([]byte{4, 0x49, 1, 0, 1, 5, 0x42, 1, 0, 2, 1, 2, 0x80, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := newFuzzRig(t)
		n := 0
		for len(data) > 0 {
			l := min(int(data[0]), len(data)-1)
			r.p.Input(data[1 : 1+l])
			data = data[1+l:]
			n++
			r.reqGot() // as the exchanges would see it, at once
			r.conGot()
		}
		if st := r.p.Stats(); st.Received != uint64(n) {
			t.Errorf("received %d datagrams; Stats says %d", n, st.Received)
		}
		req, con := r.reqGot(), r.conGot()
		if req.Responses+req.Resets > 1 || req.Acks > 1 || con.Acks+con.Resets > 1 || con.Responses > 0 {
			t.Errorf("the request was handed %+v, the notification %+v", req, con)
		}
		if m := req.Response; m != nil && (string(m.Token) != string(r.req.Token) || !coap.IsResponse(m.Code)) {
			t.Errorf("the request was answered by %v token %x", m.Code, m.Token)
		}
		r.p.Close()
		if pending, byToken := r.p.InFlight(); pending != 0 || byToken != 0 {
			t.Errorf("after Close: %d pending, %d by token", pending, byToken)
		}
		var m coap.Message
		for _, b := range r.sent {
			if err := coap.DecodeUDP(b, &m); err != nil {
				t.Errorf("sent % x: %v", b, err)
			}
		}
	})
}

// FuzzInputTruncated: the start of any datagram too long for the buffer is
// answered, if at all, by one well-formed 4.13, and the handler never
// runs.
func FuzzInputTruncated(f *testing.F) {
	big := msg(coap.Confirmable, coap.PUT, 7, "tk", string(make([]byte, 300)))
	b, _ := coap.AppendUDP(nil, &big)
	f.Add(b[:100])
	f.Add([]byte{0x40, 0x01, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		var sent [][]byte
		p := peer.New(func(b []byte) error { sent = append(sent, bytes.Clone(b)); return nil },
			&peer.Config{Handler: func(*coap.Message) coap.Message { t.Fatal("the handler ran"); return coap.Message{} }})
		defer p.Close()
		p.InputTruncated(data, 1<<16)
		if len(sent) > 1 {
			t.Fatalf("%d datagrams sent", len(sent))
		}
		for _, b := range sent {
			var m coap.Message
			if err := coap.DecodeUDP(b, &m); err != nil || m.Code != coap.RequestEntityTooLarge {
				t.Fatalf("sent % x (%v)", b, err)
			}
		}
	})
}

package peer_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/peer"
)

// streamFuzzRig is a Stream with a request in flight, whose writes are
// kept. Its tokens are seeded, so two rigs draw the same ones, and it
// starts no goroutine.
type streamFuzzRig struct {
	s     *peer.Stream
	sent  [][]byte
	token []byte
	got   func() *coap.Message
	resp  []*coap.Message
}

func newStreamFuzzRig(t testing.TB) *streamFuzzRig {
	r := &streamFuzzRig{}
	var err error
	r.s, err = peer.NewStream(func(b []byte) error {
		r.sent = append(r.sent, bytes.Clone(b))
		return nil
	}, &peer.StreamConfig{
		Handler: func(req *coap.Message) coap.Message {
			// Echo what came, so whatever the decoder took in is encoded again.
			return coap.Message{Code: coap.Content, Options: req.Options, Payload: req.Payload}
		},
		OnResponse:     func(m *coap.Message) bool { return len(m.Payload)%2 == 0 },
		MaxMessageSize: 512,
		Rand:           rand.New(rand.NewPCG(7, 7)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.token, r.got, err = r.s.BeginStream(); err != nil {
		t.Fatal(err)
	}
	return r
}

// input feeds data in pieces of cut bytes (all at once if cut is 0) and
// returns the first error Input reported.
func (r *streamFuzzRig) input(data []byte, cut int) error {
	if cut <= 0 {
		cut = len(data) + 1
	}
	var first error
	for len(data) > 0 {
		n := min(cut, len(data))
		if err := r.s.Input(bytes.Clone(data[:n])); err != nil && first == nil {
			first = err
		}
		data = data[n:]
		if m := r.got(); m != nil {
			r.resp = append(r.resp, m)
		}
	}
	return first
}

// FuzzStreamInput: any byte stream, cut anywhere, is handled without a
// panic and the same way however it is cut; all the Stream writes is whole
// well-formed frames; the request in flight is answered at most once, and
// only by a response with its token; a stream that ended stays ended and
// writes nothing more.
func FuzzStreamInput(f *testing.F) {
	r := newStreamFuzzRig(f)
	enc := func(ms ...coap.Message) []byte {
		var out []byte
		for _, m := range ms {
			b, err := coap.AppendTCP(nil, &m)
			if err != nil {
				f.Fatal(err)
			}
			out = append(out, b...)
		}
		return out
	}
	csm := coap.Message{Code: coap.CSM, Options: coap.Options{coap.UintOption(coap.MaxMessageSize, 100), {ID: coap.BlockWiseTransfer}}}
	tok := r.token
	f.Add(enc(csm, coap.Message{Code: coap.Content, Token: tok, Payload: []byte("x")}), uint8(0))
	f.Add(enc(csm, coap.Message{Code: coap.Ping, Token: []byte{1}}, coap.Message{Code: coap.Content, Token: []byte("obs"), Payload: []byte("22")}), uint8(3))
	f.Add(enc(csm, coap.Message{Code: coap.GET, Token: []byte("12345678"), Options: coap.Options{{ID: coap.URIPath, Value: []byte("3")}}, Payload: make([]byte, 120)}), uint8(1))
	f.Add(enc(csm, coap.Message{Code: coap.Release, Payload: []byte("bye")}, coap.Message{Code: coap.Content, Token: tok}), uint8(7))
	f.Add(enc(coap.Message{Code: coap.GET, Token: []byte{1}}), uint8(0))
	f.Add(enc(coap.Message{Code: coap.CSM, Options: coap.Options{{ID: 3}}}), uint8(2))
	f.Add(append(enc(csm), 0xd0, 0xff, 0x45), uint8(1))
	f.Add(append(enc(csm), 0x00, 0x00, 0x0f, 0x45), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, cut uint8) {
		whole, cutUp := newStreamFuzzRig(t), newStreamFuzzRig(t)
		errWhole := whole.input(data, 0)
		errCut := cutUp.input(data, int(cut))
		if (errWhole == nil) != (errCut == nil) || len(whole.sent) != len(cutUp.sent) || len(whole.resp) != len(cutUp.resp) {
			t.Fatalf("whole: %v, %d frames written, %d responses; cut in %d: %v, %d, %d",
				errWhole, len(whole.sent), len(whole.resp), cut, errCut, len(cutUp.sent), len(cutUp.resp))
		}
		for i := range whole.sent {
			if !bytes.Equal(whole.sent[i], cutUp.sent[i]) {
				t.Fatalf("frame %d: % x whole, % x cut", i, whole.sent[i], cutUp.sent[i])
			}
		}
		for _, r := range []*streamFuzzRig{whole, cutUp} {
			if len(r.resp) > 1 {
				t.Errorf("the request was answered %d times", len(r.resp))
			}
			for _, m := range r.resp {
				if !bytes.Equal(m.Token, r.token) || !coap.IsResponse(m.Code) {
					t.Errorf("the request was answered by %v token %x", m.Code, m.Token)
				}
			}
			var m coap.Message
			for i, b := range r.sent {
				n, err := coap.DecodeTCP(b, &m, 1<<20)
				if err != nil || n != len(b) {
					t.Errorf("wrote % x: %d bytes of %d a frame, %v", b, n, len(b), err)
				}
				if i == 0 && m.Code != coap.CSM {
					t.Errorf("the first frame is %v", m.Code)
				}
			}
			if r.s.Err() != nil {
				n := len(r.sent)
				if err := r.s.Input([]byte{0, 0}); err == nil || !errors.Is(err, r.s.Err()) {
					t.Errorf("Input after the end: %v, want %v", err, r.s.Err())
				}
				if len(r.sent) != n {
					t.Error("wrote a frame after the end")
				}
			}
			r.s.Close()
			if n := r.s.StreamInFlight(); n != 0 {
				t.Errorf("after Close, %d exchanges tracked", n)
			}
			if !slices.ContainsFunc([]error{peer.ErrClosed, peer.ErrAborted, peer.ErrReleased}, func(e error) bool { return errors.Is(r.s.Err(), e) }) {
				t.Errorf("Err() = %v", r.s.Err())
			}
		}
	})
}

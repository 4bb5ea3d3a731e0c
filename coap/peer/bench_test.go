package peer_test

import (
	"context"
	"encoding/binary"
	"testing"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/peer"
)

// BenchmarkRoundTrip: one confirmable request and its piggybacked response
// between two Peers joined in memory (the link itself does not allocate).
func BenchmarkRoundTrip(b *testing.B) {
	answer := []byte("22.5")
	pr := newPair(nil, &peer.Config{Handler: func(*coap.Message) coap.Message {
		return coap.Message{Code: coap.Content, Payload: answer}
	}}, nil)
	defer pr.close()
	opts := coap.Options{{ID: coap.URIPath, Value: []byte("3")}, {ID: coap.URIPath, Value: []byte("0")}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := pr.a.Do(ctx, &coap.Message{Code: coap.GET, Options: opts})
		if err != nil || len(resp.Payload) != len(answer) {
			b.Fatalf("Do: %v, %v", resp, err)
		}
	}
}

// BenchmarkInputRequest: Input of a confirmable request the handler
// answers, each with a message ID of its own so none is a duplicate.
func BenchmarkInputRequest(b *testing.B) {
	answer := []byte("22.5")
	p := peer.New(func([]byte) error { return nil }, &peer.Config{Handler: func(*coap.Message) coap.Message {
		return coap.Message{Code: coap.Content, Payload: answer}
	}})
	defer p.Close()
	req := coap.Message{Type: coap.Confirmable, Code: coap.GET, Token: []byte("12345678"),
		Options: coap.Options{{ID: coap.URIPath, Value: []byte("3")}, {ID: coap.URIPath, Value: []byte("0")}}}
	wire, err := coap.AppendUDP(nil, &req)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var mid uint16
	for b.Loop() {
		mid++
		binary.BigEndian.PutUint16(wire[2:], mid)
		p.Input(wire)
	}
	if st := p.Stats(); st.Duplicates != 0 {
		b.Fatalf("%d requests taken for duplicates", st.Duplicates)
	}
}

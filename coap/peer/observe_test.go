package peer_test

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/peer"
)

// TestOnResponse: a response that matches no exchange in flight (a
// notification of an observation whose exchange has ended) goes to
// OnResponse; taken, a confirmable one is acknowledged, and its
// retransmission acknowledged again without a second call; rejected, it is
// reset, confirmable or not.
func TestOnResponse(t *testing.T) {
	tests := []struct {
		name  string
		typ   coap.Type
		take  bool
		reply coap.Type // -1: nothing sent
	}{
		{"CON taken", coap.Confirmable, true, coap.Acknowledgement},
		{"CON rejected", coap.Confirmable, false, coap.Reset},
		{"NON taken", coap.NonConfirmable, true, -1},
		{"NON rejected", coap.NonConfirmable, false, coap.Reset},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var got []string
				p, w := newPeer(t, &peer.Config{OnResponse: func(m *coap.Message) bool {
					got = append(got, string(m.Token)+"="+string(m.Payload))
					return tt.take
				}})
				// The observation's own exchange: its first response goes to Do.
				done := startDo(context.Background(), p, &coap.Message{Code: coap.GET, Options: coap.Options{{ID: coap.Observe, Value: nil}}})
				req := w.next(t)
				in(t, p, msg(coap.Acknowledgement, coap.Content, req.m.MessageID, string(req.m.Token), "1"))
				if r := ended(t, done); r.err != nil || string(r.resp.Payload) != "1" {
					t.Fatalf("Do: %v, %v", r.resp, r.err)
				}
				// Then a notification, twice (its ACK lost).
				for range 2 {
					in(t, p, msg(tt.typ, coap.Content, 0x5000, string(req.m.Token), "2"))
					if tt.reply < 0 {
						w.none(t)
					} else {
						wantEmpty(t, w.next(t), tt.reply, 0x5000)
					}
				}
				calls := 2
				if tt.typ == coap.Confirmable && tt.take {
					calls = 1 // the retransmission is acknowledged from memory
				}
				if want := string(req.m.Token) + "=2"; len(got) != calls || got[0] != want {
					t.Errorf("OnResponse got %q; want %q %d times", got, want, calls)
				}
			})
		})
	}
}

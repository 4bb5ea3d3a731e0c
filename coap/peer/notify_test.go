package peer_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/peer"
)

// TestNotifyConfirmable: a confirmable notification waits for its ACK,
// fails with ErrReset on a Reset, and with ErrTimeout when neither comes.
func TestNotifyConfirmable(t *testing.T) {
	tests := []struct {
		name   string
		answer func(mid int32) []coap.Message
		err    error
		sends  int
	}{
		{"ACK", func(mid int32) []coap.Message {
			return []coap.Message{msg(coap.Acknowledgement, coap.Empty, mid, "", "")}
		}, nil, 1},
		{"RST", func(mid int32) []coap.Message { return []coap.Message{msg(coap.Reset, coap.Empty, mid, "", "")} }, peer.ErrReset, 1},
		{"ACK of another message, then none", func(mid int32) []coap.Message {
			return []coap.Message{msg(coap.Acknowledgement, coap.Empty, (mid+1)&0xffff, "", "")}
		}, peer.ErrTimeout, coap.DefaultParams.MaxRetransmit + 1},
		{"nothing", func(int32) []coap.Message { return nil }, peer.ErrTimeout, coap.DefaultParams.MaxRetransmit + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p, w := newPeer(t, nil)
				done := startNotify(context.Background(), p, &coap.Message{Code: coap.Content, Token: []byte("obs1"), Payload: []byte("22.5")}, true)
				s := w.next(t)
				if s.m.Type != coap.Confirmable || string(s.m.Token) != "obs1" || string(s.m.Payload) != "22.5" {
					t.Fatalf("sent %s; want CON with the notification's token and payload", describe(s.m))
				}
				waiting(t, done)
				for _, m := range tt.answer(s.m.MessageID) {
					in(t, p, m)
				}
				if r := <-done; !errors.Is(r.err, tt.err) || (tt.err == nil && r.err != nil) {
					t.Fatalf("Notify: %v; want %v", r.err, tt.err)
				}
				if n := 1 + len(w.all(t)); n != tt.sends {
					t.Errorf("sent %d times; want %d", n, tt.sends)
				}
				settled(t, p)
			})
		})
	}
}

// TestNotifyNonConfirmable: a non-confirmable notification returns once
// sent; a Reset of it later reaches OnReset with its token, once, and
// nothing else does.
func TestNotifyNonConfirmable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var resets []string
		p, w := newPeer(t, &peer.Config{OnReset: func(token []byte) { resets = append(resets, string(token)) }})
		mids := map[string]int32{}
		for i := range 5 {
			tok := []byte(fmt.Sprintf("obs%d", i))
			if err := p.Notify(context.Background(), &coap.Message{Code: coap.Content, Token: tok, Payload: []byte("v")}, false); err != nil {
				t.Fatalf("Notify: %v", err)
			}
			s := w.next(t)
			if s.m.Type != coap.NonConfirmable || string(s.m.Token) != string(tok) {
				t.Fatalf("sent %s; want NON with token %q", describe(s.m), tok)
			}
			if _, dup := mids[string(tok)]; dup {
				t.Fatalf("message ID %#x used twice", s.m.MessageID)
			}
			mids[string(tok)] = s.m.MessageID
			tok[0] = 'X' // the caller's buffer, reused
		}
		settled(t, p)

		in(t, p, msg(coap.Acknowledgement, coap.Empty, mids["obs1"], "", "")) // not a Reset
		in(t, p, msg(coap.Reset, coap.Empty, mids["obs3"], "", ""))
		in(t, p, msg(coap.Reset, coap.Empty, mids["obs3"], "", "")) // duplicated on the way
		in(t, p, msg(coap.Reset, coap.Empty, mids["obs0"], "", ""))
		in(t, p, msg(coap.Reset, coap.Empty, (mids["obs4"]+1)&0xffff, "", "")) // no such message
		w.none(t)
		if fmt.Sprint(resets) != "[obs3 obs0]" {
			t.Errorf("OnReset got %q; want [obs3 obs0]", resets)
		}
		if st := p.Stats(); st.Junk != 3 {
			t.Errorf("stats %+v; want 3 junk (the ACK, the duplicate Reset, the unknown one)", st)
		}
	})
}

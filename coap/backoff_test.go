package coap_test

import (
	"testing"
	"time"

	"github.com/tether-iot/tether/coap"
)

// TestBackoff: the schedule of RFC 7252 4.2 with the defaults, step by
// step: the first timeout from the draw, doubled at each timed
// retransmission, MAX_RETRANSMIT of them; an early retransmission counts
// against the bound but keeps the timeout; after an empty ACK, no
// retransmission and MAX_TRANSMIT_WAIT.
func TestBackoff(t *testing.T) {
	p := coap.DefaultParams
	for _, tc := range []struct {
		name    string
		r       float64
		steps   string // t: timer fired (Retry), e: early resend, a: empty ACK
		sends   int
		last    time.Duration
		retryOK bool // what the last Retry returned
	}{
		{"first timeout at r=0", 0, "", 1, 2 * time.Second, true},
		{"first timeout at r=0.5", 0.5, "", 1, 2500 * time.Millisecond, true},
		{"one retransmission", 0, "t", 2, 4 * time.Second, true},
		{"MAX_RETRANSMIT retransmissions", 0, "tttt", 5, 32 * time.Second, true},
		{"then the exchange is over", 0, "ttttt", 5, 32 * time.Second, false},
		{"an early resend counts", 0, "etttt", 5, 16 * time.Second, false},
		{"acknowledged: no retransmission", 0, "at", 1, 2 * time.Second, false},
	} {
		b := coap.NewBackoff(p, tc.r)
		ok := true
		for _, s := range tc.steps {
			switch s {
			case 't':
				ok = b.Retry()
			case 'e':
				if !b.CanResend() {
					t.Fatalf("%s: no early resend allowed", tc.name)
				}
				b.Resend()
			case 'a':
				if w := b.Ack(); w != p.MaxTransmitWait() {
					t.Fatalf("%s: wait after the ACK %v, want %v", tc.name, w, p.MaxTransmitWait())
				}
			}
		}
		if b.Sends != tc.sends || b.Timeout != tc.last || ok != tc.retryOK {
			t.Errorf("%s: %d sends, timeout %v, retry %v; want %d, %v, %v", tc.name, b.Sends, b.Timeout, ok, tc.sends, tc.last, tc.retryOK)
		}
	}
}

// TestDedup: a message ID is found under the kind it was added as, with
// its reply, until as many newer entries have overwritten it as the cache
// holds.
func TestDedup(t *testing.T) {
	d := coap.NewDedup(4)
	d.Add(7, coap.DedupAnswered, []byte("reply"))
	d.Add(8, coap.DedupAcked, nil)
	d.Add(9, coap.DedupAnswered, nil)
	for _, tc := range []struct {
		mid   uint16
		kind  coap.DedupKind
		ok    bool
		reply string
	}{
		{7, coap.DedupAnswered, true, "reply"},
		{7, coap.DedupAcked, false, ""},
		{8, coap.DedupAcked, true, ""},
		{8, coap.DedupAnswered, false, ""},
		{9, coap.DedupAnswered, true, ""},
		{0, coap.DedupAcked, false, ""}, // an unused slot matches nothing
		{10, coap.DedupAnswered, false, ""},
	} {
		reply, ok := d.Get(tc.mid, tc.kind)
		if ok != tc.ok || string(reply) != tc.reply || d.Has(tc.mid, tc.kind) != tc.ok {
			t.Errorf("Get(%d, %d) = %q, %v; want %q, %v", tc.mid, tc.kind, reply, ok, tc.reply, tc.ok)
		}
	}
	d.Add(10, coap.DedupAcked, nil)
	d.Add(11, coap.DedupAcked, nil) // the fifth entry overwrites the first
	if d.Has(7, coap.DedupAnswered) || !d.Has(8, coap.DedupAcked) || !d.Has(11, coap.DedupAcked) {
		t.Error("the oldest entry was not the one overwritten")
	}
}

package peer_test

import (
	"bytes"
	"fmt"
	"testing"
	"testing/synctest"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/peer"
)

// echo answers 2.05 with "echo:" and the request's payload, and counts its
// calls.
type echo struct{ calls int }

func (e *echo) handle(req *coap.Message) coap.Message {
	e.calls++
	return coap.Message{Code: coap.Content, Payload: append([]byte("echo:"), req.Payload...)}
}

// want describes a datagram the Peer must send; mid -1 is a message ID of
// the Peer's own, other than the request's.
type want struct {
	typ            coap.Type
	code           coap.Code
	mid            int32
	token, payload string
}

// TestServe feeds one Peer the other side's requests, and junk, by hand.
func TestServe(t *testing.T) {
	con := func(mid int32, payload string) []byte {
		m := msg(coap.Confirmable, coap.GET, mid, "tk", payload)
		b, _ := coap.AppendUDP(nil, &m)
		return b
	}
	non := func(mid int32, payload string) []byte {
		m := msg(coap.NonConfirmable, coap.POST, mid, "nt", payload)
		b, _ := coap.AppendUDP(nil, &m)
		return b
	}
	raw := func(m coap.Message) []byte {
		b, _ := coap.AppendUDP(nil, &m)
		return b
	}
	echoes := func(e *echo) peer.Handler { return e.handle }
	tests := []struct {
		name    string
		handler func(*echo) peer.Handler
		in      [][]byte
		want    []want
		calls   int
		stats   peer.Stats // Received is checked against len(in), Sent against len(want)
	}{{
		name:  "CON request answered piggybacked",
		in:    [][]byte{con(0x1234, "a")},
		want:  []want{{coap.Acknowledgement, coap.Content, 0x1234, "tk", "echo:a"}},
		calls: 1,
	}, {
		name: "retransmitted CON answered from the cache",
		in:   [][]byte{con(0x1234, "a"), con(0x1234, "a"), con(0x1234, "a")},
		want: []want{
			{coap.Acknowledgement, coap.Content, 0x1234, "tk", "echo:a"},
			{coap.Acknowledgement, coap.Content, 0x1234, "tk", "echo:a"},
			{coap.Acknowledgement, coap.Content, 0x1234, "tk", "echo:a"},
		},
		calls: 1,
		stats: peer.Stats{Duplicates: 2},
	}, {
		name: "CON requests with other message IDs each run",
		in:   [][]byte{con(1, "a"), con(2, "b")},
		want: []want{
			{coap.Acknowledgement, coap.Content, 1, "tk", "echo:a"},
			{coap.Acknowledgement, coap.Content, 2, "tk", "echo:b"},
		},
		calls: 2,
	}, {
		name:  "NON request answered NON",
		in:    [][]byte{non(0x2000, "n")},
		want:  []want{{coap.NonConfirmable, coap.Content, -1, "nt", "echo:n"}},
		calls: 1,
	}, {
		name:  "repeated NON request dropped",
		in:    [][]byte{non(0x2000, "n"), non(0x2000, "n")},
		want:  []want{{coap.NonConfirmable, coap.Content, -1, "nt", "echo:n"}},
		calls: 1,
		stats: peer.Stats{Duplicates: 1},
	}, {
		name: "zero Code answered 5.00",
		handler: func(e *echo) peer.Handler {
			return func(*coap.Message) coap.Message { e.calls++; return coap.Message{} }
		},
		in:    [][]byte{con(7, "")},
		want:  []want{{coap.Acknowledgement, coap.InternalServerError, 7, "tk", ""}},
		calls: 1,
	}, {
		name: "the handler's type, message ID and token are overridden",
		handler: func(e *echo) peer.Handler {
			return func(*coap.Message) coap.Message {
				e.calls++
				return coap.Message{Type: coap.Reset, MessageID: 99, Token: []byte("mine"), Code: coap.Content}
			}
		},
		in:    [][]byte{con(7, "")},
		want:  []want{{coap.Acknowledgement, coap.Content, 7, "tk", ""}},
		calls: 1,
	}, {
		name:    "nil Handler answers 4.04",
		handler: func(*echo) peer.Handler { return nil },
		in:      [][]byte{con(8, "x"), non(9, "y")},
		want: []want{
			{coap.Acknowledgement, coap.NotFound, 8, "tk", ""},
			{coap.NonConfirmable, coap.NotFound, -1, "nt", ""},
		},
	}, {
		name: "empty CON (ping) answered RST",
		in:   [][]byte{raw(msg(coap.Confirmable, coap.Empty, 0x3000, "", ""))},
		want: []want{{coap.Reset, coap.Empty, 0x3000, "", ""}},
	}, {
		name: "empty NON ignored",
		in:   [][]byte{raw(msg(coap.NonConfirmable, coap.Empty, 0x3000, "", ""))},
	}, {
		name:  "CON with a token length over 8 gets RST",
		in:    [][]byte{{0x40 | 9, byte(coap.GET), 0xab, 0xcd, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
		want:  []want{{coap.Reset, coap.Empty, 0xabcd, "", ""}},
		stats: peer.Stats{Junk: 1},
	}, {
		name:  "CON cut short in its token gets RST",
		in:    [][]byte{{0x42, byte(coap.GET), 0x12, 0x34, 1}},
		want:  []want{{coap.Reset, coap.Empty, 0x1234, "", ""}},
		stats: peer.Stats{Junk: 1},
	}, {
		name:  "CON with a malformed option gets RST",
		in:    [][]byte{{0x40, byte(coap.GET), 0x12, 0x35, 0xf1, 0}},
		want:  []want{{coap.Reset, coap.Empty, 0x1235, "", ""}},
		stats: peer.Stats{Junk: 1},
	}, {
		name:  "malformed NON counted, not answered",
		in:    [][]byte{{0x50 | 9, byte(coap.GET), 0, 1}},
		stats: peer.Stats{Junk: 1},
	}, {
		name:  "malformed ACK counted, not answered",
		in:    [][]byte{{0x60 | 2, 0, 0, 1}},
		stats: peer.Stats{Junk: 1},
	}, {
		name:  "other version counted, not answered",
		in:    [][]byte{{0x80, byte(coap.GET), 0, 1}},
		stats: peer.Stats{Junk: 1},
	}, {
		name:  "shorter than a header",
		in:    [][]byte{{}, {0x40}, {0x40, 1, 0}},
		stats: peer.Stats{Junk: 3},
	}, {
		name:  "CON response nobody asked for gets RST",
		in:    [][]byte{raw(msg(coap.Confirmable, coap.Content, 0x4000, "zz", "x"))},
		want:  []want{{coap.Reset, coap.Empty, 0x4000, "", ""}},
		stats: peer.Stats{Junk: 1},
	}, {
		name:  "NON response nobody asked for dropped",
		in:    [][]byte{raw(msg(coap.NonConfirmable, coap.Content, 0x4000, "zz", "x"))},
		stats: peer.Stats{Junk: 1},
	}, {
		name:  "ACK and RST of nothing dropped",
		in:    [][]byte{raw(msg(coap.Acknowledgement, coap.Content, 0x4000, "zz", "x")), raw(msg(coap.Reset, coap.Empty, 0x4001, "", ""))},
		stats: peer.Stats{Junk: 2},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := &echo{}
				h := tt.handler
				if h == nil {
					h = echoes
				}
				p, w := newPeer(t, &peer.Config{Handler: h(e)})
				for _, b := range tt.in {
					inRaw(p, bytes.Clone(b))
				}
				got := w.all(t)
				for i, s := range got {
					if i >= len(tt.want) {
						t.Errorf("also sent % x", s.b)
						continue
					}
					wt := tt.want[i]
					if s.m.Type != wt.typ || s.m.Code != wt.code || string(s.m.Token) != wt.token || string(s.m.Payload) != wt.payload ||
						(wt.mid >= 0 && s.m.MessageID != wt.mid) || (wt.mid < 0 && s.m.MessageID == reqMID(tt.in[i])) {
						t.Errorf("sent %s; want %s", describe(s.m), describe(coap.Message{Type: wt.typ, Code: wt.code, MessageID: wt.mid, Token: []byte(wt.token), Payload: []byte(wt.payload)}))
					}
				}
				if len(got) < len(tt.want) {
					t.Errorf("sent %d datagrams; want %d", len(got), len(tt.want))
				}
				if e.calls != tt.calls {
					t.Errorf("the handler ran %d times; want %d", e.calls, tt.calls)
				}
				wantStats := tt.stats
				wantStats.Received, wantStats.Sent = uint64(len(tt.in)), uint64(len(tt.want))
				if st := p.Stats(); st != wantStats {
					t.Errorf("stats %+v; want %+v", st, wantStats)
				}
			})
		})
	}
}

func reqMID(b []byte) int32 { return int32(b[2])<<8 | int32(b[3]) }

func describe(m coap.Message) string {
	return fmt.Sprintf("%v %v mid %#x token %q payload %q", m.Type, m.Code, m.MessageID, m.Token, m.Payload)
}

// TestServeCacheSpan: a retransmission is answered from the cache while
// fewer than 32 other requests came after it (cache.go's bound), with the
// answer first given even if the handler would now answer otherwise.
func TestServeCacheSpan(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		calls := 0
		p, w := newPeer(t, &peer.Config{Handler: func(*coap.Message) coap.Message {
			calls++
			return coap.Message{Code: coap.Content, Payload: fmt.Appendf(nil, "call %d", calls)}
		}})
		for mid := range int32(32) {
			in(t, p, msg(coap.Confirmable, coap.PUT, mid, "t", ""))
		}
		first := w.all(t)
		for mid := range int32(32) {
			in(t, p, msg(coap.Confirmable, coap.PUT, mid, "t", ""))
			if s := w.next(t); !bytes.Equal(s.b, first[mid].b) {
				t.Fatalf("retransmission of mid %d answered % x; want the first answer % x", mid, s.b, first[mid].b)
			}
		}
		if calls != 32 {
			t.Fatalf("the handler ran %d times for 32 requests", calls)
		}
	})
}

// TestServeHandlerSeesRequest: the handler gets the request as sent (valid
// during the call), and its answer carries the options it returned.
func TestServeHandlerSeesRequest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var seen []string
		p, w := newPeer(t, &peer.Config{Handler: func(req *coap.Message) coap.Message {
			path, _ := coap.Bytes(req.Options, coap.URIPath)
			seen = append(seen, fmt.Sprintf("%v %v %s %s", req.Type, req.Code, path, req.Payload))
			return coap.Message{Code: coap.Content, Options: coap.Options{{ID: coap.ContentFormat, Value: []byte{42}}}}
		}})
		in(t, p, coap.Message{Type: coap.Confirmable, Code: coap.PUT, MessageID: 5, Token: []byte("t"),
			Options: coap.Options{{ID: coap.URIPath, Value: []byte("3")}}, Payload: []byte("v")})
		s := w.next(t)
		if cf, ok := coap.Uint(s.m.Options, coap.ContentFormat); !ok || cf != 42 {
			t.Errorf("answer options %v; want the handler's Content-Format", s.m.Options)
		}
		if want := fmt.Sprintf("%v %v 3 v", coap.Confirmable, coap.PUT); len(seen) != 1 || seen[0] != want {
			t.Errorf("handler saw %q; want %q", seen, want)
		}
	})
}

// TestInputTruncated: a request longer than the receive buffer is answered
// 4.13 with Size1 and a Block1 size that fits the buffer, without calling
// the handler; a duplicate gets the same answer; a truncated response or
// junk is dropped.
func TestInputTruncated(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var e echo
		p, w := newPeer(t, &peer.Config{Handler: e.handle})
		big := msg(coap.Confirmable, coap.PUT, 0x77, "tk", string(bytes.Repeat([]byte("x"), 3000)))
		b, _ := coap.AppendUDP(nil, &big)
		for range 2 { // and its retransmission
			p.InputTruncated(b[:1500], 65536)
			s := w.next(t)
			if s.m.Type != coap.Acknowledgement || s.m.Code != coap.RequestEntityTooLarge || s.m.MessageID != 0x77 || string(s.m.Token) != "tk" {
				t.Fatalf("answered %v %v mid %#x token %q, want an ACK 4.13", s.m.Type, coap.CodeString(s.m.Code), s.m.MessageID, s.m.Token)
			}
			b1, ok, err := coap.GetBlock(s.m.Options, coap.Block1, false)
			if !ok || err != nil || b1.Size() != 1024 || b1.Num != 0 || b1.More {
				t.Errorf("Block1 %v (%v, %v), want 0/0/1024", b1, ok, err)
			}
			if size1, ok := coap.Uint(s.m.Options, coap.Size1); !ok || size1 != 65536 {
				t.Errorf("Size1 %d (%v), want 65536", size1, ok)
			}
		}
		small := msg(coap.Confirmable, coap.PUT, 0x78, "tk", string(bytes.Repeat([]byte("x"), 500)))
		b, _ = coap.AppendUDP(nil, &small)
		p.InputTruncated(b[:200], 4096)
		if s := w.next(t); s.m.Code != coap.RequestEntityTooLarge {
			t.Fatalf("answered %v, want 4.13", coap.CodeString(s.m.Code))
		} else if b1, _, _ := coap.GetBlock(s.m.Options, coap.Block1, false); b1.Size() != 128 {
			t.Errorf("Block1 size %d for a 200-byte buffer, want 128", b1.Size())
		}
		resp := msg(coap.Acknowledgement, coap.Content, 0x79, "tk", string(bytes.Repeat([]byte("y"), 3000)))
		b, _ = coap.AppendUDP(nil, &resp)
		p.InputTruncated(b[:1500], 65536)
		p.InputTruncated([]byte{0x40, 0x03}, 65536)
		w.none(t)
		if e.calls != 0 {
			t.Errorf("the handler was called %d times", e.calls)
		}
	})
}

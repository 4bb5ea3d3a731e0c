package peer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/peer"
)

// TestDoAnswers drives the other side of one exchange by hand: each way a
// response can come, and the answers that must not be taken for one.
func TestDoAnswers(t *testing.T) {
	tests := []struct {
		name string
		// answer plays the other side, given the request as sent.
		answer  func(t *testing.T, p *peer.Peer, w *wire, req coap.Message)
		payload string // the response Do returns, or
		err     error  // its error
		junk    uint64
	}{{
		name: "piggybacked",
		answer: func(t *testing.T, p *peer.Peer, w *wire, req coap.Message) {
			in(t, p, msg(coap.Acknowledgement, coap.Content, req.MessageID, string(req.Token), "piggy"))
			w.none(t)
		},
		payload: "piggy",
	}, {
		name: "empty ACK, then separate CON response",
		answer: func(t *testing.T, p *peer.Peer, w *wire, req coap.Message) {
			in(t, p, msg(coap.Acknowledgement, coap.Empty, req.MessageID, "", ""))
			w.none(t)
			in(t, p, msg(coap.Confirmable, coap.Content, 0x7000, string(req.Token), "separate"))
			wantEmpty(t, w.next(t), coap.Acknowledgement, 0x7000)
		},
		payload: "separate",
	}, {
		name: "empty ACK, then separate NON response",
		answer: func(t *testing.T, p *peer.Peer, w *wire, req coap.Message) {
			in(t, p, msg(coap.Acknowledgement, coap.Empty, req.MessageID, "", ""))
			in(t, p, msg(coap.NonConfirmable, coap.Content, 0x7000, string(req.Token), "non"))
			w.none(t)
		},
		payload: "non",
	}, {
		name: "separate CON response, its empty ACK lost",
		answer: func(t *testing.T, p *peer.Peer, w *wire, req coap.Message) {
			in(t, p, msg(coap.Confirmable, coap.Content, 0x7000, string(req.Token), "separate"))
			wantEmpty(t, w.next(t), coap.Acknowledgement, 0x7000)
		},
		payload: "separate",
	}, {
		name: "Reset",
		answer: func(t *testing.T, p *peer.Peer, w *wire, req coap.Message) {
			in(t, p, msg(coap.Reset, coap.Empty, req.MessageID, "", ""))
		},
		err: peer.ErrReset,
	}, {
		name: "Reset of another message ID is not this one's",
		answer: func(t *testing.T, p *peer.Peer, w *wire, req coap.Message) {
			in(t, p, msg(coap.Reset, coap.Empty, req.MessageID^1, "", ""))
			in(t, p, msg(coap.Acknowledgement, coap.Content, req.MessageID, string(req.Token), "ok"))
		},
		payload: "ok",
		junk:    1,
	}, {
		// RFC 7252 5.3.2: a piggybacked response matches by message ID
		// and token. The wrong one is dropped and the right one, with the
		// same message ID, still finds the exchange.
		name: "piggybacked with the wrong token, then the right one",
		answer: func(t *testing.T, p *peer.Peer, w *wire, req coap.Message) {
			in(t, p, msg(coap.Acknowledgement, coap.Content, req.MessageID, "not-it", "wrong"))
			w.none(t)
			in(t, p, msg(coap.Acknowledgement, coap.Content, req.MessageID, string(req.Token), "right"))
		},
		payload: "right",
		junk:    1,
	}, {
		name: "piggybacked with no token",
		answer: func(t *testing.T, p *peer.Peer, w *wire, req coap.Message) {
			in(t, p, msg(coap.Acknowledgement, coap.Content, req.MessageID, "", "wrong"))
			in(t, p, msg(coap.Acknowledgement, coap.Content, req.MessageID, string(req.Token), "right"))
		},
		payload: "right",
		junk:    1,
	}, {
		name: "separate response with the wrong token is reset",
		answer: func(t *testing.T, p *peer.Peer, w *wire, req coap.Message) {
			in(t, p, msg(coap.Acknowledgement, coap.Empty, req.MessageID, "", ""))
			in(t, p, msg(coap.Confirmable, coap.Content, 0x7000, "not-it", "wrong"))
			wantEmpty(t, w.next(t), coap.Reset, 0x7000)
			in(t, p, msg(coap.Confirmable, coap.Content, 0x7001, string(req.Token), "right"))
			wantEmpty(t, w.next(t), coap.Acknowledgement, 0x7001)
		},
		payload: "right",
		junk:    1,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p, w := newPeer(t, nil)
				req := &coap.Message{Code: coap.POST, Payload: []byte("body")}
				done := startDo(context.Background(), p, req)
				s := w.next(t)
				if s.m.Type != coap.Confirmable || s.m.Code != coap.POST || len(s.m.Token) != 8 || string(s.m.Payload) != "body" {
					t.Fatalf("request sent as %v %v token %x payload %q; want CON POST, an 8-byte token, the payload", s.m.Type, s.m.Code, s.m.Token, s.m.Payload)
				}
				waiting(t, done)
				tt.answer(t, p, w, s.m)
				r := ended(t, done)
				switch {
				case tt.err != nil:
					if !errors.Is(r.err, tt.err) || r.resp != nil {
						t.Fatalf("Do: %v, %v; want %v", r.resp, r.err, tt.err)
					}
				case r.err != nil:
					t.Fatalf("Do: %v", r.err)
				case string(r.resp.Payload) != tt.payload || r.resp.Code != coap.Content || string(r.resp.Token) != string(s.m.Token):
					t.Fatalf("Do: %v %q token %x; want 2.05 %q token %x", r.resp.Code, r.resp.Payload, r.resp.Token, tt.payload, s.m.Token)
				}
				if st := p.Stats(); st.Junk != tt.junk || st.Retransmissions != 0 {
					t.Errorf("stats %+v; want %d junk, no retransmission", st, tt.junk)
				}
				settled(t, p)
				// Nothing more is sent once the exchange has ended.
				time.Sleep(10 * p.Params().MaxTransmitWait())
				w.none(t)
			})
		})
	}
}

// wantEmpty checks an empty ACK or RST.
func wantEmpty(t *testing.T, s sent, typ coap.Type, mid int32) {
	t.Helper()
	if s.m.Type != typ || s.m.Code != coap.Empty || s.m.MessageID != mid || len(s.b) != 4 {
		t.Fatalf("sent % x (%v %v mid %#x); want an empty %v with mid %#x", s.b, s.m.Type, s.m.Code, s.m.MessageID, typ, mid)
	}
}

// TestDoRetransmission: a request nobody answers is sent MAX_RETRANSMIT+1
// times, each wait twice the one before, the first drawn from [ACK_TIMEOUT,
// ACK_TIMEOUT*ACK_RANDOM_FACTOR] (RFC 7252 4.2, 4.8), then fails with
// ErrTimeout.
func TestDoRetransmission(t *testing.T) {
	for _, params := range []coap.Params{
		coap.DefaultParams,
		{AckTimeout: time.Second, AckRandomFactor: 1, MaxRetransmit: 0, NStart: 1},
		{AckTimeout: 300 * time.Millisecond, AckRandomFactor: 2, MaxRetransmit: 7, NStart: 1},
	} {
		for seed := range uint64(4) {
			t.Run(fmt.Sprintf("%v,%v,%d/seed%d", params.AckTimeout, params.AckRandomFactor, params.MaxRetransmit, seed), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					p, w := newPeer(t, &peer.Config{Params: params, Rand: rand.New(rand.NewPCG(seed, seed))})
					r := <-startDo(context.Background(), p, &coap.Message{Code: coap.GET})
					if !errors.Is(r.err, peer.ErrTimeout) {
						t.Fatalf("Do: %v; want ErrTimeout", r.err)
					}
					sends := w.all(t)
					if len(sends) != params.MaxRetransmit+1 {
						t.Fatalf("%d transmissions; want MAX_RETRANSMIT+1 = %d", len(sends), params.MaxRetransmit+1)
					}
					first := sends[0]
					timeout := r.at.Sub(first.at) // at the end, the wait after the last one
					if len(sends) > 1 {
						timeout = sends[1].at.Sub(first.at)
					}
					hi := time.Duration(float64(params.AckTimeout) * params.AckRandomFactor)
					if timeout < params.AckTimeout || timeout > hi {
						t.Errorf("first timeout %v; want within [%v, %v]", timeout, params.AckTimeout, hi)
					}
					for i, s := range sends {
						if !bytes.Equal(s.b, first.b) {
							t.Errorf("transmission %d is % x; want the first one again, % x", i+1, s.b, first.b)
						}
						next := r.at
						if i+1 < len(sends) {
							next = sends[i+1].at
						}
						if got, want := next.Sub(s.at), timeout<<i; got != want {
							t.Errorf("wait after transmission %d: %v; want %v", i+1, got, want)
						}
					}
					total := r.at.Sub(first.at)
					lo := params.AckTimeout * (1<<(params.MaxRetransmit+1) - 1)
					if total < lo || total > time.Duration(float64(lo)*params.AckRandomFactor) {
						t.Errorf("gave up after %v; want within [%v, %v]", total, lo, time.Duration(float64(lo)*params.AckRandomFactor))
					}
					if st := p.Stats(); st.Retransmissions != uint64(params.MaxRetransmit) || st.Sent != uint64(len(sends)) {
						t.Errorf("stats %+v; want %d retransmissions, %d sent", st, params.MaxRetransmit, len(sends))
					}
					settled(t, p)
				})
			})
		}
	}
}

// TestDoAckedNeverAnswered: once the request is acknowledged it is not sent
// again, and the wait for its separate response ends after
// MAX_TRANSMIT_WAIT.
func TestDoAckedNeverAnswered(t *testing.T) {
	for _, params := range []coap.Params{
		coap.DefaultParams,
		{AckTimeout: 100 * time.Millisecond, AckRandomFactor: 1.2, MaxRetransmit: 2, NStart: 1},
	} {
		t.Run(fmt.Sprint(params.MaxTransmitWait()), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p, w := newPeer(t, &peer.Config{Params: params})
				done := startDo(context.Background(), p, &coap.Message{Code: coap.GET})
				req := w.next(t)
				// Acknowledged after one retransmission: the first timeout T is
				// under ACK_TIMEOUT*ACK_RANDOM_FACTOR, the second ends at 3T.
				time.Sleep(time.Duration(float64(params.AckTimeout) * params.AckRandomFactor))
				if again := w.next(t); !bytes.Equal(again.b, req.b) {
					t.Fatalf("retransmission % x; want % x", again.b, req.b)
				}
				in(t, p, msg(coap.Acknowledgement, coap.Empty, req.m.MessageID, "", ""))
				acked := time.Now()
				r := <-done
				if !errors.Is(r.err, peer.ErrTimeout) {
					t.Fatalf("Do: %v; want ErrTimeout", r.err)
				}
				if got := r.at.Sub(acked); got != params.MaxTransmitWait() {
					t.Errorf("gave up %v after the ACK; want MAX_TRANSMIT_WAIT, %v", got, params.MaxTransmitWait())
				}
				w.none(t)
				settled(t, p)
			})
		})
	}
}

// TestDoContextCancelled: the exchange ends with the context's error and is
// forgotten, so what the other side sends for it later is not taken.
func TestDoContextCancelled(t *testing.T) {
	for _, acked := range []bool{false, true} {
		t.Run(fmt.Sprintf("acked=%v", acked), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p, w := newPeer(t, nil)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				start := time.Now()
				done := startDo(ctx, p, &coap.Message{Code: coap.GET})
				req := w.next(t)
				if acked {
					in(t, p, msg(coap.Acknowledgement, coap.Empty, req.m.MessageID, "", ""))
				}
				r := <-done
				if !errors.Is(r.err, context.DeadlineExceeded) || r.at.Sub(start) != 5*time.Second {
					t.Fatalf("Do: %v after %v; want the deadline, after 5s", r.err, r.at.Sub(start))
				}
				settled(t, p)
				w.all(t) // the retransmissions before the deadline

				junk := p.Stats().Junk
				in(t, p, msg(coap.Acknowledgement, coap.Content, req.m.MessageID, string(req.m.Token), "late"))
				w.none(t)
				in(t, p, msg(coap.Confirmable, coap.Content, 0x7000, string(req.m.Token), "late"))
				wantEmpty(t, w.next(t), coap.Reset, 0x7000)
				if got := p.Stats().Junk - junk; got != 2 {
					t.Errorf("%d late answers counted as junk; want 2", got)
				}
			})
		})
	}
	t.Run("before the call", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p, w := newPeer(t, nil)
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if _, err := p.Do(ctx, &coap.Message{Code: coap.POST}); !errors.Is(err, context.Canceled) {
				t.Fatalf("Do: %v; want context.Canceled", err)
			}
			w.none(t) // a request its caller gave up on is not sent
			settled(t, p)
		})
	})
}

// TestClose: exchanges in flight, acknowledged or not, end with ErrClosed;
// later ones fail at once and send nothing; Input is ignored.
func TestClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		calls := 0
		p, w := newPeer(t, &peer.Config{Handler: func(*coap.Message) coap.Message {
			calls++
			return coap.Message{Code: coap.Content}
		}})
		unacked := startDo(context.Background(), p, &coap.Message{Code: coap.GET})
		w.next(t)
		acked := startDo(context.Background(), p, &coap.Message{Code: coap.GET})
		in(t, p, msg(coap.Acknowledgement, coap.Empty, w.next(t).m.MessageID, "", ""))
		notified := startNotify(context.Background(), p, &coap.Message{Code: coap.Content, Token: []byte("obs")}, true)
		w.next(t)
		waiting(t, unacked)
		waiting(t, acked)
		waiting(t, notified)

		p.Close()
		for name, c := range map[string]<-chan result{"unacknowledged Do": unacked, "acknowledged Do": acked, "Notify": notified} {
			if r := ended(t, c); !errors.Is(r.err, peer.ErrClosed) {
				t.Errorf("%s: %v; want ErrClosed", name, r.err)
			}
		}
		settled(t, p)

		if _, err := p.Do(context.Background(), &coap.Message{Code: coap.GET}); !errors.Is(err, peer.ErrClosed) {
			t.Errorf("Do after Close: %v; want ErrClosed", err)
		}
		for _, con := range []bool{true, false} {
			if err := p.Notify(context.Background(), &coap.Message{Code: coap.Content}, con); !errors.Is(err, peer.ErrClosed) {
				t.Errorf("Notify (confirmable %v) after Close: %v; want ErrClosed", con, err)
			}
		}
		in(t, p, msg(coap.Confirmable, coap.Empty, 1, "", ""))          // a ping
		in(t, p, msg(coap.Confirmable, coap.GET, 2, "t", ""))           // a request
		in(t, p, msg(coap.Confirmable, coap.Content, 3, "unknown", "")) // a response nobody waits for
		inRaw(p, []byte{0x40 | 9, byte(coap.GET), 0, 4})                // malformed CON
		w.none(t)
		if calls != 0 {
			t.Errorf("the handler ran %d times after Close", calls)
		}
		p.Close() // twice is harmless
	})
}

// TestLateSeparateResponse: the other side sends a confirmable separate
// response again when our ACK is lost; it gets the ACK again, not a Reset,
// and the exchange, already over, is not answered twice.
func TestLateSeparateResponse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, w := newPeer(t, nil)
		done := startDo(context.Background(), p, &coap.Message{Code: coap.GET})
		req := w.next(t)
		in(t, p, msg(coap.Acknowledgement, coap.Empty, req.m.MessageID, "", ""))
		resp := msg(coap.Confirmable, coap.Content, 0x7000, string(req.m.Token), "once")
		in(t, p, resp)
		wantEmpty(t, w.next(t), coap.Acknowledgement, 0x7000)
		if r := ended(t, done); r.err != nil || string(r.resp.Payload) != "once" {
			t.Fatalf("Do: %v, %v", r.resp, r.err)
		}
		for i := 1; i <= 3; i++ {
			time.Sleep(p.Params().AckTimeout << (i - 1)) // the other side's retransmissions
			in(t, p, resp)
			wantEmpty(t, w.next(t), coap.Acknowledgement, 0x7000)
			if st := p.Stats(); st.Duplicates != uint64(i) || st.Junk != 0 {
				t.Errorf("after %d duplicates: stats %+v; want as many Duplicates, no Junk", i, st)
			}
		}
		// A NON separate response repeated is not acknowledged at all.
		done = startDo(context.Background(), p, &coap.Message{Code: coap.GET})
		req = w.next(t)
		in(t, p, msg(coap.Acknowledgement, coap.Empty, req.m.MessageID, "", ""))
		in(t, p, msg(coap.NonConfirmable, coap.Content, 0x7001, string(req.m.Token), "non"))
		if r := ended(t, done); r.err != nil || string(r.resp.Payload) != "non" {
			t.Fatalf("Do: %v, %v", r.resp, r.err)
		}
		in(t, p, msg(coap.NonConfirmable, coap.Content, 0x7001, string(req.m.Token), "non"))
		w.none(t)
		settled(t, p)
	})
}

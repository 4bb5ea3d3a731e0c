package peer_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/peer"
)

// records is a slog.Handler that keeps one line per record.
type records struct {
	level slog.Level
	mu    sync.Mutex
	lines []string
}

func (r *records) Enabled(_ context.Context, l slog.Level) bool { return l >= r.level }
func (r *records) WithAttrs([]slog.Attr) slog.Handler           { return r }
func (r *records) WithGroup(string) slog.Handler                { return r }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	line := rec.Message
	rec.Attrs(func(a slog.Attr) bool { line += fmt.Sprintf(" %s=%v", a.Key, a.Value); return true })
	r.mu.Lock()
	r.lines = append(r.lines, line)
	r.mu.Unlock()
	return nil
}

// TestTrace: at LevelTrace every datagram in and out is logged; at debug
// level only retransmissions.
func TestTrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		trace := &records{level: peer.LevelTrace}
		p, w := newPeer(t, &peer.Config{Logger: slog.New(trace)})
		in(t, p, msg(coap.Confirmable, coap.GET, 0x1234, "\x0a\x0b", ""))
		w.next(t)
		want := []string{
			"coap recv type=CON mid=4660 code=0.01 GET token=0a0b payload=0",
			"coap send type=ACK mid=4660 code=4.04 Not Found token=0a0b payload=0",
		}
		if strings.Join(trace.lines, "\n") != strings.Join(want, "\n") {
			t.Errorf("trace:\n%s\nwant:\n%s", strings.Join(trace.lines, "\n"), strings.Join(want, "\n"))
		}

		debug := &records{level: slog.LevelDebug}
		p, w = newPeer(t, &peer.Config{Logger: slog.New(debug), Params: coap.Params{AckTimeout: 1, AckRandomFactor: 1, MaxRetransmit: 1, NStart: 1}})
		<-startDo(context.Background(), p, &coap.Message{Code: coap.GET})
		w.all(t)
		if len(debug.lines) != 1 || !strings.HasPrefix(debug.lines[0], "coap: retransmit ") {
			t.Errorf("debug log %q; want one retransmission", debug.lines)
		}
	})
}

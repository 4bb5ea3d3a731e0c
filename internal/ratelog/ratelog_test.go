package ratelog_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tether-iot/tether/internal/ratelog"
)

// clock is a fake clock a test moves by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func setup(t *testing.T) (*slog.Logger, *ratelog.Handler, *clock, func() []string) {
	t.Helper()
	var buf bytes.Buffer
	clk := &clock{t: time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)}
	h := ratelog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}}), &ratelog.Options{Window: 10 * time.Second, Burst: 3, Now: clk.now})
	lines := func() []string {
		s := strings.TrimSpace(buf.String())
		buf.Reset()
		if s == "" {
			return nil
		}
		return strings.Split(s, "\n")
	}
	return slog.New(h), h, clk, lines
}

// TestFloodOfWarningsIsCounted: 1,000 similar warnings in one window
// give 3 lines and, once the window is over, one that counts the other
// 997; the next window passes 3 again.
func TestFloodOfWarningsIsCounted(t *testing.T) {
	log, _, clk, lines := setup(t)
	for i := range 1000 {
		log.Warn("fileserver: path refused", "from", fmt.Sprintf("127.0.0.1:%d", 1000+i))
		clk.add(time.Millisecond) // 1 s in all: one window
	}
	got := lines()
	if len(got) != 3 || !strings.Contains(got[0], "from=127.0.0.1:1000") || !strings.Contains(got[2], "from=127.0.0.1:1002") {
		t.Fatalf("within the window: %d lines, want the first 3:\n%s", len(got), strings.Join(got, "\n"))
	}
	clk.add(9 * time.Second)
	log.Warn("fileserver: path refused", "from", "127.0.0.1:9")
	got = lines()
	want := []string{
		`level=WARN msg="997 similar warnings suppressed in the last 10s" similar="fileserver: path refused"`,
		`level=WARN msg="fileserver: path refused" from=127.0.0.1:9`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("after the window:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestDifferentMessagesAndLevels: the limit is per level and message;
// records below Warn (an access log, debug records) are never held back.
func TestDifferentMessagesAndLevels(t *testing.T) {
	log, _, _, lines := setup(t)
	for range 10 {
		log.Warn("a")
		log.Warn("b")
		log.Error("a")
		log.Info("transfer", "path", "fw.bin")
		log.Debug("d")
	}
	got := lines()
	n := map[string]int{}
	for _, l := range got {
		n[l]++
	}
	if n[`level=WARN msg=a`] != 3 || n[`level=WARN msg=b`] != 3 || n[`level=ERROR msg=a`] != 3 ||
		n[`level=INFO msg=transfer path=fw.bin`] != 10 || n[`level=DEBUG msg=d`] != 10 {
		t.Fatalf("lines: %v", n)
	}
}

// TestFlushReportsAFloodThatStopped: the report needs no further record:
// Flush writes it once the window is over, and not before; Close writes
// what a window not over yet held back.
func TestFlushReportsAFloodThatStopped(t *testing.T) {
	log, h, clk, lines := setup(t)
	for range 5 {
		log.Warn("x", "n", 1)
	}
	lines()
	h.Flush(context.Background())
	if got := lines(); got != nil {
		t.Fatalf("flushed before the window ended: %q", got)
	}
	clk.add(10 * time.Second)
	h.Flush(context.Background())
	if got := lines(); len(got) != 1 || got[0] != `level=WARN msg="2 similar warnings suppressed in the last 10s" similar=x` {
		t.Fatalf("after the window: %q", got)
	}
	h.Flush(context.Background())
	if got := lines(); got != nil {
		t.Fatalf("reported twice: %q", got)
	}
	for range 4 {
		log.Error("y")
	}
	clk.add(4 * time.Second)
	h.Close()
	if got := lines(); len(got) != 4 || got[3] != `level=ERROR msg="1 similar errors suppressed in the last 4s" similar=y` {
		t.Fatalf("Close: %q", got)
	}
}

// TestAttrsShareTheCount: loggers derived with With count with their
// parent, and the report goes through the handler of the first record
// held back.
func TestAttrsShareTheCount(t *testing.T) {
	log, h, clk, lines := setup(t)
	sub := log.With("transport", "udp")
	log.Warn("z")
	log.Warn("z")
	sub.Warn("z")
	sub.Warn("z")
	clk.add(10 * time.Second)
	h.Flush(context.Background())
	got := lines()
	if len(got) != 4 || got[3] != `level=WARN msg="1 similar warnings suppressed in the last 10s" transport=udp similar=z` {
		t.Fatalf("lines: %q", got)
	}
}

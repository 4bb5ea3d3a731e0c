package download_test

import (
	"context"
	"crypto/sha256"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/download"
	"github.com/tether-iot/tether/internal/testrig"
)

// TestDownloadSuspendsMidBurst: a download with a window of 10 Block2
// requests, and one with Q-Block2 (bursts of 10), each suspended a hundred
// times mid-window or mid-burst and resumed, end with the exact bytes, and
// each resume asks again for at most a window or a burst of blocks: those
// in flight. A Q-Block2 resume asks only for the blocks it lacks: those
// written past a gap are kept.
func TestDownloadSuspendsMidBurst(t *testing.T) {
	data := testrig.Bytes(1<<20, 12)
	for _, mode := range []struct {
		name string
		opts download.Options
	}{
		{"window 10", download.Options{Window: 10}},
		{"Q-Block2", download.Options{QBlock: true}},
	} {
		synctest.Test(t, func(t *testing.T) {
			w, a := serving(t, data, 20*time.Millisecond)
			var sink memSink
			opts := mode.opts
			opts.NewSocket = w.socket
			d, err := download.Start(context.Background(), fileURL, &sink, &opts)
			if err != nil {
				t.Fatal(err)
			}
			cycles := 0
			for ; cycles < 100; cycles++ {
				time.Sleep(50 * time.Millisecond)
				if d.Err() != nil || d.Written() == int64(len(data)) {
					break
				}
				if err := d.Suspend(); err != nil {
					t.Fatal(err)
				}
				time.Sleep(time.Second)
				if err := d.Resume(); err != nil {
					t.Fatal(err)
				}
			}
			if err := d.Wait(); err != nil {
				t.Fatal(err)
			}
			if sink.sum() != sha256.Sum256(data) {
				t.Fatal("SHA-256 differs")
			}
			again, blocks := a.Refetched()
			if blocks != 1024 || again > 10*cycles || cycles < 10 {
				t.Fatalf("%s: %d blocks asked for again over %d resumes of %d blocks; want at most 10 per resume", mode.name, again, cycles, blocks)
			}
			t.Logf("%s: %d suspend/resume cycles: %d block requests repeated (%.1f per resume)", mode.name, cycles, again, float64(again)/float64(max(cycles, 1)))
		})
	}
}

// TestWindowOption: a window outside 0..64 is refused before any traffic.
func TestWindowOption(t *testing.T) {
	for _, n := range []int{-1, 65} {
		var sink memSink
		if _, err := download.Start(context.Background(), "coap://127.0.0.1:9/x", &sink, &download.Options{Window: n}); err == nil {
			t.Errorf("window %d accepted", n)
		}
	}
}

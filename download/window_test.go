package download_test

import (
	"context"
	"crypto/sha256"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/download"
)

// TestWindowedDownloadSuspends: a download with a window of block
// requests, suspended a hundred times mid-window and resumed, ends with
// the exact bytes, and each resume asks again for at most a window of
// blocks (the requests that were in flight).
func TestWindowedDownloadSuspends(t *testing.T) {
	data := randomBytes(1<<20, 12)
	synctest.Test(t, func(t *testing.T) {
		w, a := serving(t, data, 20*time.Millisecond)
		var sink memSink
		d, err := download.Start(context.Background(), fileURL, &sink, &download.Options{NewSocket: w.socket, Window: 10})
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
		again, blocks := a.refetched()
		if blocks != 1024 || again > 10*cycles {
			t.Fatalf("%d blocks asked for again over %d resumes of %d blocks; want at most a window (10) per resume", again, cycles, blocks)
		}
		t.Logf("%d suspend/resume cycles: %d block requests repeated (%.1f per resume)", cycles, again, float64(again)/float64(max(cycles, 1)))
	})
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

package download_test

import (
	"context"
	"crypto/sha256"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/download"
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/sock/simnet"
)

func TestPhaseNames(t *testing.T) {
	for p, want := range map[download.Phase]string{download.Starting: "starting", download.BackingOff: "backing off",
		download.Ended: "ended", download.Phase(42): "phase(?)"} {
		if p.String() != want {
			t.Errorf("Phase(%d) = %q, want %q", int(p), p.String(), want)
		}
	}
	for _, p := range []download.Phase{download.Starting, download.Attempting, download.BackingOff, download.Suspended, download.Verifying} {
		if !download.Allowed(p, download.Ended) || download.Allowed(download.Ended, p) {
			t.Errorf("%v: every phase may end, and nothing follows the end", p)
		}
	}
}

// TestPhasesFollowTheMachine: a file download that meets a server that is
// down, an offline period and the end reports every phase, and every move
// it reports is one the machine allows.
func TestPhasesFollowTheMachine(t *testing.T) {
	data := testrig.Bytes(64<<10, 99)
	want := sha256.Sum256(data)
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(1)
		a := newServer(t, w.n.AddHost("a", "10.0.0.1"), "fw.bin", data)
		a.stop()
		w.name("fw.sim", "10.0.0.1")
		w.dev.SetLink(simnet.LinkConfig{Delay: 5 * time.Millisecond})
		var (
			mu     sync.Mutex
			phases []download.Phase
		)
		var d *download.Download
		suspendOnce := sync.OnceFunc(func() {
			d.Suspend()
			time.AfterFunc(time.Minute, func() { d.Resume() })
		})
		started := make(chan struct{})
		progress := func(p download.Progress) {
			mu.Lock()
			if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
				phases = append(phases, p.Phase)
			}
			mu.Unlock()
			if p.Phase == download.BackingOff {
				time.AfterFunc(time.Second, func() { a.start() })
			}
			if p.Written > int64(len(data)/2) {
				<-started
				suspendOnce()
			}
		}
		d, err := download.ToFile(context.Background(), fileURL, filepath.Join(t.TempDir(), "fw.bin"),
			&download.Options{NewSocket: w.socket, SHA256: want[:], Progress: progress, RetryDelay: 5 * time.Second})
		close(started)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Wait(); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		for i := 1; i < len(phases); i++ {
			if !download.Allowed(phases[i-1], phases[i]) {
				t.Errorf("reported %v then %v, which the machine does not allow", phases[i-1], phases[i])
			}
		}
		for p := download.Starting; p <= download.Ended; p++ {
			if !slices.Contains(phases, p) {
				t.Errorf("phase %v never reported: %v", p, phases)
			}
		}
		t.Logf("phases: %v", phases)
	})
}

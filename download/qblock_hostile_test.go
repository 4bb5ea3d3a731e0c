package download_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/download"
	"github.com/tether-iot/tether/internal/testrig"
)

// TestQBlockResumeWithOtherBlocks: the blocks a killed Q-Block2 run kept
// past a gap (1024 bytes each) meet a run that asks in other blocks: a
// state whose block size was edited to 512, or whose first block past the
// gap was edited to start 100 bytes later (its SHA-256 recomputed from the
// file, so that it checks). The next run must end with the exact bytes,
// and a run killed in the middle of it must leave a state the run after
// it takes: never blocks listed inside the prefix (ErrState for ever
// after), never a wrong file.
func TestQBlockResumeWithOtherBlocks(t *testing.T) {
	data := testrig.Bytes(96<<10, 23)
	want := sha256.Sum256(data)
	for _, edit := range []string{"block size 512", "shifted block"} {
		synctest.Test(t, func(t *testing.T) {
			w, a := serving(t, data, 20*time.Millisecond)
			a.wrap = func(pc net.PacketConn) net.PacketConn { return &blockDropper{PacketConn: pc, num: 20} }
			a.restart(nil)
			path := filepath.Join(t.TempDir(), "fw.bin")
			ctx, cancel := context.WithCancel(context.Background())
			d, err := download.ToFile(ctx, fileURL, path, &download.Options{NewSocket: w.socket, QBlock: true, Progress: func(p download.Progress) {
				if p.Blocks >= 25 && p.Written == 20*1024 {
					cancel()
				}
			}})
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Wait(); !errors.Is(err, context.Canceled) {
				t.Fatalf("interrupted download: %v", err)
			}
			st, err := download.LoadState(path + download.StateSuffix)
			if err != nil || len(st.Pending) < 4 {
				t.Fatalf("saved state: %d blocks past the gap, %v", len(st.Pending), err)
			}
			switch edit {
			case "block size 512":
				st.BlockSize = 512
			case "shifted block":
				b := &st.Pending[0]
				b.Offset, b.Size = b.Offset+100, b.Size-100
				sum := sha256.Sum256(data[b.Offset : b.Offset+int64(b.Size)])
				b.SHA256 = sum[:]
			}
			if err := download.SaveState(path+download.StateSuffix, st); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second)
			// The second run, killed once it is well past the blocks it
			// took back; then a third to the end.
			ctx, cancel = context.WithCancel(context.Background())
			d, err = download.ToFile(ctx, fileURL, path, &download.Options{NewSocket: w.socket, SHA256: want[:], QBlock: true, Progress: func(p download.Progress) {
				if p.Written >= 40*1024 {
					cancel()
				}
			}})
			if err != nil {
				t.Fatalf("%s: second run: %v", edit, err)
			}
			if err := d.Wait(); err != nil && !errors.Is(err, context.Canceled) {
				t.Fatalf("%s: second run: %v", edit, err)
			}
			if st, err := download.LoadState(path + download.StateSuffix); err != nil {
				t.Fatalf("%s: the second run's state: %v", edit, err)
			} else {
				t.Logf("%s: the second run saved %d bytes and %d blocks past them", edit, st.Written, len(st.Pending))
			}
			time.Sleep(time.Second)
			d, err = download.ToFile(context.Background(), fileURL, path, &download.Options{NewSocket: w.socket, SHA256: want[:], QBlock: true})
			if err != nil {
				t.Fatalf("%s: third run: %v", edit, err)
			}
			if err := d.Wait(); err != nil {
				t.Fatalf("%s: third run: %v", edit, err)
			}
			got, _ := os.ReadFile(path)
			if sha256.Sum256(got) != want {
				t.Fatalf("%s: SHA-256 differs", edit)
			}
		})
	}
}

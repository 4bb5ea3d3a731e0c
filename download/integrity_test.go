package download_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/download"
	"github.com/tether-iot/tether/internal/testrig"
)

// interrupted runs a ToFile download of url into path on w until stopAt
// bytes are written, then stops it as a killed process would be (its
// context ends), and returns the bytes its state claims.
func interrupted(t *testing.T, w world, url, path string, stopAt int64, opts download.Options) int64 {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opts.NewSocket = w.socket
	opts.Progress = func(p download.Progress) {
		if p.Written >= stopAt {
			cancel()
		}
	}
	d, err := download.ToFile(ctx, url, path, &opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Wait(); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted download: %v", err)
	}
	st, err := download.LoadState(path + download.StateSuffix)
	if err != nil {
		t.Fatal(err)
	}
	return st.Written
}

// resumed runs the download into path again to its end and returns it and
// the offset it continued from.
func resumed(t *testing.T, w world, path string, want [32]byte) (*download.Download, int64) {
	t.Helper()
	var (
		mu   sync.Mutex
		from int64 = -1
	)
	d, err := download.ToFile(context.Background(), fileURL, path, &download.Options{NewSocket: w.socket, SHA256: want[:],
		Progress: func(p download.Progress) {
			mu.Lock()
			defer mu.Unlock()
			if from < 0 && p.Phase != download.Starting {
				from = p.Written // after the verification of what was there
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Wait(); err != nil {
		t.Fatalf("resumed download: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	return d, from
}

// TestDamagedPartIsNotTrusted: whatever happened to NAME.part between two
// runs, the second run checks it against the state, continues from the
// last byte that checks (a checkpoint every MiB), and ends with exactly
// the served bytes; never with the damage renamed into place.
func TestDamagedPartIsNotTrusted(t *testing.T) {
	const mib = 1 << 20
	data := testrig.Bytes(3*mib+500, 70)
	want := sha256.Sum256(data)
	tests := []struct {
		name   string
		damage func(part string) error
		from   int64 // where the second run must continue
	}{
		{"intact", func(string) error { return nil }, -1}, // from where the first run stopped
		{"8 KiB flipped in the second MiB", flip(mib+mib/2, 8<<10), mib},
		{"a byte flipped in the first MiB", flip(1000, 1), 0},
		{"the tail after the last checkpoint", flip(2*mib+100, 1), 2 * mib},
		{"truncated", func(part string) error { return os.Truncate(part, mib+mib/2+7) }, mib},
		{"zeroed", func(part string) error { return os.WriteFile(part, make([]byte, 2*mib+mib/2), 0o644) }, 0},
		{"removed", os.Remove, 0},
		{"garbage appended", appendTo(3 << 20), -1}, // dropped: from where the first run stopped
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w, a := serving(t, data, time.Millisecond)
				path := filepath.Join(t.TempDir(), "fw.bin")
				stopped := interrupted(t, w, fileURL, path, 2*mib+mib/2+3000, download.Options{})
				if err := tt.damage(path + download.PartSuffix); err != nil {
					t.Fatal(err)
				}
				time.Sleep(time.Second) // the first run's last request lands before the mark
				mark := a.Mark()
				d, from := resumed(t, w, path, want)
				got, err := os.ReadFile(path)
				if err != nil || !bytes.Equal(got, data) || !bytes.Equal(d.Sum(), want[:]) {
					t.Fatalf("after %s: %d bytes, Sum %x; want the served %d bytes", tt.name, len(got), d.Sum(), len(data))
				}
				wantFrom := tt.from
				if wantFrom < 0 {
					wantFrom = stopped
				}
				if from != wantFrom {
					t.Fatalf("the second run continued from byte %d, want %d (the first stopped at %d)", from, wantFrom, stopped)
				}
				if first := a.Since(mark)[0]; first.Offset() > from || first.Offset()+int64(first.Size()) <= from {
					t.Fatalf("the second run first asked for block %v, which does not hold byte %d", first, from)
				}
			})
		})
	}
}

// appendTo returns a damage that appends n bytes to a file.
func appendTo(n int) func(string) error {
	return func(part string) error {
		f, err := os.OpenFile(part, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = f.Write(testrig.Bytes(n, 7))
		return err
	}
}

// TestCompleteStateLongerPart: a state that says the body is complete and
// a .part longer than it (a crash between the last block and the rename,
// then anything): the extra bytes are dropped, the rest verified, and the
// file renamed with exactly the body's bytes.
func TestCompleteStateLongerPart(t *testing.T) {
	data := testrig.Bytes(100<<10, 72)
	want := sha256.Sum256(data)
	synctest.Test(t, func(t *testing.T) {
		w, a := serving(t, data, 0)
		path := filepath.Join(t.TempDir(), "fw.bin")
		os.WriteFile(path+download.PartSuffix, append(bytes.Clone(data), testrig.Bytes(5000, 8)...), 0o644)
		etag := sha256.Sum256(data)
		download.SaveState(path+download.StateSuffix, &download.State{Version: 1, URL: fileURL, ETag: etag[:8],
			Written: int64(len(data)), BlockSize: 1024, Total: int64(len(data)), Hash: runningHash(data)})
		d, _ := resumed(t, w, path, want)
		got, _ := os.ReadFile(path)
		if !bytes.Equal(got, data) || !bytes.Equal(d.Sum(), want[:]) || a.Total() != 0 {
			t.Fatalf("%d bytes (want %d), Sum right %v, %d requests (want none)", len(got), len(data), bytes.Equal(d.Sum(), want[:]), a.Total())
		}
	})
}

// flip returns a damage that inverts n bytes of a file at off.
func flip(off, n int64) func(string) error {
	return func(part string) error {
		f, err := os.OpenFile(part, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		b := make([]byte, n)
		if _, err := f.ReadAt(b, off); err != nil {
			return err
		}
		for i := range b {
			b[i] ^= 0xff
		}
		_, err = f.WriteAt(b, off)
		return err
	}
}

// TestDiskChangedBeforeTheEnd: the finished file is read back from the
// disk before it is renamed; bytes that changed there after they were
// written are fetched again, so the SHA-256 reported is the file's.
func TestDiskChangedBeforeTheEnd(t *testing.T) {
	const mib = 1 << 20
	data := testrig.Bytes(3*mib, 71)
	want := sha256.Sum256(data)
	synctest.Test(t, func(t *testing.T) {
		w, a := serving(t, data, 0)
		path := filepath.Join(t.TempDir(), "fw.bin")
		before := a.Total()
		damaged := false
		d, err := download.ToFile(context.Background(), fileURL, path, &download.Options{NewSocket: w.socket, SHA256: want[:],
			Progress: func(p download.Progress) {
				if !damaged && p.Written == int64(len(data)) {
					damaged = true // after the last block was written, before it was verified
					if err := flip(2*mib+5, 1)(path + download.PartSuffix); err != nil {
						t.Error(err)
					}
				}
			}})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Wait(); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(path)
		if !damaged || !bytes.Equal(got, data) || !bytes.Equal(d.Sum(), want[:]) {
			t.Fatalf("damaged %v: the file on disk differs from the served one, or Sum %x does", damaged, d.Sum())
		}
		if n := a.Total() - before; n < len(data)/1024+mib/1024 {
			t.Fatalf("%d blocks asked for; the damaged last MiB was not fetched again", n)
		}
	})
}

package download_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/coap/fileserver"
	"github.com/tether-iot/tether/download"
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/sock/simnet"
)

// TestServerBlockSize: a server that answers 512-byte blocks to requests
// for 1024 (RFC 7959 lets it), killed runs that stop at odd multiples of
// 512, outages in between, and a server that changes its size between
// runs: every run continues where the last stopped, asks for the size the
// server used, and the file ends with exactly the served bytes.
func TestServerBlockSize(t *testing.T) {
	data := testrig.Bytes(300<<10+77, 90)
	want := sha256.Sum256(data)
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(1)
		a := newServer(t, w.n.AddHost("a", "10.0.0.1"), "fw.bin", nil)
		a.write("fw.bin", data)
		a.restart(&fileserver.Options{MaxBlockSize: 512})
		w.name("fw.sim", "10.0.0.1")
		w.dev.SetLink(simnet.LinkConfig{Delay: 2 * time.Millisecond})
		path := filepath.Join(t.TempDir(), "fw.bin")

		stopped := interrupted(t, w, fileURL, path, 51*512, download.Options{BlockSize: 1024})
		st, _ := download.LoadState(path + download.StateSuffix)
		if stopped%1024 != 512 || st.BlockSize != 512 {
			t.Fatalf("first run stopped at %d with block size %d; want an odd multiple of 512, and 512", stopped, st.BlockSize)
		}
		time.Sleep(time.Second) // the first run's last request lands before the mark
		mark := a.Mark()
		stopped = interrupted(t, w, fileURL, path, 201*512, download.Options{BlockSize: 1024})
		for _, b := range a.Since(mark) {
			if b.Size() != 512 {
				t.Fatalf("the second run asked for %v: it should ask for the server's 512", b)
			}
		}
		// Offline periods at odd offsets, and a server that now sends 256.
		a.restart(&fileserver.Options{MaxBlockSize: 256})
		var c download.Controller
		offline := &offlineCycles{c: &c, tr: download.UDP, n: 5, every: 37, off: 10 * time.Second}
		d, err := c.ToFile(context.Background(), fileURL, path, &download.Options{NewSocket: w.socket, SHA256: want[:], Progress: offline.progress})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Wait(); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(path)
		if !bytes.Equal(got, data) || offline.cycles() != 5 {
			t.Fatalf("after kills at %d and 5 outages (%d run): %d bytes, not the served ones", stopped, offline.cycles(), len(got))
		}
	})
}

// runningHash is the marshalled SHA-256 state after b, as a State holds it.
func runningHash(b []byte) []byte {
	h := sha256.New()
	h.Write(b)
	st, _ := h.(encoding.BinaryMarshaler).MarshalBinary()
	return st
}

// TestResumeAtAnyByte: a state that claims a number of bytes that is no
// multiple of any block size (an HTTP download's, a user's own) resumes
// from the block that holds that byte and delivers from the exact byte.
func TestResumeAtAnyByte(t *testing.T) {
	data := testrig.Bytes(40<<10, 91)
	want := sha256.Sum256(data)
	for _, n := range []int64{1, 1000, 1023, 1025, 20000, int64(len(data)) - 1, int64(len(data))} {
		synctest.Test(t, func(t *testing.T) {
			w, a := serving(t, data, 0)
			path := filepath.Join(t.TempDir(), "fw.bin")
			os.WriteFile(path+download.PartSuffix, data[:n], 0o644)
			etag := sha256.Sum256(data) // the file server's ETag is the first 8 bytes of the content's SHA-256
			st := &download.State{Version: 1, URL: fileURL, ETag: etag[:8], Written: n, BlockSize: 1024,
				Total: int64(len(data)), Hash: runningHash(data[:n])}
			if err := download.SaveState(path+download.StateSuffix, st); err != nil {
				t.Fatal(err)
			}
			mark := a.Mark()
			d, from := resumed(t, w, path, want)
			got, _ := os.ReadFile(path)
			if from != n || !bytes.Equal(got, data) {
				t.Fatalf("state at byte %d: continued from %d, %d bytes; %+v", n, from, len(got), d.Progress())
			}
			asked := a.Since(mark)
			if n < int64(len(data)) && (len(asked) == 0 || asked[0].Num != uint32(n/1024)) {
				t.Fatalf("state at byte %d: first block asked %v, want number %d", n, asked, n/1024)
			}
			if p := d.Progress(); p.Written != int64(len(data)) {
				t.Fatalf("state at byte %d: %+v", n, p)
			}
		})
	}
}

// logLines is an slog handler's output, line by line.
type logLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logLines) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), s)
}

// TestImpossibleStateIsDiscarded: a state no download could have saved is
// dropped with one warning, and the download starts over and succeeds.
func TestImpossibleStateIsDiscarded(t *testing.T) {
	data := testrig.Bytes(30<<10, 92)
	want := sha256.Sum256(data)
	good := func() download.State {
		return download.State{Version: 1, URL: fileURL, Written: 2048, BlockSize: 1024, Total: int64(len(data)), Hash: runningHash(data[:2048])}
	}
	states := map[string]func() []byte{
		"not JSON":               func() []byte { return []byte("{\"version\":1,") },
		"negative written":       func() []byte { s := good(); s.Written = -1; return mustJSON(s) },
		"written past the total": func() []byte { s := good(); s.Total = 100; return mustJSON(s) },
		"block size 1000":        func() []byte { s := good(); s.BlockSize = 1000; return mustJSON(s) },
		"checkpoints past written": func() []byte {
			s := good()
			s.CheckpointEvery, s.Checkpoints = 1024, make([][]byte, 3)
			return mustJSON(s)
		},
		"short checkpoint": func() []byte { s := good(); s.CheckpointEvery, s.Checkpoints = 1024, [][]byte{{1}}; return mustJSON(s) },
		"bad hash state":   func() []byte { s := good(); s.Hash = []byte("nonsense"); return mustJSON(s) },
		"version 99":       func() []byte { s := good(); s.Version = 99; return mustJSON(s) },
	}
	for name, state := range states {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w, _ := serving(t, data, 0)
				path := filepath.Join(t.TempDir(), "fw.bin")
				os.WriteFile(path+download.PartSuffix, data[:2048], 0o644)
				os.WriteFile(path+download.StateSuffix, state(), 0o644)
				var log logLines
				d, err := download.ToFile(context.Background(), fileURL, path, &download.Options{NewSocket: w.socket, SHA256: want[:],
					Logger: slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelWarn}))})
				if err != nil {
					t.Fatal(err)
				}
				if err := d.Wait(); err != nil {
					t.Fatal(err)
				}
				got, _ := os.ReadFile(path)
				if !bytes.Equal(got, data) || log.count("level=WARN") != 1 || log.count("cannot be used") != 1 {
					t.Fatalf("%d bytes; log:\n%s", len(got), log.buf.String())
				}
			})
		})
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

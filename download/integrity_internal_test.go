package download

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/tether-iot/tether/internal/testrig"
)

// written feeds data to a running hash and checkpoints in pieces of size
// piece, as blocks arrive, and returns the hash state and checkpoints.
func written(data []byte, piece int) ([]byte, checkpoints) {
	h := sha256.New()
	var c checkpoints
	for off := 0; off < len(data); off += piece {
		c.add(h, data[off:min(off+piece, len(data))], int64(off))
	}
	st, _ := h.(encoding.BinaryMarshaler).MarshalBinary()
	return st, c
}

func TestCheckpointsAreBoundedAndExact(t *testing.T) {
	data := testrig.Bytes(10<<20+123, 1)
	_, c := written(data, 1000) // pieces straddle every boundary
	if len(c.sums) == 0 || len(c.sums) >= maxCheckpoints {
		t.Fatalf("%d checkpoints", len(c.sums))
	}
	for i, sum := range c.sums {
		end := int64(i+1) * c.spacing()
		if want := sha256.Sum256(data[:end]); !bytes.Equal(sum, want[:]) {
			t.Fatalf("checkpoint %d (at %d) is not the digest of the prefix", i, end)
		}
	}
	// 200 MiB of 16 KiB blocks: thinned to stay under the bound.
	h := sha256.New()
	var big checkpoints
	block := make([]byte, 16<<10)
	for off := int64(0); off < 200<<20; off += int64(len(block)) {
		big.add(h, block, off)
	}
	if len(big.sums) >= maxCheckpoints || big.spacing() != 4<<20 {
		t.Fatalf("200 MiB: %d checkpoints every %d bytes", len(big.sums), big.spacing())
	}
}

func TestCheckPrefix(t *testing.T) {
	const mib = 1 << 20
	data := testrig.Bytes(5*mib+77, 2)
	want, marks := written(data, 1024)
	dir := t.TempDir()
	tests := []struct {
		name   string
		change func([]byte) []byte
		good   int64
	}{
		{"intact", func(b []byte) []byte { return b }, int64(len(data))},
		{"last byte", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }, 5 * mib},
		{"first byte", func(b []byte) []byte { b[0] ^= 1; return b }, 0},
		{"byte 3 MiB", func(b []byte) []byte { b[3*mib] ^= 1; return b }, 3 * mib},
		{"byte 3 MiB - 1", func(b []byte) []byte { b[3*mib-1] ^= 1; return b }, 2 * mib},
		{"short by one", func(b []byte) []byte { return b[:len(b)-1] }, 5 * mib},
		{"empty", func([]byte) []byte { return nil }, 0},
		{"longer", func(b []byte) []byte { return append(b, 1, 2, 3) }, int64(len(data))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name)
			if err := os.WriteFile(path, tt.change(bytes.Clone(data)), 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			good, h, kept, err := checkPrefix(context.Background(), f, int64(len(data)), marks, want)
			if err != nil || good != tt.good {
				t.Fatalf("good = %d, %v; want %d", good, err, tt.good)
			}
			if sum := sha256.Sum256(data[:good]); !bytes.Equal(h.Sum(nil), sum[:]) {
				t.Fatal("the hash returned is not that of the good prefix")
			}
			if int64(len(kept.sums)) != min(good/mib, 5) {
				t.Fatalf("%d checkpoints kept for %d good bytes", len(kept.sums), good)
			}
		})
	}
}

// BenchmarkCheckPrefix measures the verification of a 64 MiB .part on
// resume (goal: SHA-256 speed, at least 400 MB/s here).
//
//	go test -run '^$' -bench CheckPrefix -count 5 ./download
func BenchmarkCheckPrefix(b *testing.B) {
	data := testrig.Bytes(64<<20, 3)
	want, marks := written(data, 1024)
	path := filepath.Join(b.TempDir(), "fw.bin.part")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if good, _, _, err := checkPrefix(context.Background(), f, int64(len(data)), marks, want); err != nil || good != int64(len(data)) {
			b.Fatalf("good %d, %v", good, err)
		}
	}
}

// FuzzState: no state file, however made, crashes a download or passes
// validation with values a resume cannot use.
func FuzzState(f *testing.F) {
	data := testrig.Bytes(3<<20, 4)
	hs, marks := written(data, 1024)
	good, _ := json.Marshal(&State{Version: 1, URL: "coap://x/fw.bin", ETag: []byte{1, 2}, Written: int64(len(data)),
		BlockSize: 512, Total: int64(len(data)) + 10, Hash: hs, CheckpointEvery: marks.spacing(), Checkpoints: marks.sums})
	f.Add(good)
	f.Add([]byte(`{"version":1,"url":"coap://x/fw.bin","written":-5}`))
	f.Add([]byte(`{"version":1,"url":"coap://x/fw.bin","written":100,"total":50}`))
	f.Add([]byte(`{"version":1,"checkpoint_every":1,"checkpoints":["AAAA"]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var st State
		if json.Unmarshal(b, &st) != nil || st.validate() != nil {
			return
		}
		if st.Written < 0 || (st.Total >= 0 && st.Written > st.Total) ||
			int64(len(st.Checkpoints)) > st.Written/max(1, st.CheckpointEvery) || len(st.Checkpoints) > maxCheckpoints {
			t.Fatalf("validated: %+v", st)
		}
		d, err := newDownload(st.URL, nil, nil)
		if err != nil {
			return
		}
		if err := d.restore(&st); err == nil && d.written != st.Written {
			t.Fatalf("restored %d of %d bytes", d.written, st.Written)
		}
	})
}

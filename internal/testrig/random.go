package testrig

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// Bytes returns n pseudo-random bytes, the same for the same seed.
func Bytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 0x7e7e))
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// File writes data as name in a new temporary directory, removed when the
// test ends, and returns the directory.
func File(t testing.TB, name string, data []byte) (dir string) {
	t.Helper()
	dir = t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// RandomFile writes n bytes of Bytes(n, seed) as name in a new temporary
// directory and returns the directory and the bytes.
func RandomFile(t testing.TB, name string, n int, seed uint64) (dir string, data []byte) {
	t.Helper()
	data = Bytes(n, seed)
	return File(t, name, data), data
}

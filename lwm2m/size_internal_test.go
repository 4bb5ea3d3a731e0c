package lwm2m

import (
	"testing"
	"unsafe"
)

// TestClientFitsItsSizeClass keeps a Client within the allocator's
// 1,280-byte size class: a process hosting a hundred thousand clients pays
// 128 B more for each when it grows past it (BenchmarkFleet measures the
// whole). Growing it on purpose means moving something out, or raising
// this bound with the benchmark's figures in the commit.
func TestClientFitsItsSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(Client{}); n > 1280 {
		t.Errorf("a Client is %d bytes, past the 1,280-byte size class", n)
	}
}

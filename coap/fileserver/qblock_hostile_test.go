package fileserver_test

import (
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/coap"
)

// TestQBlock2SizeChangeKeepsThePlace: a client that asks for the whole
// body in 1024-byte blocks (blocks 0-9 come at once; bytes from 10240 are
// paced next) and then for one missing block in 512-byte blocks has
// changed the size, not where the transfer stands: the set paced next
// starts at byte 10240 (block 20 of 512), not at block 10 of the new size
// (byte 5120), which would send again bytes the client had.
func TestQBlock2SizeChangeKeepsThePlace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newQRig(t, map[string]int{"fw.bin": 40 * 1024}, fixedPacing)
		r.answer("fw.bin")
		r.get(coap.NonConfirmable, 1, "fw.bin", "0/1/1024")
		r.get(coap.NonConfirmable, 2, "fw.bin", "3/0/512")
		time.Sleep(time.Second)
		synctest.Wait()
		r.mu.Lock()
		r.got = nil
		r.mu.Unlock()
		time.Sleep(2 * time.Second) // NON_TIMEOUT: the next set, unasked
		synctest.Wait()
		r.mu.Lock()
		got := r.got
		r.mu.Unlock()
		if len(got) == 0 {
			t.Fatal("no set paced")
		}
		for _, line := range got {
			var num, more, size int
			i := strings.Index(line, "QB2:")
			if i < 0 {
				t.Fatalf("paced: %s", line)
			}
			if _, err := fmt.Sscanf(line[i:], "QB2:%d/%d/%d", &num, &more, &size); err != nil {
				t.Fatal(err)
			}
			if num*size < 10240 {
				t.Errorf("paced %s: bytes %d-%d, sent already in the first set", line, num*size, num*size+size-1)
			}
		}
	})
}

package peer_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: an
// exchange that never ended, or a reader of the rigs still running.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

package sockkit_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test must leave no goroutine behind: echo peers, blocked receives
// and dialers all end with the test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

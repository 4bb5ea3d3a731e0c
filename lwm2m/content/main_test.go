package content

import (
	"testing"

	"go.uber.org/goleak"
)

// The package starts no goroutine; the check keeps it so, as in every
// test binary of the module.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

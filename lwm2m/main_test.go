package lwm2m_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: a client's loop,
// a connection's reader, a firmware download.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

package peertest

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// The recorder's goroutines end with each check.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder is a testing.TB that records how a test ended: Skipf and
// Fatalf end its goroutine, as the real ones do.
type recorder struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (r *recorder) Helper() {}
func (r *recorder) Skipf(format string, args ...any) {
	r.skipped, r.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed, r.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls f with a recorder in a goroutine of its own, which Skipf and
// Fatalf end, and returns the recorder.
func run(t *testing.T, f func(testing.TB)) *recorder {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r
}

// TestMissingPeer: a peer that is not there skips the test with a message
// that names the peer, where to get it and TETHER_REQUIRE_PEERS, which
// go test -v shows; with TETHER_REQUIRE_PEERS=1 it fails the test instead.
func TestMissingPeer(t *testing.T) {
	const peer = "tether-no-such-peer"
	for _, tc := range []struct {
		env         string
		skip, fail  bool
		wantInMsg   []string
		description string
	}{
		{"", true, false, []string{"peer test skipped", peer, "libcoap3-bin", "TETHER_REQUIRE_PEERS=1"}, "unset: skip"},
		{"0", true, false, []string{"peer test skipped", peer, "TETHER_REQUIRE_PEERS=1"}, "0: skip"},
		{"1", false, true, []string{"peer missing", peer, "libcoap3-bin", "TETHER_REQUIRE_PEERS=1"}, "1: fail"},
	} {
		t.Run(tc.description, func(t *testing.T) {
			t.Setenv(RequireEnv, tc.env)
			r := run(t, func(tb testing.TB) { Require(tb, peer) })
			if r.skipped != tc.skip || r.failed != tc.fail {
				t.Fatalf("skipped %v, failed %v; want %v, %v (%q)", r.skipped, r.failed, tc.skip, tc.fail, r.msg)
			}
			for _, w := range tc.wantInMsg {
				if !strings.Contains(r.msg, w) {
					t.Errorf("message %q does not say %q", r.msg, w)
				}
			}
		})
	}
}

// TestPresentPeer: a peer that is there is returned, neither skipped nor
// failed ("go" is on the PATH of whoever runs go test).
func TestPresentPeer(t *testing.T) {
	var path string
	r := run(t, func(tb testing.TB) { path = Require(tb, "go") })
	if r.skipped || r.failed || path == "" {
		t.Fatalf("Require(go) = %q, skipped %v, failed %v (%q)", path, r.skipped, r.failed, r.msg)
	}
}

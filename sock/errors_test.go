package sock_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"testing"

	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/sockkit"
)

func TestErrTimeoutMatchesEveryConvention(t *testing.T) {
	err := error(&net.OpError{Op: "receive", Net: "udp", Err: sock.ErrTimeout})
	for _, target := range []error{sock.ErrTimeout, os.ErrDeadlineExceeded, context.DeadlineExceeded} {
		if !errors.Is(err, target) {
			t.Errorf("errors.Is(%v, %v) = false", err, target)
		}
	}
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Errorf("%v is not a net.Error with Timeout()", err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, net.ErrClosed) {
		t.Errorf("a timeout matches an unrelated error")
	}
}

func TestStateString(t *testing.T) {
	for st, want := range map[sock.State]string{
		sock.StateClosed: "closed", sock.StateBound: "bound", sock.StateConnected: "connected",
		sock.StateShutdown: "shutdown", sock.State(9): "State(9)",
	} {
		if got := st.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(st), got, want)
		}
	}
}

func TestPermanent(t *testing.T) {
	custom := errors.New("modem: +CME ERROR: 4")
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain", errors.New("reset by peer"), false},
		{"timeout", &net.OpError{Op: "receive", Err: sock.ErrTimeout}, false},
		{"refused", sock.ErrConnRefused, false},
		{"not supported", fmt.Errorf("suspend: %w", sock.ErrNotSupported), true},
		{"invalid host", &net.OpError{Op: "connect", Err: sock.ErrInvalidHost}, true},
		{"invalid port", sock.ErrInvalidPort, true},
		{"auth, marked onto a cause", sockkit.Mark(sock.ErrAuth, errors.New("alert: bad_record_mac")), true},
		{"marked by an integrator", fmt.Errorf("attach: %w", sock.Permanent(custom)), true},
		{"own method, false", selfClassified(false), false},
		{"own method, true", fmt.Errorf("x: %w", selfClassified(true)), true},
		{"joined", errors.Join(errors.New("a"), sock.ErrNotSupported), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sock.IsPermanent(tt.err); got != tt.want {
				t.Errorf("IsPermanent(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
	p := sock.Permanent(custom)
	if !errors.Is(p, custom) || p.Error() != custom.Error() {
		t.Errorf("Permanent(%v) = %v: the cause's text and chain must stay", custom, p)
	}
	if sock.Permanent(nil) != nil || sock.Permanent(p) != p {
		t.Error("Permanent(nil) must be nil, and a permanent error is not wrapped twice")
	}
}

type selfClassified bool

func (s selfClassified) Error() string   { return "self-classified" }
func (s selfClassified) Permanent() bool { return bool(s) }

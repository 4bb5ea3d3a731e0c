package sockkit_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/sockkit"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		name string
		in   error
		want []error
	}{
		{"poll deadline", &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, []error{sock.ErrTimeout, context.DeadlineExceeded}},
		{"context deadline", fmt.Errorf("handshake: %w", context.DeadlineExceeded), []error{sock.ErrTimeout, os.ErrDeadlineExceeded}},
		{"refused", &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, []error{sock.ErrConnRefused, syscall.ECONNREFUSED}},
		{"message size", os.NewSyscallError("sendmsg", syscall.EMSGSIZE), []error{sock.ErrMsgSize, syscall.EMSGSIZE}},
		{"canceled stays", context.Canceled, []error{context.Canceled}},
		{"closed stays", net.ErrClosed, []error{net.ErrClosed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := sockkit.Normalize(tt.in)
			for _, w := range tt.want {
				if !errors.Is(got, w) {
					t.Errorf("Normalize(%v) = %v, does not match %v", tt.in, got, w)
				}
			}
			var oe *net.OpError
			if errors.As(tt.in, &oe) && !errors.As(got, &oe) {
				t.Errorf("Normalize lost the *net.OpError of %v", tt.in)
			}
			if tt.in.Error() != got.Error() && !sock.IsTimeout(got) {
				t.Errorf("Normalize changed the text: %q -> %q", tt.in, got)
			}
		})
	}
	if sockkit.Normalize(nil) != nil {
		t.Error("Normalize(nil) != nil")
	}
	if sock.IsTimeout(nil) || sock.IsTimeout(errors.New("x")) {
		t.Error("IsTimeout true for a non-timeout")
	}
}

func TestMark(t *testing.T) {
	cause := errors.New("+CME ERROR: 3")
	err := sockkit.Mark(sock.ErrConnRefused, cause)
	if !errors.Is(err, sock.ErrConnRefused) || !errors.Is(err, cause) || err.Error() != cause.Error() {
		t.Fatalf("Mark = %v", err)
	}
	if sockkit.Mark(sock.ErrConnRefused, nil) != nil {
		t.Fatal("Mark of nil is not nil")
	}
}

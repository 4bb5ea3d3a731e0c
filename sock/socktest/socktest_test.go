package socktest_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/simnet"
	"github.com/tether-iot/tether/sock/socktest"
)

// required hides every optional capability of the socket it wraps.
type required struct{ s sock.Socket }

func (r required) Connect(ctx context.Context, host, port string) error {
	return r.s.Connect(ctx, host, port)
}
func (r required) Send(b []byte) error               { return r.s.Send(b) }
func (r required) Receive(b []byte) (int, error)     { return r.s.Receive(b) }
func (r required) Close() error                      { return r.s.Close() }
func (r required) State() sock.State                 { return r.s.State() }
func (r required) ReceiveTimeout() time.Duration     { return r.s.ReceiveTimeout() }
func (r required) SetReceiveTimeout(d time.Duration) { r.s.SetReceiveTimeout(d) }
func (r required) InnerMTU() (int, error)            { return r.s.InnerMTU() }

// forgetful is a socket whose RemoteHostname is lost on Shutdown, the one
// thing the tutorial says a shut-down socket must not do.
type forgetful struct{ *simnet.Socket }

func (f forgetful) RemoteHostname() (string, error) {
	if f.State() == sock.StateShutdown {
		return "", errors.New("forgotten")
	}
	return f.Socket.RemoteHostname()
}

func simEnv(wrap func(*simnet.Socket) sock.Socket) func(t *testing.T) socktest.Env {
	return func(t *testing.T) socktest.Env {
		n := simnet.New(1)
		srv := n.AddHost("server", "10.0.0.1")
		dev := n.AddHost("device", "10.0.0.2")
		pc, err := srv.ListenPacket("udp", ":7")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { defer close(done); socktest.Echo(pc) }()
		t.Cleanup(func() { pc.Close(); <-done })
		return socktest.Env{
			NewSocket: func(t *testing.T) sock.Socket {
				s, err := dev.NewSocket("udp", nil)
				if err != nil {
					t.Fatal(err)
				}
				return wrap(s)
			},
			Datagram: true,
			Host:     "10.0.0.1",
			Port:     "7",
		}
	}
}

// TestRequiredOnly: a socket with only the required methods passes, and the
// suite checks that every helper reports ErrNotSupported for it.
func TestRequiredOnly(t *testing.T) {
	socktest.Run(t, simEnv(func(s *simnet.Socket) sock.Socket { return required{s} }))
}

// TestCatchesForgetfulSocket runs the suite against a broken socket in a
// child process and expects it to fail, naming the property broken.
func TestCatchesForgetfulSocket(t *testing.T) {
	if os.Getenv("SOCKTEST_RUN_BROKEN") == "1" {
		socktest.Run(t, simEnv(func(s *simnet.Socket) sock.Socket { return forgetful{s} }))
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCatchesForgetfulSocket$", "-test.v")
	cmd.Env = append(os.Environ(), "SOCKTEST_RUN_BROKEN=1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("the suite passed a socket that forgets its hostname on Shutdown:\n%s", out)
	}
	if !strings.Contains(string(out), "--- FAIL: TestCatchesForgetfulSocket/Shutdown/KeepsAssociation") ||
		!strings.Contains(string(out), "RemoteHostname") {
		t.Fatalf("the suite failed, but not on the broken property:\n%s", out)
	}
	if strings.Contains(string(out), "--- FAIL: TestCatchesForgetfulSocket/Echo") {
		t.Fatalf("the suite failed properties the socket keeps:\n%s", out)
	}
}

package socktest_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/tether-iot/tether/internal/testrig/sockrig"
	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/simnet"
	"github.com/tether-iot/tether/sock/socktest"
)

// required hides every optional capability of the socket it wraps: only
// the methods of sock.Socket are promoted.
type required struct{ sock.Socket }

// forgetful is a socket whose remote hostname is lost on Shutdown, the one
// thing the tutorial says a shut-down socket must not do.
type forgetful struct{ *simnet.Socket }

func (f forgetful) Association() sock.Association {
	a := f.Socket.Association()
	if f.State() == sock.StateShutdown {
		a.Hostname = ""
	}
	return a
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
		sockrig.EchoPackets(t, pc)
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

// layer is a correct layer: the required methods of the socket beneath,
// Unwrap, and nothing it would have to refuse.
type layer struct {
	sock.Socket // the raw socket's required methods
	raw         sock.Socket
}

func (l layer) Unwrap() sock.Socket { return l.raw }

// claiming is the mistake sock.Layered made: a layer that forwards the
// raw socket's Shutdown and association as its own methods, which answer
// ErrNotSupported over a raw socket that lacks them.
type claiming struct{ layer }

func (c claiming) Shutdown() error               { return sock.Shutdown(c.raw) }
func (c claiming) Association() sock.Association { return sock.AssociationOf(c.raw) }

func TestLayer(t *testing.T) {
	socktest.Layer(t, func(raw sock.Socket) sock.Socket { return layer{raw, raw} })
	// Layers over layers pass on what is beneath both.
	socktest.Layer(t, func(raw sock.Socket) sock.Socket { l := layer{raw, raw}; return layer{l, l} })
}

// TestCatchesClaimingLayer runs Layer against a layer that claims its raw
// socket's capabilities, in a child process, and expects it to fail on
// them and on nothing else.
func TestCatchesClaimingLayer(t *testing.T) {
	if os.Getenv("SOCKTEST_RUN_BROKEN") == "1" {
		socktest.Layer(t, func(raw sock.Socket) sock.Socket { return claiming{layer{raw, raw}} })
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCatchesClaimingLayer$", "-test.v")
	cmd.Env = append(os.Environ(), "SOCKTEST_RUN_BROKEN=1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("Layer passed a layer that claims its raw socket's Shutdown:\n%s", out)
	}
	for _, want := range []string{
		"--- FAIL: TestCatchesClaimingLayer/raw_with_none",
		"has a method of Shutdowner, and its call says operation not supported",
		"has a method of Associator, and its call says operation not supported",
	} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("Layer failed, but not with %q:\n%s", want, out)
		}
	}
	// Over a raw socket that has what the layer claims, the claim holds.
	for _, c := range []string{"Shutdowner", "Associator"} {
		run := strings.SplitN(string(out), "=== RUN   TestCatchesClaimingLayer/raw_with_"+c+"\n", 2)
		if len(run) < 2 {
			t.Fatalf("no run over a raw socket with %s:\n%s", c, out)
		}
		this, _, _ := strings.Cut(run[1], "=== RUN")
		if strings.Contains(this, "method of "+c) {
			t.Fatalf("Layer faulted the layer's %s over a raw socket that has it:\n%s", c, this)
		}
	}
}

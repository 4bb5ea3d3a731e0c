package sock_test

import (
	"context"
	"errors"
	"net/netip"
	"syscall"
	"testing"

	"github.com/tether-iot/tether/sock"
)

// bare has only the required methods.
type bare struct{ sock.Socket }

func TestHelpersWithoutCapabilities(t *testing.T) {
	var s sock.Socket = bare{}
	a := sock.AssociationOf(s)
	checks := map[string]error{
		"Bind":     sock.Bind(context.Background(), s, "", "0"),
		"Shutdown": sock.Shutdown(s),
	}
	_, checks["RemoteHost"] = a.RemoteHost()
	_, checks["RemoteHostname"] = a.RemoteHostname()
	_, checks["RemotePort"] = a.RemotePort()
	_, checks["LocalHost"] = a.LocalHost()
	_, checks["LocalPort"] = a.LocalPort()
	for name, err := range checks {
		if !errors.Is(err, sock.ErrNotSupported) {
			t.Errorf("%s on a bare socket: %v, want ErrNotSupported", name, err)
		}
	}
	if _, ok := sock.As[sock.ByteCounter](s); ok {
		t.Error("As found byte counters on a bare socket")
	}
}

// full has every capability, and counts Shutdown calls.
type full struct {
	bare
	shutdowns *int
}

func (full) Bind(context.Context, string, string) error { return nil }
func (f full) Shutdown() error                          { *f.shutdowns++; return nil }
func (full) Association() sock.Association {
	return sock.Association{Hostname: "coap.example", Remote: netip.MustParseAddrPort("192.0.2.1:5683")}
}
func (full) BytesSent() uint64                            { return 1 }
func (full) BytesReceived() uint64                        { return 2 }
func (full) HasBufferedData() bool                        { return false }
func (full) SyscallConn() (syscall.RawConn, error)        { return nil, nil }
func (full) SetPreferredEndpoint(*sock.PreferredEndpoint) {}
func (full) SessionResumed() bool                         { return false }

// layer decorates raw and passes everything on.
type layer struct {
	bare
	raw sock.Socket
}

func (l layer) Unwrap() sock.Socket { return l.raw }

// TestAsThroughLayers: As finds what a layer passes on, through any number
// of layers, and never the OS handle, buffered data or session resumption.
func TestAsThroughLayers(t *testing.T) {
	n := 0
	var s sock.Socket = layer{raw: layer{raw: full{shutdowns: &n}}}
	for name, found := range map[string]bool{
		"Binder":            has[sock.Binder](s),
		"Shutdowner":        has[sock.Shutdowner](s),
		"Associator":        has[sock.Associator](s),
		"ByteCounter":       has[sock.ByteCounter](s),
		"EndpointPreferrer": has[sock.EndpointPreferrer](s),
	} {
		if !found {
			t.Errorf("As did not find %s two layers down", name)
		}
	}
	for name, found := range map[string]bool{
		"SyscallConner":        has[sock.SyscallConner](s),
		"BufferedDataReporter": has[sock.BufferedDataReporter](s),
		"SessionResumer":       has[sock.SessionResumer](s),
	} {
		if found {
			t.Errorf("As found the raw socket's %s through a layer", name)
		}
	}
	if err := sock.Shutdown(s); err != nil || n != 1 {
		t.Errorf("Shutdown through two layers: %v, %d calls", err, n)
	}
	if name, err := sock.AssociationOf(s).RemoteHostname(); err != nil || name != "coap.example" {
		t.Errorf("RemoteHostname through two layers = %q, %v", name, err)
	}
	if _, ok := s.(sock.Shutdowner); ok {
		t.Error("a type assertion on the layer found the raw socket's Shutdown")
	}
}

func has[T any](s sock.Socket) bool {
	_, ok := sock.As[T](s)
	return ok
}

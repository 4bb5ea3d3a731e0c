package socktest

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/tether-iot/tether/sock"
)

// Layer checks a layer, a socket that decorates another (see sock.As),
// over raw sockets with none of the optional capabilities and with each one
// alone; wrap builds the layer over a raw socket. The raw sockets are stubs
// that never touch a network and stay closed.
//
// A capability the layer passes on (sock.Binder, sock.Shutdowner,
// sock.Associator, sock.ByteCounter, sock.EndpointPreferrer) must be found
// by sock.As on the layer when the raw socket has it. And whatever a type
// assertion on the layer itself finds must answer its call, never with
// sock.ErrNotSupported: a layer that forwards a method to a raw socket that
// may lack it claims a capability it does not have.
func Layer(t *testing.T, wrap func(raw sock.Socket) sock.Socket) {
	raws := []struct {
		name string
		raw  sock.Socket
	}{{"none", required{stub{}}}}
	for _, c := range capabilities {
		raws = append(raws, struct {
			name string
			raw  sock.Socket
		}{c.name, c.alone(stub{})})
	}
	for _, r := range raws {
		t.Run("raw with "+r.name, func(t *testing.T) {
			l := wrap(r.raw)
			for _, c := range capabilities {
				if c.passedOn && r.name == c.name && !c.found(l) {
					t.Errorf("the raw socket is a %s, and sock.As does not find it on the layer", c.name)
				}
				if claims, err := c.call(l); claims && errors.Is(err, sock.ErrNotSupported) {
					t.Errorf("the layer has a method of %s, and its call says %v", c.name, err)
				}
			}
		})
	}
}

// capabilities describes each optional capability for Layer.
var capabilities = []struct {
	name     string
	passedOn bool                            // a layer passes it on from the socket beneath
	alone    func(stub) sock.Socket          // a raw socket with this capability alone
	found    func(sock.Socket) bool          // sock.As finds it
	call     func(sock.Socket) (bool, error) // a type assertion on the socket itself finds it, and what its call says
}{
	{"Binder", true,
		func(s stub) sock.Socket {
			return struct {
				required
				sock.Binder
			}{required{s}, s}
		},
		is[sock.Binder],
		func(s sock.Socket) (bool, error) {
			c, ok := s.(sock.Binder)
			if !ok {
				return false, nil
			}
			return true, c.Bind(context.Background(), "", "0")
		}},
	{"Shutdowner", true,
		func(s stub) sock.Socket {
			return struct {
				required
				sock.Shutdowner
			}{required{s}, s}
		},
		is[sock.Shutdowner],
		func(s sock.Socket) (bool, error) {
			c, ok := s.(sock.Shutdowner)
			if !ok {
				return false, nil
			}
			return true, c.Shutdown()
		}},
	{"Associator", true,
		func(s stub) sock.Socket {
			return struct {
				required
				sock.Associator
			}{required{s}, s}
		},
		is[sock.Associator],
		func(s sock.Socket) (bool, error) {
			c, ok := s.(sock.Associator)
			if !ok {
				return false, nil
			}
			_, err := c.Association().LocalPort()
			return true, err
		}},
	{"ByteCounter", true,
		func(s stub) sock.Socket {
			return struct {
				required
				sock.ByteCounter
			}{required{s}, s}
		},
		is[sock.ByteCounter],
		func(s sock.Socket) (bool, error) {
			c, ok := s.(sock.ByteCounter)
			if ok {
				c.BytesSent()
				c.BytesReceived()
			}
			return ok, nil
		}},
	{"EndpointPreferrer", true,
		func(s stub) sock.Socket {
			return struct {
				required
				sock.EndpointPreferrer
			}{required{s}, s}
		},
		is[sock.EndpointPreferrer],
		func(s sock.Socket) (bool, error) {
			c, ok := s.(sock.EndpointPreferrer)
			if ok {
				c.SetPreferredEndpoint(nil)
			}
			return ok, nil
		}},
	{"SyscallConner", false,
		func(s stub) sock.Socket {
			return struct {
				required
				sock.SyscallConner
			}{required{s}, s}
		},
		is[sock.SyscallConner],
		func(s sock.Socket) (bool, error) {
			c, ok := s.(sock.SyscallConner)
			if !ok {
				return false, nil
			}
			_, err := c.SyscallConn()
			return true, err
		}},
	{"BufferedDataReporter", false,
		func(s stub) sock.Socket {
			return struct {
				required
				sock.BufferedDataReporter
			}{required{s}, s}
		},
		is[sock.BufferedDataReporter],
		func(s sock.Socket) (bool, error) {
			c, ok := s.(sock.BufferedDataReporter)
			if ok {
				c.HasBufferedData()
			}
			return ok, nil
		}},
	{"SessionResumer", false,
		func(s stub) sock.Socket {
			return struct {
				required
				sock.SessionResumer
			}{required{s}, s}
		},
		is[sock.SessionResumer],
		func(s sock.Socket) (bool, error) {
			c, ok := s.(sock.SessionResumer)
			if ok {
				c.SessionResumed()
			}
			return ok, nil
		}},
}

// required hides every optional method of the socket it holds: only the
// methods of sock.Socket are promoted.
type required struct{ sock.Socket }

// stub is a closed socket with every capability, that never opens.
type stub struct{}

func (stub) Connect(context.Context, string, string) error { return sock.ErrConnRefused }
func (stub) Send([]byte) error                             { return net.ErrClosed }
func (stub) Receive([]byte) (int, error)                   { return 0, net.ErrClosed }
func (stub) Close() error                                  { return nil }
func (stub) State() sock.State                             { return sock.StateClosed }
func (stub) ReceiveTimeout() time.Duration                 { return sock.DefaultReceiveTimeout }
func (stub) SetReceiveTimeout(time.Duration)               {}
func (stub) InnerMTU() (int, error)                        { return 0, net.ErrClosed }
func (stub) Bind(context.Context, string, string) error    { return sock.ErrAddrNotAvail }
func (stub) Shutdown() error                               { return net.ErrClosed }
func (stub) Association() sock.Association                 { return sock.Association{} }
func (stub) BytesSent() uint64                             { return 0 }
func (stub) BytesReceived() uint64                         { return 0 }
func (stub) HasBufferedData() bool                         { return false }
func (stub) SyscallConn() (syscall.RawConn, error)         { return nil, net.ErrClosed }
func (stub) SetPreferredEndpoint(*sock.PreferredEndpoint)  {}
func (stub) SessionResumed() bool                          { return false }

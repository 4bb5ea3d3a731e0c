package sock

import (
	"net"
	"net/netip"
	"strconv"
)

// Association is what a socket knows of its connection: the host given to
// the last successful Connect, and the remote and local endpoints. A socket
// keeps it across Shutdown (that is the point of Shutdown) and forgets it
// on Close; Bind forgets the remote side.
//
// Its methods are the contract's getters, with the contract's errors:
// ErrNotConnected when there is no peer (never connected, bound, or
// closed), net.ErrClosed when there is no local socket, and
// ErrNotSupported for the Association that AssociationOf returns for a
// socket without the capability.
type Association struct {
	// Hostname is the host given to the last successful Connect, exactly
	// as given: a name or a literal, never a resolved address.
	Hostname string
	// Remote is the peer's numeric address and port; not valid when there
	// is no peer.
	Remote netip.AddrPort
	// Local is the local address and port; not valid when there is no
	// local socket.
	Local netip.AddrPort

	unsupported bool
}

// RemoteHost returns the peer's numeric address as text ("192.0.2.1",
// "2001:db8::1"), never a name.
func (a Association) RemoteHost() (string, error) {
	if err := a.remote(); err != nil {
		return "", err
	}
	return a.Remote.Addr().String(), nil
}

// RemoteHostname returns the host as given to the last successful Connect.
func (a Association) RemoteHostname() (string, error) {
	if err := a.remote(); err != nil {
		return "", err
	}
	return a.Hostname, nil
}

// RemotePort returns the peer's port in decimal.
func (a Association) RemotePort() (string, error) {
	if err := a.remote(); err != nil {
		return "", err
	}
	return strconv.Itoa(int(a.Remote.Port())), nil
}

// LocalHost returns the local numeric address as text.
func (a Association) LocalHost() (string, error) {
	if err := a.local(); err != nil {
		return "", err
	}
	return a.Local.Addr().String(), nil
}

// LocalPort returns the local port in decimal.
func (a Association) LocalPort() (string, error) {
	if err := a.local(); err != nil {
		return "", err
	}
	return strconv.Itoa(int(a.Local.Port())), nil
}

func (a Association) remote() error {
	switch {
	case a.unsupported:
		return ErrNotSupported
	case !a.Remote.IsValid():
		return ErrNotConnected
	}
	return nil
}

func (a Association) local() error {
	switch {
	case a.unsupported:
		return ErrNotSupported
	case !a.Local.IsValid():
		return net.ErrClosed
	}
	return nil
}

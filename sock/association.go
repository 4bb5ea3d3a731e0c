package sock

import (
	"net"
	"net/netip"
	"strconv"
)

// Association is what a socket knows of its connection: the host given to
// the last successful Connect, and the remote and local endpoints. Its
// methods are the getters of the contract, with the contract's errors:
// ErrNotConnected when there is no peer (never connected, or closed),
// net.ErrClosed when there is no local socket. A socket keeps its
// Association across Shutdown and clears it on Close; implementations
// answer RemoteHost and the others from a snapshot of it, so every socket
// gives the same answers in the same states.
type Association struct {
	Hostname      string
	Remote, Local netip.AddrPort
}

// RemoteHost returns the peer's numeric address.
func (a Association) RemoteHost() (string, error) {
	if !a.Remote.IsValid() {
		return "", ErrNotConnected
	}
	return a.Remote.Addr().String(), nil
}

// RemoteHostname returns the host as given to the last successful Connect.
func (a Association) RemoteHostname() (string, error) {
	if !a.Remote.IsValid() {
		return "", ErrNotConnected
	}
	return a.Hostname, nil
}

// RemotePort returns the peer's port in decimal.
func (a Association) RemotePort() (string, error) {
	if !a.Remote.IsValid() {
		return "", ErrNotConnected
	}
	return strconv.Itoa(int(a.Remote.Port())), nil
}

// LocalHost returns the local numeric address.
func (a Association) LocalHost() (string, error) {
	if !a.Local.IsValid() {
		return "", net.ErrClosed
	}
	return a.Local.Addr().String(), nil
}

// LocalPort returns the local port in decimal.
func (a Association) LocalPort() (string, error) {
	if !a.Local.IsValid() {
		return "", net.ErrClosed
	}
	return strconv.Itoa(int(a.Local.Port())), nil
}

package sock

import (
	"context"
	"syscall"
)

// The helpers below call an optional capability of a Socket, or return an
// error matching ErrNotSupported when the socket does not have it. Layers
// above call these rather than asserting types themselves.

// Bind binds s to a local host and port; see Binder.
func Bind(ctx context.Context, s Socket, host, port string) error {
	if b, ok := s.(Binder); ok {
		return b.Bind(ctx, host, port)
	}
	return ErrNotSupported
}

// Shutdown shuts s down, keeping its association; see Shutdowner.
func Shutdown(s Socket) error {
	if sd, ok := s.(Shutdowner); ok {
		return sd.Shutdown()
	}
	return ErrNotSupported
}

// RemoteHost returns the peer's numeric address; see RemoteHoster.
func RemoteHost(s Socket) (string, error) {
	if g, ok := s.(RemoteHoster); ok {
		return g.RemoteHost()
	}
	return "", ErrNotSupported
}

// RemoteHostname returns the host given to the last successful Connect; see
// RemoteHostnamer.
func RemoteHostname(s Socket) (string, error) {
	if g, ok := s.(RemoteHostnamer); ok {
		return g.RemoteHostname()
	}
	return "", ErrNotSupported
}

// RemotePort returns the peer's port; see RemotePorter.
func RemotePort(s Socket) (string, error) {
	if g, ok := s.(RemotePorter); ok {
		return g.RemotePort()
	}
	return "", ErrNotSupported
}

// LocalHost returns the local numeric address; see LocalHoster.
func LocalHost(s Socket) (string, error) {
	if g, ok := s.(LocalHoster); ok {
		return g.LocalHost()
	}
	return "", ErrNotSupported
}

// LocalPort returns the local port; see LocalPorter.
func LocalPort(s Socket) (string, error) {
	if g, ok := s.(LocalPorter); ok {
		return g.LocalPort()
	}
	return "", ErrNotSupported
}

// BytesSent returns the bytes s has sent over its life; see ByteCounter.
func BytesSent(s Socket) (uint64, error) {
	if c, ok := s.(ByteCounter); ok {
		return c.BytesSent(), nil
	}
	return 0, ErrNotSupported
}

// BytesReceived returns the bytes s has received over its life; see
// ByteCounter.
func BytesReceived(s Socket) (uint64, error) {
	if c, ok := s.(ByteCounter); ok {
		return c.BytesReceived(), nil
	}
	return 0, ErrNotSupported
}

// HasBufferedData reports whether s holds received data the OS socket would
// not signal; see BufferedDataReporter. A socket without the capability
// cannot hold such data, so the answer is false with ErrNotSupported.
func HasBufferedData(s Socket) (bool, error) {
	if r, ok := s.(BufferedDataReporter); ok {
		return r.HasBufferedData(), nil
	}
	return false, ErrNotSupported
}

// SyscallConn returns the OS socket of s; see SyscallConner.
func SyscallConn(s Socket) (syscall.RawConn, error) {
	if c, ok := s.(SyscallConner); ok {
		return c.SyscallConn()
	}
	return nil, ErrNotSupported
}

// SetPreferredEndpoint attaches stickiness storage to s; see
// EndpointPreferrer.
func SetPreferredEndpoint(s Socket, p *PreferredEndpoint) error {
	if e, ok := s.(EndpointPreferrer); ok {
		e.SetPreferredEndpoint(p)
		return nil
	}
	return ErrNotSupported
}

// SessionResumed reports whether the last Connect of a secure socket resumed
// a session; see SessionResumer.
func SessionResumed(s Socket) (bool, error) {
	if r, ok := s.(SessionResumer); ok {
		return r.SessionResumed(), nil
	}
	return false, ErrNotSupported
}

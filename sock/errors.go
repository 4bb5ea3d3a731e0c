package sock

import (
	"context"
	"errors"
	"net"
	"os"
)

// Sentinel errors. Every error returned by a socket in this module wraps one
// of these (or net.ErrClosed, or a context error) so that callers can decide
// with errors.Is alone; the wrapping *net.OpError carries the operation and
// the addresses involved.
var (
	// ErrNotSupported reports that a socket lacks an optional capability,
	// or an option its network does not have (an inner MTU on a stream).
	// It is permanent: asking again cannot help.
	ErrNotSupported = Permanent(errors.New("operation not supported by this socket"))

	// ErrShutdown reports I/O on a socket that has been shut down. The
	// association is kept; Connect, Bind or Close leave the state.
	ErrShutdown = errors.New("socket is shut down")

	// ErrNotConnected reports an operation that needs a peer (Send on a
	// bound datagram socket, a remote getter) on a socket that has none.
	ErrNotConnected = errors.New("socket is not connected")

	// ErrAddrNotAvail reports that a host could not be resolved, or that
	// none of its addresses is usable by this socket (the wrong family for
	// a bound socket, say).
	ErrAddrNotAvail = errors.New("address not available")

	// ErrConnRefused reports that the peer refused: a TCP RST on connect,
	// or an ICMP port-unreachable seen by a UDP send or receive.
	ErrConnRefused = errors.New("connection refused")

	// ErrMsgSize reports a datagram larger than the receive buffer. The
	// buffer holds its first len(buf) bytes, and Receive returns that count.
	ErrMsgSize = errors.New("message too long")

	// ErrInvalidHost reports a host that cannot be a DNS name or an IP
	// literal: empty, longer than 253 characters, or with a label longer
	// than 63. Such names are rejected, never truncated. It is permanent.
	ErrInvalidHost = Permanent(errors.New("invalid host"))

	// ErrInvalidPort reports a port that is not a decimal number in 1..65535
	// (0 is allowed where the operation binds). It is permanent.
	ErrInvalidPort = Permanent(errors.New("invalid port"))

	// ErrAuth reports a secure layer's handshake that failed on
	// credentials: the peer refused ours with a fatal alert, its
	// certificate did not verify, or it never accepted our Finished (a
	// wrong pre-shared key). It is permanent: the same credentials will
	// fail again. Secure sockets return it marked onto the cause (see
	// sockkit.Mark), so the text says what happened.
	ErrAuth = Permanent(errors.New("authentication failed"))

	// ErrTimeout is the one timeout error of this module. It implements
	// net.Error with Timeout() true, and errors.Is matches it against both
	// os.ErrDeadlineExceeded (what Go's sockets return) and
	// context.DeadlineExceeded (what a context and some libraries return),
	// so a caller may test for either. Sockets return it wrapped in a
	// *net.OpError, which is itself a net.Error.
	ErrTimeout error = timeoutError{}
)

// Permanent marks err as one that no retry can cure (nil stays nil): it
// keeps err's text and chain and adds a method Permanent() bool that
// returns true. Errors are classified where they are made: a socket, a
// protocol layer or an integrator's own stack marks what is permanent (a
// missing capability, refused credentials, a peer that broke the
// protocol), and whoever retries asks IsPermanent. Anything unmarked is
// taken as transient.
func Permanent(err error) error {
	if err == nil || IsPermanent(err) {
		return err
	}
	return &permanent{err}
}

type permanent struct{ err error }

func (p *permanent) Error() string   { return p.err.Error() }
func (p *permanent) Unwrap() error   { return p.err }
func (p *permanent) Permanent() bool { return true }

// IsPermanent reports whether retrying what failed cannot succeed: the
// first error in err's tree with a method Permanent() bool, in the order
// errors.As walks it (the outermost first), says so. Any error type may
// implement the method itself, as net.Error's Timeout is implemented,
// instead of being wrapped by Permanent; a wrapper's verdict overrides
// what it wraps (a refusal that is only suspected says false around
// ErrAuth).
func IsPermanent(err error) bool {
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func (timeoutError) Is(target error) bool {
	return target == os.ErrDeadlineExceeded || target == context.DeadlineExceeded
}

// IsTimeout reports whether err is a timeout under any of the conventions in
// use: this module's ErrTimeout, os.ErrDeadlineExceeded,
// context.DeadlineExceeded, or a net.Error whose Timeout method says so.
func IsTimeout(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

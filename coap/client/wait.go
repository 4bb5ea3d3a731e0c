package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/sock"
)

// errDeadline is the internal signal that a wait reached its deadline.
var errDeadline = errors.New("deadline")

// receiveUntil receives into buf until deadline, in slices of at most
// cancelPoll while ctx can be cancelled, and the socket's own timeouts
// never surface: only errDeadline, ctx's error, or the socket's other
// errors do.
func (c *Conn) receiveUntil(ctx context.Context, deadline time.Time, buf []byte) (int, error) {
	for {
		if err := ctx.Err(); err != nil {
			return 0, ctxError(ctx)
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return 0, errDeadline
		}
		if ctx.Done() != nil && wait > cancelPoll {
			wait = cancelPoll
		}
		c.s.SetReceiveTimeout(wait)
		n, err := c.s.Receive(buf)
		if err != nil && sock.IsTimeout(err) && !errors.Is(err, sock.ErrMsgSize) {
			continue
		}
		return n, err
	}
}

// receiveMessage waits until deadline for a well-formed datagram and
// decodes it into m (which then aliases the Conn's receive buffer).
// Datagrams too large or malformed are counted as junk and skipped; the
// errors are receiveUntil's (errDeadline at the deadline).
func (c *Conn) receiveMessage(ctx context.Context, deadline time.Time, m *coap.Message) error {
	for {
		n, err := c.receiveUntil(ctx, deadline, c.rx)
		switch {
		case errors.Is(err, sock.ErrMsgSize):
			c.stats.Junk++ // larger than any response we accept
			continue
		case err != nil:
			return err
		}
		if coap.DecodeUDP(c.rx[:n], m) != nil {
			c.stats.Junk++
			continue
		}
		c.traceMsg(false, m)
		return nil
	}
}

// ctxError returns ctx's error, a deadline as an exchange timeout.
func ctxError(ctx context.Context) error {
	err := ctx.Err()
	if errors.Is(err, context.DeadlineExceeded) {
		return &TimeoutError{Reason: "context deadline exceeded"}
	}
	return err
}

// TimeoutError reports an exchange that got no response in time. It is a
// net.Error with Timeout() true and matches sock.ErrTimeout, and so
// os.ErrDeadlineExceeded and context.DeadlineExceeded, under errors.Is.
type TimeoutError struct {
	Transmissions int           // how often the request was sent (UDP)
	Waited        time.Duration // from the first transmission to giving up
	Reason        string
}

// Error implements error.
func (e *TimeoutError) Error() string {
	if e.Reason != "" {
		return "coap: no response: " + e.Reason
	}
	return fmt.Sprintf("coap: no response after %d transmissions over %v", e.Transmissions, e.Waited.Round(time.Millisecond))
}

// Timeout implements net.Error.
func (e *TimeoutError) Timeout() bool { return true }

// Temporary implements net.Error.
func (e *TimeoutError) Temporary() bool { return true }

// Unwrap makes the error match sock.ErrTimeout.
func (e *TimeoutError) Unwrap() error { return sock.ErrTimeout }

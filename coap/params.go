package coap

import (
	"errors"
	"fmt"
	"time"

	"github.com/tether-iot/tether/sock"
)

// Params are the transmission parameters of RFC 7252 section 4.8.
type Params struct {
	// AckTimeout is the initial retransmission timeout's lower bound.
	AckTimeout time.Duration
	// AckRandomFactor scales the upper bound of the initial timeout,
	// drawn uniformly from [AckTimeout, AckTimeout*AckRandomFactor].
	AckRandomFactor float64
	// MaxRetransmit is how many times a confirmable message is resent.
	MaxRetransmit int
	// NStart is the number of outstanding exchanges; tether's client
	// runs one at a time, so only 1 is accepted.
	NStart int
}

// DefaultParams are RFC 7252's defaults.
var DefaultParams = Params{AckTimeout: 2 * time.Second, AckRandomFactor: 1.5, MaxRetransmit: 4, NStart: 1}

// ErrBadParams reports transmission parameters that cannot work. It is
// permanent (see sock.IsPermanent).
var ErrBadParams = sock.Permanent(errors.New("coap: invalid transmission parameters"))

// Validate reports whether p can drive retransmission.
func (p Params) Validate() error {
	switch {
	case p.AckTimeout <= 0:
		return fmt.Errorf("%w: ACK_TIMEOUT %v must be positive", ErrBadParams, p.AckTimeout)
	case p.AckRandomFactor < 1:
		return fmt.Errorf("%w: ACK_RANDOM_FACTOR %v must be at least 1", ErrBadParams, p.AckRandomFactor)
	case p.MaxRetransmit < 0 || p.MaxRetransmit > 20:
		return fmt.Errorf("%w: MAX_RETRANSMIT %d must be in 0..20", ErrBadParams, p.MaxRetransmit)
	case p.NStart != 1:
		return fmt.Errorf("%w: NSTART %d; only 1 is supported", ErrBadParams, p.NStart)
	}
	return nil
}

// MaxTransmitWait is how long a confirmable exchange may wait in all
// (RFC 7252 section 4.8.2), at the largest initial timeout.
func (p Params) MaxTransmitWait() time.Duration {
	return time.Duration(float64(p.AckTimeout) * float64(int(1)<<(p.MaxRetransmit+1)-1) * p.AckRandomFactor)
}

package coap

import (
	"fmt"
	"time"
)

// QBlock2 is the Q-Block2 option (RFC 9177): a Block2 for bodies sent as
// bursts of Non-confirmable responses. Its value is a Block's; it is
// critical and repeatable, and a request may list several, each asking
// for one block (M unset) or for a block and the rest of its set (M set).
// A request with M set on block 0 asks for the whole body; on the first
// block of a set, for that set and those after it (a "Continue").
const QBlock2 OptionID = 31

// Echo is the Echo option (RFC 9175): a value a server sends and the
// client repeats in its next request, which shows the server that the
// client receives what is sent to its address. It is elective.
const Echo OptionID = 252

// NonParams are RFC 9177's congestion control parameters for bodies sent
// in bursts of Non-confirmable messages (section 7.2). Both ends use them:
// the server paces its bursts by them, the client times its requests for
// missing blocks by them. The zero value of a field means its default.
type NonParams struct {
	// MaxPayloads is MAX_PAYLOADS: the blocks in one burst (a "set"),
	// and what the sets are aligned to; default 10.
	MaxPayloads int
	// NonTimeout is NON_TIMEOUT: the server waits between NonTimeout and
	// NonTimeout*AckRandomFactor (NON_TIMEOUT_RANDOM) after a burst for
	// the client's Continue, then sends the next burst anyway; default
	// 2 s (ACK_TIMEOUT).
	NonTimeout time.Duration
	// NonReceiveTimeout is NON_RECEIVE_TIMEOUT: the client waits this
	// long after the last block it received before it asks for what is
	// missing, doubling at each unanswered request; default twice
	// NonTimeout, and at least a second more than NON_TIMEOUT_RANDOM.
	NonReceiveTimeout time.Duration
	// NonMaxRetransmit is NON_MAX_RETRANSMIT: how many requests for
	// missing blocks the client sends with no block in answer before it
	// gives up, and how many bursts in a row the server sends with no
	// word from the client before it stops; default 4.
	NonMaxRetransmit int
	// AckRandomFactor is ACK_RANDOM_FACTOR, which NON_TIMEOUT_RANDOM,
	// NON_PROBING_WAIT and NON_PARTIAL_TIMEOUT use; default 1.5.
	AckRandomFactor float64
	// MaxLatency is MAX_LATENCY (RFC 7252 4.8.2), used by
	// NON_PROBING_WAIT and NON_PARTIAL_TIMEOUT; default 100 s.
	MaxLatency time.Duration
}

// MaxMaxPayloads bounds NonParams.MaxPayloads: a burst larger than this
// is no longer a burst a constrained network should take at once.
const MaxMaxPayloads = 64

// WithDefaults returns p with every zero field set to its default.
func (p NonParams) WithDefaults() NonParams {
	if p.MaxPayloads == 0 {
		p.MaxPayloads = 10
	}
	if p.NonTimeout == 0 {
		p.NonTimeout = 2 * time.Second
	}
	if p.AckRandomFactor == 0 {
		p.AckRandomFactor = 1.5
	}
	if p.NonReceiveTimeout == 0 {
		p.NonReceiveTimeout = max(2*p.NonTimeout, p.maxTimeoutRandom()+time.Second)
	}
	if p.NonMaxRetransmit == 0 {
		p.NonMaxRetransmit = 4
	}
	if p.MaxLatency == 0 {
		p.MaxLatency = 100 * time.Second
	}
	return p
}

// Validate reports whether p, with its defaults, can drive a transfer.
func (p NonParams) Validate() error {
	p = p.WithDefaults()
	switch {
	case p.MaxPayloads < 1 || p.MaxPayloads > MaxMaxPayloads:
		return fmt.Errorf("%w: MAX_PAYLOADS %d must be in 1..%d", ErrBadParams, p.MaxPayloads, MaxMaxPayloads)
	case p.NonTimeout < 0 || p.NonReceiveTimeout < 0 || p.MaxLatency < 0:
		return fmt.Errorf("%w: negative NON_TIMEOUT, NON_RECEIVE_TIMEOUT or MAX_LATENCY", ErrBadParams)
	case p.AckRandomFactor < 1:
		return fmt.Errorf("%w: ACK_RANDOM_FACTOR %v must be at least 1", ErrBadParams, p.AckRandomFactor)
	case p.NonMaxRetransmit < 0 || p.NonMaxRetransmit > 20:
		return fmt.Errorf("%w: NON_MAX_RETRANSMIT %d must be in 0..20", ErrBadParams, p.NonMaxRetransmit)
	case p.NonReceiveTimeout <= p.maxTimeoutRandom():
		// RFC 9177 7.2: the sender must get the chance to send its next
		// burst before the receiver asks for what is missing.
		return fmt.Errorf("%w: NON_RECEIVE_TIMEOUT %v must exceed NON_TIMEOUT_RANDOM's largest value %v",
			ErrBadParams, p.NonReceiveTimeout, p.maxTimeoutRandom())
	}
	return nil
}

// maxTimeoutRandom is NON_TIMEOUT_RANDOM's largest value.
func (p NonParams) maxTimeoutRandom() time.Duration {
	return time.Duration(float64(p.NonTimeout) * p.AckRandomFactor)
}

// TimeoutRandom returns NON_TIMEOUT_RANDOM for a draw r in [0, 1):
// between NonTimeout and NonTimeout*AckRandomFactor.
func (p NonParams) TimeoutRandom(r float64) time.Duration {
	p = p.WithDefaults()
	return p.NonTimeout + time.Duration(float64(p.NonTimeout)*(p.AckRandomFactor-1)*r)
}

// ProbingWait is NON_PROBING_WAIT: NON_TIMEOUT * (2^NON_MAX_RETRANSMIT -
// 1) * ACK_RANDOM_FACTOR + 2 * MAX_LATENCY + NON_TIMEOUT_RANDOM (taken at
// its largest), 248 s with the defaults. It bounds how long a client waits
// for a server that has gone silent.
func (p NonParams) ProbingWait() time.Duration {
	p = p.WithDefaults()
	return p.spread() + p.maxTimeoutRandom()
}

// PartialTimeout is NON_PARTIAL_TIMEOUT: as ProbingWait with NON_TIMEOUT
// in place of NON_TIMEOUT_RANDOM, 247 s with the defaults. The server
// forgets a transfer when the client has been silent this long.
func (p NonParams) PartialTimeout() time.Duration {
	p = p.WithDefaults()
	return p.spread() + p.NonTimeout
}

func (p NonParams) spread() time.Duration {
	return time.Duration(float64(p.NonTimeout)*float64(int(1)<<p.NonMaxRetransmit-1)*p.AckRandomFactor) + 2*p.MaxLatency
}

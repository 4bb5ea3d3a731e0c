package coap

import "time"

// Backoff is the retransmission schedule of one confirmable message (RFC
// 7252 4.2): the first timeout drawn from [ACK_TIMEOUT,
// ACK_TIMEOUT*ACK_RANDOM_FACTOR], doubled at each retransmission, at most
// MAX_RETRANSMIT of them; once an empty acknowledgement says a separate
// response follows, no retransmission, and a wait of MAX_TRANSMIT_WAIT for
// that response (5.2.2). It keeps no clock: its owner arms a timer for
// Timeout (or the wait Acked returns) and asks Retry when it fires. The
// client's exchanges and window and coap/peer's exchanges all run on it.
type Backoff struct {
	p       Params
	Sends   int           // transmissions so far, the first included
	Timeout time.Duration // the wait after the latest transmission
	Acked   bool          // an empty ACK came: a separate response follows
}

// NewBackoff starts the schedule of a message sent once just now; r, a
// draw in [0, 1), places its first timeout in the range.
func NewBackoff(p Params, r float64) Backoff {
	return Backoff{p: p, Sends: 1, Timeout: p.InitialTimeout(r)}
}

// InitialTimeout is the first retransmission timeout for a draw r in
// [0, 1): ACK_TIMEOUT * (1 + r*(ACK_RANDOM_FACTOR-1)).
func (p Params) InitialTimeout(r float64) time.Duration {
	return time.Duration(float64(p.AckTimeout) * (1 + r*(p.AckRandomFactor-1)))
}

// CanResend reports whether one more transmission is allowed: the message
// is not acknowledged and has not been retransmitted MAX_RETRANSMIT times.
func (b *Backoff) CanResend() bool { return !b.Acked && b.Sends <= b.p.MaxRetransmit }

// Retry is called when Timeout has passed with no answer: it reports
// false when the exchange is over (acknowledged, or MAX_RETRANSMIT
// retransmissions made), and otherwise counts a retransmission and
// doubles Timeout, the wait after it.
func (b *Backoff) Retry() bool {
	if !b.CanResend() {
		return false
	}
	b.Sends++
	b.Timeout *= 2
	return true
}

// Resend counts a retransmission made before the timer (a loss seen some
// other way) under the same MAX_RETRANSMIT bound, leaving Timeout as it is.
func (b *Backoff) Resend() { b.Sends++ }

// Ack records an empty acknowledgement and returns how long to wait for
// the separate response: MAX_TRANSMIT_WAIT.
func (b *Backoff) Ack() time.Duration {
	b.Acked = true
	return b.p.MaxTransmitWait()
}

package peer

import (
	"context"

	"github.com/tether-iot/tether/coap"
)

// Exchanger is what a protocol on top (LwM2M) does with a CoAP association
// once it is up, whatever carries it: send a request and wait for its
// response, send a notification, end it. *Peer (datagrams, RFC 7252) and
// *Stream (TCP and TLS, RFC 8323) satisfy it. Feeding the association is
// not part of it: a datagram reader calls Peer.Input (and InputTruncated)
// per datagram, a stream reader Stream.Input or Stream.Serve.
//
// What differs under the same calls: a Peer retransmits and a Stream does
// not; Notify's confirmable means nothing over a stream, which has no
// Reset, so Config.OnReset has no counterpart and an observer there
// cancels with a GET carrying Observe 1 (which reaches the Handler).
type Exchanger interface {
	// Do sends req, whose token the Exchanger sets, and returns the
	// response.
	Do(ctx context.Context, req *coap.Message) (*coap.Message, error)
	// Notify sends m under the token it carries.
	Notify(ctx context.Context, m *coap.Message, confirmable bool) error
	// Close ends every exchange in flight with ErrClosed.
	Close()
}

var (
	_ Exchanger = (*Peer)(nil)
	_ Exchanger = (*Stream)(nil)
)

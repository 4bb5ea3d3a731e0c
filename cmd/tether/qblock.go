package main

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/tether-iot/tether/coap"
)

// qblockFlags are the Q-Block2 (RFC 9177) flags of get and serve: whether
// to use it (a client asks with it when told to, a server serves it unless
// told not to), and the congestion control parameters both ends share.
type qblockFlags struct {
	use         bool // get --qblock
	off         bool // serve --no-qblock
	maxPayloads int
	nonTimeout  time.Duration
}

func (q *qblockFlags) add(fs *pflag.FlagSet, server bool) {
	if server {
		fs.BoolVar(&q.off, "no-qblock", false, "do not serve Q-Block2 (RFC 9177): its option gets 4.02 Bad Option, and clients use Block2")
	} else {
		fs.BoolVar(&q.use, "qblock", false, "ask with Q-Block2 (RFC 9177) over coap and coaps: the server sends bursts of blocks and only what is lost is asked for again; a server without it is asked with Block2 (one round trip more)")
	}
	fs.IntVar(&q.maxPayloads, "max-payloads", 10, fmt.Sprintf("Q-Block2's MAX_PAYLOADS: blocks per burst, 1..%d; the same on both ends", coap.MaxMaxPayloads))
	fs.DurationVar(&q.nonTimeout, "non-timeout", 2*time.Second, "Q-Block2's NON_TIMEOUT: how long a server waits after a burst for the client's word before it sends the next")
}

// params returns the parameters the flags give, checked.
func (q *qblockFlags) params() (coap.NonParams, error) {
	p := coap.NonParams{MaxPayloads: q.maxPayloads, NonTimeout: q.nonTimeout}
	err := p.Validate()
	if q.maxPayloads < 1 { // zero would mean the default to the library
		err = fmt.Errorf("%w: MAX_PAYLOADS %d must be in 1..%d", coap.ErrBadParams, q.maxPayloads, coap.MaxMaxPayloads)
	}
	if err != nil {
		return p, usageError{fmt.Errorf("--max-payloads or --non-timeout: %w", err)}
	}
	return p, nil
}

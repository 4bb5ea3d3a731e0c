package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/download"
)

// qblockFlags are the Q-Block2 (RFC 9177) flags of get, device and serve:
// whether to use it, and the congestion control parameters both ends
// share. A client asks with it over coaps unless told not to, and over
// coap only when told to (RFC 9177 section 11 does not recommend it in
// the NoSec security mode); a server serves it unless told not to.
type qblockFlags struct {
	use         bool // get and device --qblock: over coap too
	off         bool // --no-qblock: serve does not serve it, get and device never ask with it
	maxPayloads int
	nonTimeout  time.Duration
}

func (q *qblockFlags) add(fs *pflag.FlagSet, server bool) {
	if server {
		fs.BoolVar(&q.off, "no-qblock", false, "do not serve Q-Block2 (RFC 9177): its option gets 4.02 Bad Option, and clients use Block2")
	} else {
		q.addChoice(fs)
	}
	fs.IntVar(&q.maxPayloads, "max-payloads", 10, fmt.Sprintf("Q-Block2's MAX_PAYLOADS: blocks per burst, 1..%d; the same on both ends", coap.MaxMaxPayloads))
	fs.DurationVar(&q.nonTimeout, "non-timeout", 2*time.Second, "Q-Block2's NON_TIMEOUT: how long a server waits after a burst for the client's word before it sends the next")
}

// addChoice adds a client's --qblock and --no-qblock.
func (q *qblockFlags) addChoice(fs *pflag.FlagSet) {
	fs.BoolVar(&q.use, "qblock", false, "ask with Q-Block2 (RFC 9177) over coap too, not only over coaps, where it is the default (RFC 9177 does not recommend it without DTLS): the server sends bursts of blocks and only what is lost is asked for again; a server without it is asked with Block2 (one round trip more)")
	fs.BoolVar(&q.off, "no-qblock", false, "never ask with Q-Block2 (RFC 9177), over coaps either: Block2 only")
}

// choose sets whether a download asks with Q-Block2, from --qblock and
// --no-qblock.
func (q *qblockFlags) choose(opts *download.Options) error {
	if q.use && q.off {
		return usageError{errors.New("--qblock asks with Q-Block2 over coap too, --no-qblock never does: give one")}
	}
	opts.QBlock, opts.NoQBlock = q.use, q.off
	return nil
}

// client sets a download's Q-Block2 options from the flags: whether it
// asks with it, and its parameters.
func (q *qblockFlags) client(opts *download.Options) error {
	if err := q.choose(opts); err != nil {
		return err
	}
	p, err := q.params()
	opts.QBlockParams = p
	return err
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

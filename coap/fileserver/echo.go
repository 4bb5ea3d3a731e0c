package fileserver

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"time"

	"github.com/tether-iot/tether/coap"
)

// Bursts only to addresses that answer. Over plain UDP a request's source
// address can be forged, and a Q-Block2 request a few bytes long draws a
// burst of kilobytes, and then paced sets, to whoever the address names: an
// amplifier (RFC 7252 11.3). So a Non-confirmable Q-Block2 request that
// would draw more than one block is served only to an address that has
// shown it receives: its request carries the Echo option (RFC 9175) the
// server gave that address, in the response to its first, confirmable,
// request (a client of RFC 9177 asks its first block so), or in a 4.01
// Unauthorized that answers a burst asked for without one, which costs a
// forger nothing more than it sent. The proof is fresh for one transfer:
// a request that starts one must carry the Echo value of this minute or
// the last, and only the requests of a transfer in progress, which such a
// request started, draw bursts without it. An address is not trusted for
// a while after it proved itself once (it was, for ten minutes: a forged
// 14-byte request in the name of a device that had downloaded drew 52 KB
// at it). So an address that has not proven it receives gets, per request,
// the one response RFC 7252 gives it, never more than it sent times one.
// The Echo value is a MAC of the address and the minute under a key the
// server draws at start, so it needs no state until it comes back.

// echoFor returns the Echo value for an address in the minute of t.
func (s *Server) echoFor(peer string, t time.Time) [8]byte {
	mac := hmac.New(sha256.New, s.echoKey[:])
	mac.Write([]byte(peer))
	var minute [8]byte
	binary.BigEndian.PutUint64(minute[:], uint64(t.Unix()/60))
	mac.Write(minute[:])
	var v [8]byte
	copy(v[:], mac.Sum(nil))
	return v
}

// verified reports whether a request may draw a burst: it belongs to a
// transfer in progress (which a request with a fresh Echo started), or it
// carries the Echo value of this minute or the last.
func (s *Server) verified(q *qpacer, req *coap.Message, r *response, to client, now time.Time) bool {
	if x := q.xfers[transferKey(to, r, req)]; x != nil && !x.paused {
		return true
	}
	echo, ok := coap.Bytes(req.Options, coap.Echo)
	if !ok {
		return false
	}
	peer := to.String()
	this, last := s.echoFor(peer, now), s.echoFor(peer, now.Add(-time.Minute))
	return hmac.Equal(echo, this[:]) || hmac.Equal(echo, last[:])
}

// addEcho adds the Echo value for the client to the response.
func (s *Server) addEcho(r *response, to client, now time.Time) {
	r.echo = s.echoFor(to.String(), now)
	r.m.Options = r.m.Options.Add(coap.Option{ID: coap.Echo, Value: r.echo[:]})
}

// challenge turns the response into a 4.01 Unauthorized with an Echo value:
// a burst asked for by an address not verified yet.
func (s *Server) challenge(r *response, to client, now time.Time) {
	m := &r.m
	m.Code, m.Options, m.Payload = coap.Unauthorized, m.Options[:0], nil
	s.addEcho(r, to, now)
	r.plan.active = false
}

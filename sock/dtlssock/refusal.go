package dtlssock

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pion/dtls/v3/pkg/protocol/alert"

	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/sockkit"
)

// A failed handshake is classified here, where the records were seen: a
// refusal of our credentials matches sock.ErrAuth (permanent), silence
// stays a transient timeout with a message that says what was missing.
//
// DTLS servers drop a record that fails its MAC instead of answering it
// (RFC 6347 4.1.2.7; pion and OpenSSL both do), so a wrong pre-shared key
// never draws an alert: the server answers the ClientHello, silently drops
// the Finished encrypted under the wrong key, and sends its hello flight
// again when its timer fires (pion answers each with its Finished again).
// That repetition is the refusal. A lost Finished looks the same once, so
// it takes refusedAfter repetitions, each arriving at least 1.5 round trips
// after our first Finished, so that the server must have had it: on a long
// link the repetitions the server sent before our Finished reached it are
// no refusal. With the servers' timers (1 s, doubling) the verdict comes
// about 7 s after the first Finished on a short link, later on a long one.
// A link that loses a fraction p of our datagrams fakes it with odds of
// about p³ per handshake, and an uplink that drops everything for a few
// seconds while the downlink works fakes it outright, so the verdict
// matches sock.ErrAuth but is not permanent on its own: a caller that
// meets it on the next handshake too can take it as final (package
// download does).

// refusedAfter is how many times the server's hello flight must come back
// after our Finished before the handshake is taken as refused.
const refusedAfter = 3

// errFinishedRefused ends a handshake whose Finished the server keeps
// refusing; Connect reports it as sock.ErrAuth.
var errFinishedRefused = errors.New("the server answered our hello but never accepted our Finished: wrong pre-shared key or identity?")

// Handshake message and record types the watch reads (RFC 5246, 6347).
const (
	contentAlert    = 21
	serverHelloDone = 14
	alertFatal      = 2
)

// handshakeWatch is what the packet adapter saw of a handshake in
// progress. Its methods are called with each datagram, from pion's
// goroutines.
type handshakeWatch struct {
	abort context.CancelCauseFunc

	mu       sync.Mutex
	start    time.Time     // our first datagram
	rtt      time.Duration // from it to the server's first answer (at most: it may answer a repetition)
	answered bool          // the server sent anything
	finished time.Time     // we first sent our Finished (a record in epoch 1)
	repeats  int           // the server's hello flight came again, late enough after it
	alert    int           // a plaintext fatal alert's description, +1; 0 if none
}

// sent looks at a datagram pion sends.
func (w *handshakeWatch) sent(b []byte) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.start.IsZero() {
		w.start = now
	}
	for rec := range records(b) {
		if rec.epoch > 0 && w.finished.IsZero() {
			w.finished = now
			return
		}
	}
}

// received looks at a datagram from the server.
func (w *handshakeWatch) received(b []byte) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.answered {
		w.answered, w.rtt = true, now.Sub(w.start)
	}
	for rec := range records(b) {
		switch {
		case rec.epoch != 0:
		case rec.typ == contentAlert && len(rec.body) >= 2 && rec.body[0] == alertFatal:
			w.alert = int(rec.body[1]) + 1
		case rec.typ == contentHandshake && len(rec.body) > 0 && rec.body[0] == serverHelloDone:
			if w.finished.IsZero() || now.Sub(w.finished) < w.rtt*3/2 {
				continue // the first flight, or one that crossed our Finished
			}
			if w.repeats++; w.repeats >= refusedAfter {
				w.abort(errFinishedRefused)
			}
		}
	}
}

// alertUnknownPSKIdentity is RFC 4279's unknown_psk_identity, which pion
// does not name.
const alertUnknownPSKIdentity alert.Description = 115

// refuses reports whether a fatal alert refuses the client's credentials
// (and so a retry with the same ones is pointless): a certificate or key
// the server will not take, a PSK identity it does not know (pion answers
// that InternalError), a Finished it could not check.
func refuses(d alert.Description) bool {
	switch d {
	case alert.HandshakeFailure, alert.BadCertificate, alert.UnsupportedCertificate, alert.CertificateRevoked,
		alert.CertificateExpired, alert.CertificateUnknown, alert.UnknownCA, alert.DecryptError,
		alert.InsufficientSecurity, alert.InternalError, alert.BadRecordMac, alertUnknownPSKIdentity:
		return true
	}
	return false
}

// explain turns the error of a failed handshake into one that says why:
// cause is the handshake context's cause.
func (w *handshakeWatch) explain(err, cause error) error {
	w.mu.Lock()
	answered, finished, desc := w.answered, !w.finished.IsZero(), w.alert
	w.mu.Unlock()
	var (
		ua x509.UnknownAuthorityError
		he x509.HostnameError
		ci x509.CertificateInvalidError
		ae interface{ IsFatalOrCloseNotify() bool } // pion's received alert
	)
	switch {
	case errors.Is(cause, errFinishedRefused):
		return suspected{sockkit.Mark(sock.ErrAuth, errFinishedRefused)}
	case desc > 0 && refuses(alert.Description(desc-1)):
		return sockkit.Mark(sock.ErrAuth, fmt.Errorf("the server refused the handshake: fatal alert %v", alert.Description(desc-1)))
	case desc > 0:
		// A handshake the server could not go on with, not a refusal of
		// our credentials: pion answers IllegalParameter or AccessDenied
		// to a ClientHello that meets the state of an older handshake
		// from the same address (a retry from the same port, under
		// load). The next attempt, once that state has expired, succeeds.
		return fmt.Errorf("the server ended the handshake: fatal alert %v", alert.Description(desc-1))
	case errors.As(err, &ua), errors.As(err, &he), errors.As(err, &ci):
		return sockkit.Mark(sock.ErrAuth, err)
	case errors.As(err, &ae) && ae.IsFatalOrCloseNotify():
		return sockkit.Mark(sock.ErrAuth, err)
	}
	err = sockkit.Normalize(err) // a timeout as sock.ErrTimeout, which the text below keeps
	switch {
	case !sock.IsTimeout(err):
		return err
	case !answered:
		return fmt.Errorf("no DTLS answer (not a DTLS server, or unreachable?): %w", err)
	case finished:
		return fmt.Errorf("the server did not accept our Finished (wrong pre-shared key?): %w", err)
	}
	return fmt.Errorf("the DTLS handshake stalled: %w", err)
}

// suspected is a refusal read from silence: it matches sock.ErrAuth, and
// says it is not permanent, which errors.As finds before ErrAuth's own
// verdict.
type suspected struct{ error }

func (s suspected) Unwrap() error   { return s.error }
func (s suspected) Permanent() bool { return false }

// record is one DTLS record of a datagram, in epoch 0 unless said.
type record struct {
	typ   byte
	epoch int
	body  []byte // the fragment; encrypted past epoch 0
}

// records yields the records of a datagram, stopping at the first that is
// truncated. A record with a Connection ID is never in epoch 0, and its
// header is longer: its body is left empty (nothing here reads it).
func records(b []byte) func(func(record) bool) {
	return func(yield func(record) bool) {
		for len(b) >= recordHeaderLen+2 {
			r := record{typ: b[0], epoch: int(b[3])<<8 | int(b[4])}
			if r.typ == contentCID {
				yield(record{typ: r.typ, epoch: max(r.epoch, 1)})
				return // the CID's length is not known here
			}
			n := int(b[recordHeaderLen])<<8 | int(b[recordHeaderLen+1])
			if len(b) < recordHeaderLen+2+n {
				return
			}
			r.body = b[recordHeaderLen+2 : recordHeaderLen+2+n]
			if !yield(r) {
				return
			}
			b = b[recordHeaderLen+2+n:]
		}
	}
}

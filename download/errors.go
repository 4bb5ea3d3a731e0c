package download

import (
	"errors"
	"fmt"
	"time"

	"github.com/tether-iot/tether/sock"
)

// Errors of a download. Each error says whether a retry could help where it
// is made (sock.IsPermanent): the ones below are permanent but ErrGaveUp,
// ErrDone and ErrLocked, which are about this run, not the resource.
var (
	// ErrResourceChanged reports that the resource is not the one the
	// download started on: its ETag (or size) differs after a resume. The
	// bytes written so far belong to the old version; nothing of the new
	// one was written.
	ErrResourceChanged = sock.Permanent(errors.New("download: the resource changed"))
	// ErrUnverified reports a resume the server gives nothing to check
	// against: no ETag where it sent one before (libcoap's server), no
	// strong ETag or Last-Modified over HTTP. The resource may have
	// changed; Options.AllowUnverified resumes anyway, and OnChange:
	// Restart starts over, as for ErrResourceChanged.
	ErrUnverified = sock.Permanent(errors.New("download: cannot tell whether the resource is unchanged"))
	// ErrVerify reports a complete body whose size or SHA-256 is not the
	// one expected, or a file that changed on disk while it was written.
	ErrVerify = sock.Permanent(errors.New("download: verification failed"))
	// ErrBadURL reports a URL tether cannot download.
	ErrBadURL = sock.Permanent(errors.New("download: unsupported URL"))
	// ErrOptions reports options that cannot work, found before any file
	// is created and before any traffic: coaps:// without credentials, a
	// SHA-256 of the wrong length, a block size that is not a power of two.
	ErrOptions = sock.Permanent(errors.New("download: invalid options"))
	// ErrTooLarge reports a body larger than Options.MaxSize, or one that
	// runs past the length its server announced.
	ErrTooLarge = sock.Permanent(errors.New("download: body too large"))
	// ErrOutput reports a destination ToFile cannot write a file to: a
	// directory, say. Nothing was requested.
	ErrOutput = sock.Permanent(errors.New("download: unusable output path"))
	// ErrConnectTimeout reports a connect (with its TLS or DTLS handshake,
	// or the CSM of CoAP over TCP) that did not complete within
	// Options.ConnectTimeout. It is transient: the attempt failed, the
	// download tries again.
	ErrConnectTimeout = errors.New("download: connect timed out")
	// ErrTooManyRedirects reports an HTTP download redirected more times
	// in a row than Options.FollowRedirects allows (a loop, say).
	ErrTooManyRedirects = sock.Permanent(errors.New("download: too many HTTP redirects"))
	// ErrRedirectRefused reports an HTTP redirect the download will not
	// follow: from https to http (the body would travel unprotected, and
	// anyone on the path could replace it), or to a scheme other than
	// http and https.
	ErrRedirectRefused = sock.Permanent(errors.New("download: HTTP redirect refused"))
	// ErrDone reports a Suspend or Resume of a download that has ended.
	ErrDone = errors.New("download: already ended")
	// ErrGaveUp reports a download that made no progress for
	// Options.GiveUpAfter of online time; its text says what it was
	// waiting for.
	ErrGaveUp = errors.New("download: no progress, gave up")
	// ErrLocked reports an output another download is writing, in this
	// process or another; its text names the holder when it can.
	ErrLocked = errors.New("download: the output is being written by another download")
)

// writeError is a failure of the destination (a full disk, say), which no
// retry can fix: the state is kept, and a later run continues.
type writeError struct{ err error }

func (e *writeError) Error() string   { return "download: write: " + e.err.Error() }
func (e *writeError) Unwrap() error   { return e.err }
func (e *writeError) Permanent() bool { return true }

// retryAfter is the wait a server asked for before the next attempt
// (CoAP's Max-Age on 5.03, HTTP's Retry-After), found by the method
// RetryAfter() time.Duration anywhere in err's chain; zero if none.
func retryAfter(err error) time.Duration {
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) {
		return max(0, ra.RetryAfter())
	}
	return 0
}

// maxRetryAfter bounds a server's Max-Age or Retry-After: a hostile one
// must not park a download for years.
const maxRetryAfter = time.Hour

// stoppedError is how a download that its context ended reports it: the
// context's cause, and what the download was waiting for at the time.
type stoppedError struct {
	cause   error
	waiting string
}

func (e *stoppedError) Error() string {
	if e.waiting == "" {
		return e.cause.Error()
	}
	return fmt.Sprintf("%v, while %s", e.cause, e.waiting)
}
func (e *stoppedError) Unwrap() error { return e.cause }

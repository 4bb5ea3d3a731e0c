package main

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tether-iot/tether/coap/client"
	"github.com/tether-iot/tether/download"
	"github.com/tether-iot/tether/sock"
)

// Exit statuses, curl's where curl has one for the same failure.
const (
	exitOK          = 0
	exitFailure     = 1   // anything not below
	exitUsage       = 2   // the command line is wrong
	exitBadURL      = 3   // curl: URL malformed (and unsupported scheme)
	exitResolve     = 6   // curl: couldn't resolve host
	exitConnect     = 7   // curl: failed to connect
	exitVerify      = 10  // the body is not the one expected (no curl code)
	exitServer      = 22  // curl: HTTP error (--fail); CoAP 4.xx and 5.xx too
	exitFile        = 23  // curl: write error
	exitGaveUp      = 28  // curl: operation timeout
	exitRedirects   = 47  // curl: too many redirects
	exitTooLarge    = 63  // curl: maximum file size exceeded
	exitAuth        = 67  // curl: login denied
	exitInterrupted = 130 // a shell's code for a death by SIGINT
	exitTerminated  = 143 // and by SIGTERM
)

// exitCodesHelp is `tether help exit-codes`, and the README's table.
const exitCodesHelp = `tether get exits with one of these statuses (curl's, where curl has one):

   0  the file is complete and verified, and in place
   1  another failure, among them a redirect -L refuses to follow (https
      to http, or to a scheme that is not HTTP)
   2  the command line is wrong (a flag, a missing argument, credentials)
   3  the URL is malformed or its scheme unsupported
   6  the host name could not be resolved
   7  could not connect, or the secure handshake did not complete
  10  the body is not the one expected: its SHA-256 or size differ, or the
      resource changed (or could not be shown unchanged) during the download
  22  the server answered with an error (CoAP 4.xx or 5.xx, HTTP 400 or more)
  23  the output cannot be written (a directory, a full disk, another
      download holding it)
  28  gave up (--give-up) or ran out of time (--max-time); when the last
      attempt timed out connecting (--connect-timeout), the error says so
  47  more redirects in a row than --max-redirs (with -L)
  63  the body is larger than allowed (--max-size)
  67  the server refused the credentials (pre-shared key, certificate)
 130  interrupted (Ctrl-C); what was written is kept
 143  terminated (SIGTERM); what was written is kept

A transient failure (no answer, a refused connection, an unknown host, a
connect longer than --connect-timeout, CoAP 5.03) is retried; codes 6, 7
and 28 come once --give-up or --max-time ends the retries, and say what the
last attempt met.`

func exitCodesTopic() *cobra.Command {
	return newTopic("exit-codes", "What tether's exit statuses mean", exitCodesHelp)
}

// newTopic is a help topic: `tether help NAME` prints text.
func newTopic(name, short, text string) *cobra.Command {
	return &cobra.Command{Use: name, Short: short, Long: text}
}

// exitCode classifies the error a command ended with. ctx is the one the
// command ran under: its end by a signal is an interruption.
func exitCode(ctx context.Context, err error) int {
	var (
		ue  usageError
		dns *net.DNSError
		re  *client.ResponseError
		he  *download.HTTPError
		pe  *fs.PathError
	)
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue), errors.Is(err, download.ErrOptions):
		return exitUsage
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		var sig interrupted
		if errors.As(context.Cause(ctx), &sig) {
			return sig.status()
		}
		return exitInterrupted
	case errors.Is(err, download.ErrBadURL), errors.Is(err, sock.ErrInvalidHost), errors.Is(err, sock.ErrInvalidPort):
		return exitBadURL
	case errors.Is(err, sock.ErrAuth):
		return exitAuth
	case errors.Is(err, download.ErrTooManyRedirects):
		return exitRedirects
	case errors.Is(err, download.ErrTooLarge):
		return exitTooLarge
	case errors.Is(err, download.ErrVerify), errors.Is(err, download.ErrResourceChanged), errors.Is(err, download.ErrUnverified):
		return exitVerify
	case errors.As(err, &re), errors.As(err, &he):
		return exitServer
	case errors.As(err, &dns), errors.Is(err, sock.ErrAddrNotAvail):
		return exitResolve
	case errors.Is(err, sock.ErrConnRefused), errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return exitConnect
	case errors.Is(err, download.ErrGaveUp), errors.Is(err, context.DeadlineExceeded), errors.Is(err, errMaxTime):
		return exitGaveUp
	case errors.Is(err, download.ErrOutput), errors.Is(err, download.ErrLocked), errors.As(err, &pe):
		return exitFile
	}
	return exitFailure
}

// errMaxTime is the cause --max-time ends a run with.
var errMaxTime = errors.New("--max-time reached")

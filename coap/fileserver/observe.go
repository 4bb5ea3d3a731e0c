package fileserver

import (
	"net"
	"time"

	"github.com/tether-iot/tether/coap"
)

// Transport names how a request reached the server, in the access log
// and to an Observer.
type Transport string

// The transports, as the access log writes them.
const (
	UDP  Transport = "udp"  // ServeUDP
	DTLS Transport = "dtls" // ServeDatagramListener
	TCP  Transport = "tcp"  // ServeTCP
	TLS  Transport = "tls"  // ServeTCP with a listener of *tls.Conn
)

// Transfer is one line of the access log: a transfer that ended (package
// doc, Access log).
type Transfer struct {
	Transport Transport
	Remote    string // the client's address
	Identity  string // the client's identity, from Options.PeerIdentity; empty without one
	Path      string // as asked for, "/" and the segments ("/fw/image.bin")
	Bytes     int64  // body bytes sent, blocks sent again included
	Blocks    int    // responses that carried a part of the body
	Duration  time.Duration
	// Result is "2.05" for a transfer whose last block was served,
	// "incomplete" for one that stopped before it, or the code of an
	// error response ("4.04", "5.03").
	Result string
}

// Observer is told what the server does, so that a program can count it
// (tether serve turns it into Prometheus metrics) without this package
// depending on a metrics library. Its methods are called from the serving
// goroutines, several at once, and must not block: count and return.
type Observer interface {
	// Request is called once for each request answered, with the code of
	// its response (of the first, for a Q-Block2 burst); a Non-confirmable
	// request rejected with a Reset is reported with coap.BadOption.
	Request(t Transport, code coap.Code)
	// Block is called for each response that carries a part of a body (a
	// block, a burst's block, a small body whole), with its payload size.
	Block(t Transport, bytes int)
	// Transfer is called with each line of the access log, before it is
	// logged.
	Transfer(x Transfer)
	// Conn is called when a connection (TCP, TLS once its handshake is
	// done) or a DTLS session starts being served (open) and when it ends.
	Conn(t Transport, c net.Conn, open bool)
	// Handshake is called when a TLS handshake ends, err nil when it
	// succeeded, and for each DTLS session accepted (whose handshake the
	// listener ran; its failures are the listener's to report).
	Handshake(t Transport, c net.Conn, err error)
	// Refused is called for each connection or session the server turns
	// away of its own accord: "max_conns" (Options.MaxConns), "draining"
	// (after Shutdown began).
	Refused(t Transport, reason string)
}

// nopObserver is the Observer of a server given none.
type nopObserver struct{}

func (nopObserver) Request(Transport, coap.Code)         {}
func (nopObserver) Block(Transport, int)                 {}
func (nopObserver) Transfer(Transfer)                    {}
func (nopObserver) Conn(Transport, net.Conn, bool)       {}
func (nopObserver) Handshake(Transport, net.Conn, error) {}
func (nopObserver) Refused(Transport, string)            {}

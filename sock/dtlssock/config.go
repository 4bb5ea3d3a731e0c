package dtlssock

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"

	"github.com/pion/dtls/v3"

	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/sockkit"
)

// Config is what a DTLS client (New) or server (Listen) needs: its
// credentials, what it trusts, its cipher suites. It is tether's own, so
// that pion's API does not show in tether's; the socket turns it into
// pion's options. A Config must not be changed once in use.
//
// A *Config is also what package download takes to make coaps sockets
// (download.Options.DTLS): see Client.
type Config struct {
	// PSK returns the pre-shared key. A client's is given the server's
	// identity hint (nil if the server sends none); a server's is given
	// the identity the client presents, and refuses it with an alert by
	// returning an error.
	PSK func(identity []byte) ([]byte, error)
	// PSKIdentity is the identity a client presents with its pre-shared
	// key, and required with PSK; a server sends it as its identity hint
	// (optional).
	PSKIdentity []byte
	// Certificates are presented to the peer: a server's certificate
	// chain, or a client's.
	Certificates []tls.Certificate
	// RootCAs are the certificate authorities a client trusts; nil means
	// the system's.
	RootCAs *x509.CertPool
	// ServerName is the name a client verifies the server's certificate
	// against; empty means the host given to Connect (an IP literal is
	// checked against the certificate's IP addresses).
	ServerName string
	// PinnedCertificate, when set, is the one certificate (DER) a client
	// accepts from the server, compared byte for byte, with no chain or
	// name checked (LwM2M's Certificate Usage 3, "domain-issued
	// certificate"): RootCAs and ServerName are then not used.
	PinnedCertificate []byte
	// CipherSuites are the suites offered or accepted, in order of
	// preference. Nil means, with a PSK and no Certificates, the PSK suites
	// below (CCM_8, CCM, GCM: LwM2M's first); otherwise pion's defaults,
	// which are certificate (ECDHE) suites.
	CipherSuites []CipherSuite
	// ConnectionIDs makes a server (Listen) ask each client for a
	// Connection ID (RFC 9146, 8 bytes), by which it follows a client to a
	// new address or port with no handshake. A client always offers to
	// send one; this field does not concern it.
	ConnectionIDs bool
	// Limits bound a server's (Listen) handshakes in progress, the
	// records they hold, its live sessions and its store of sessions to
	// resume; zero fields take their defaults. A client ignores them.
	Limits Limits
}

// CipherSuite is a DTLS 1.2 cipher suite, by its IANA number. The
// constants are the ones tether's callers name; any other suite pion
// implements works by its number.
type CipherSuite uint16

// Cipher suites for pre-shared keys, AEAD only: the ones libcoap's
// OpenSSL build and pion agree on.
const (
	// TLS_PSK_WITH_AES_128_CCM_8 is the suite LwM2M and RFC 7925 make
	// mandatory for pre-shared keys.
	TLS_PSK_WITH_AES_128_CCM_8      CipherSuite = 0xc0a8
	TLS_PSK_WITH_AES_128_CCM        CipherSuite = 0xc0a4
	TLS_PSK_WITH_AES_128_GCM_SHA256 CipherSuite = 0x00a8
)

// errNotPinned refuses a server whose certificate is not the pinned one.
var errNotPinned = sockkit.Mark(sock.ErrAuth, errors.New("the server's certificate is not the pinned one"))

// pskSuites are what a Config with a PSK and no CipherSuites offers.
var pskSuites = []CipherSuite{TLS_PSK_WITH_AES_128_CCM_8, TLS_PSK_WITH_AES_128_CCM, TLS_PSK_WITH_AES_128_GCM_SHA256}

// Client returns a DTLS client socket over raw with this configuration:
// New(raw, c). It makes a *Config a download.DTLSLayer, which is how a
// program gives package download its coaps support.
func (c *Config) Client(raw sock.Socket) sock.Socket { return New(raw, c) }

// options are pion's options for c, on either side; the caller adds what
// depends on the side and the connection (the server name, the session
// store, the Connection ID generator).
func (c *Config) options() []dtls.Option {
	var opts []dtls.Option
	if c.PSK != nil {
		opts = append(opts, dtls.WithPSK(c.PSK))
	}
	if len(c.PSKIdentity) > 0 {
		opts = append(opts, dtls.WithPSKIdentityHint(c.PSKIdentity))
	}
	if len(c.Certificates) > 0 {
		opts = append(opts, dtls.WithCertificates(c.Certificates...))
	}
	if c.PinnedCertificate != nil {
		pinned := c.PinnedCertificate
		opts = append(opts, dtls.WithInsecureSkipVerify(true),
			dtls.WithVerifyPeerCertificate(func(raw [][]byte, _ [][]*x509.Certificate) error {
				if len(raw) == 0 || !bytes.Equal(raw[0], pinned) {
					return errNotPinned
				}
				return nil
			}))
	} else if c.RootCAs != nil {
		opts = append(opts, dtls.WithRootCAs(c.RootCAs))
	}
	suites := c.CipherSuites
	if len(suites) == 0 && c.PSK != nil && len(c.Certificates) == 0 {
		suites = pskSuites
	}
	if len(suites) > 0 {
		ids := make([]dtls.CipherSuiteID, len(suites))
		for i, s := range suites {
			ids[i] = dtls.CipherSuiteID(s)
		}
		opts = append(opts, dtls.WithCipherSuites(ids...))
	}
	return opts
}

// clientOptions are the options of a client's handshake with the server
// named name, whose sessions are kept in store: c's, the name, the store,
// and a Connection ID offered (the client sends the server's; it asks for
// none of its own).
func (c *Config) clientOptions(name string, store dtls.SessionStore) []dtls.Option {
	return append(c.options(),
		dtls.WithServerName(name),
		dtls.WithSessionStore(store),
		dtls.WithConnectionIDGenerator(dtls.OnlySendCIDGenerator()))
}

// cidLen is the length of the Connection IDs a server asks for.
const cidLen = 8

// serverOptions are the options of a server's handshake: c's, newCID as
// the Connection ID generator when c asks for Connection IDs, and store
// (if not nil) for the sessions to resume by ID.
func (c *Config) serverOptions(newCID func() []byte, store dtls.SessionStore) []dtls.ServerOption {
	opts := c.options()
	if c.ConnectionIDs {
		opts = append(opts, dtls.WithConnectionIDGenerator(newCID))
	}
	if store != nil {
		opts = append(opts, dtls.WithSessionStore(store))
	}
	return serverSide(opts)
}

// serverSide and clientSide convert options that work on both sides to
// the type pion's server and client constructors take.
func serverSide(opts []dtls.Option) []dtls.ServerOption {
	out := make([]dtls.ServerOption, len(opts))
	for i, o := range opts {
		out[i] = o
	}
	return out
}

func clientSide(opts []dtls.Option) []dtls.ClientOption {
	out := make([]dtls.ClientOption, len(opts))
	for i, o := range opts {
		out[i] = o
	}
	return out
}

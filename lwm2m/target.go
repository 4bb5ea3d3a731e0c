package lwm2m

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/tether-iot/tether/sock/dtlssock"
)

// target is a server the client talks to, the LwM2M server or the
// bootstrap server: where it is, over which transport, and how the
// connection is secured.
type target struct {
	url        string
	host, port string
	tcp        bool             // coap+tcp or coaps+tcp (RFC 8323): the TCP binding
	dtls       *dtlssock.Config // coaps: DTLS
	tls        *tls.Config      // coaps+tcp: TLS
}

// secure reports whether the connection is a DTLS session, whose
// restoration keeps the registration across offline periods.
func (t *target) secure() bool { return t.dtls != nil }

// binding is the LwM2M binding of the transport the target is reached
// over (/1/x/7): "U", UDP, or "T", TCP.
func (t *target) binding() string {
	if t.tcp {
		return "T"
	}
	return "U"
}

// bindingFits reports whether a /1 Binding a bootstrap wrote names the
// transport of t.
func bindingFits(binding string, t *target) bool { return strings.Contains(binding, t.binding()) }

// newTarget parses a server URL, coap://host[:5683], coaps://host[:5684],
// coap+tcp://host[:5683] or coaps+tcp://host[:5684], with what a secure
// one needs: cfg, or else a configuration made from a pre-shared key
// (coaps only: TLS 1.3 in Go has no PSK); for coaps+tcp, tlsCfg, or else
// cfg's certificates as a TLS configuration.
func newTarget(raw string, pskIdentity, psk []byte, cfg *dtlssock.Config, tlsCfg *tls.Config) (*target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: server URL: %v", ErrConfig, err)
	}
	t := &target{url: raw, host: u.Hostname(), port: u.Port()}
	switch u.Scheme {
	case "coap", "coap+tcp":
		t.tcp = u.Scheme == "coap+tcp"
		if t.port == "" {
			t.port = "5683"
		}
	case "coaps":
		if t.port == "" {
			t.port = "5684"
		}
		switch {
		case cfg != nil:
			t.dtls = cfg
		case len(pskIdentity) > 0 && len(psk) > 0:
			t.dtls = pskConfig(pskIdentity, psk)
		default:
			return nil, fmt.Errorf("%w: %s: a coaps server needs a PSK identity and key, or a DTLS configuration", ErrConfig, raw)
		}
	case "coaps+tcp":
		t.tcp = true
		if t.port == "" {
			t.port = "5684"
		}
		switch {
		case tlsCfg != nil:
			t.tls = tlsCfg.Clone()
		case cfg != nil && cfg.PSK == nil:
			t.tls = tlsFromDTLS(cfg)
		default:
			return nil, fmt.Errorf("%w: %s: a coaps+tcp server needs certificates (TLS, or DTLS's certificates); TLS has no pre-shared keys here", ErrConfig, raw)
		}
	default:
		return nil, fmt.Errorf("%w: server URL %q: scheme must be coap, coaps, coap+tcp or coaps+tcp", ErrConfig, raw)
	}
	if t.host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return nil, fmt.Errorf("%w: server URL %q: want coap[s][+tcp]://host[:port]", ErrConfig, raw)
	}
	return t, nil
}

// tlsFromDTLS is the TLS configuration of DTLS's certificates: the
// client's chain, the server's CA and name, or its pinned certificate.
func tlsFromDTLS(cfg *dtlssock.Config) *tls.Config {
	t := &tls.Config{Certificates: cfg.Certificates, RootCAs: cfg.RootCAs, ServerName: cfg.ServerName, MinVersion: tls.VersionTLS12}
	if pinned := cfg.PinnedCertificate; pinned != nil {
		// LwM2M's Certificate Usage 3: that very certificate, whatever
		// chain or name; crypto/tls's own checks give way to this one.
		t.InsecureSkipVerify = true
		t.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 || !bytes.Equal(raw[0], pinned) {
				return errors.New("lwm2m: the server's certificate is not the pinned one")
			}
			return nil
		}
	}
	return t
}

// pskConfig is the DTLS configuration of a pre-shared key, with LwM2M's
// suite first.
func pskConfig(identity, key []byte) *dtlssock.Config {
	return &dtlssock.Config{
		PSK:          func([]byte) ([]byte, error) { return key, nil },
		PSKIdentity:  identity,
		CipherSuites: []dtlssock.CipherSuite{dtlssock.TLS_PSK_WITH_AES_128_CCM_8, dtlssock.TLS_PSK_WITH_AES_128_GCM_SHA256},
	}
}

package lwm2m

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/tether-iot/tether/sock/dtlssock"
)

// target is a server the client talks to, the LwM2M server or the
// bootstrap server: where it is and how the connection is secured.
type target struct {
	url        string
	host, port string
	dtls       *dtlssock.Config // nil: NoSec
}

func (t *target) secure() bool { return t.dtls != nil }

// binding is the LwM2M binding of the transport the target is reached
// over (/1/x/7): "U", UDP.
func (t *target) binding() string { return "U" }

// bindingFits reports whether a /1 Binding a bootstrap wrote names the
// transport of t.
func bindingFits(binding string, t *target) bool { return strings.Contains(binding, t.binding()) }

// newTarget parses a server URL, coap://host[:5683] or
// coaps://host[:5684], with the DTLS configuration a coaps one needs: cfg,
// or else one made from a pre-shared key.
func newTarget(raw string, pskIdentity, psk []byte, cfg *dtlssock.Config) (*target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: server URL: %v", ErrConfig, err)
	}
	t := &target{url: raw, host: u.Hostname(), port: u.Port()}
	switch u.Scheme {
	case "coap":
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
	default:
		return nil, fmt.Errorf("%w: server URL %q: scheme must be coap or coaps (this client has no TCP binding)", ErrConfig, raw)
	}
	if t.host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return nil, fmt.Errorf("%w: server URL %q: want coap[s]://host[:port]", ErrConfig, raw)
	}
	return t, nil
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

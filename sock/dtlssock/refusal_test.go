package dtlssock_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/internal/testrig/sockrig"
	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/dtlssock"
	"github.com/tether-iot/tether/sock/simnet"
)

// TestHandshakeRefusals: a handshake that fails on credentials is
// sock.ErrAuth (permanent) and says why; one that fails on silence is a
// transient timeout that says what was missing; a long link's crossing
// flights are not taken for a refusal.
func TestHandshakeRefusals(t *testing.T) {
	keyOf := func(key string) func([]byte) ([]byte, error) {
		return func([]byte) ([]byte, error) { return []byte(key), nil }
	}
	tests := []struct {
		name      string
		client    func(*dtlssock.Config)
		server    func(*dtlssock.Config) // nil: a host that never answers
		delay     time.Duration          // one way
		auth      bool
		permanent bool
		text      string
	}{
		{name: "right key", client: func(*dtlssock.Config) {}, server: func(*dtlssock.Config) {}},
		// Read from silence: ErrAuth, but not permanent on its own.
		{name: "wrong key", client: func(c *dtlssock.Config) { c.PSK = keyOf("not the key") }, server: func(*dtlssock.Config) {},
			auth: true, permanent: false, text: "never accepted our Finished"},
		{name: "unknown identity", client: func(c *dtlssock.Config) { c.PSKIdentity = []byte("stranger") },
			server: func(c *dtlssock.Config) {
				c.PSK = func(id []byte) ([]byte, error) {
					if string(id) != "tether" {
						return nil, errors.New("unknown identity")
					}
					return psk, nil
				}
			}, auth: true, permanent: true, text: "alert"},
		{name: "no DTLS server", client: func(*dtlssock.Config) {}, text: "no DTLS answer"},
		{name: "right key over a 3 s round trip", client: func(*dtlssock.Config) {}, server: func(*dtlssock.Config) {}, delay: 1500 * time.Millisecond},
		// On a long link the server's timer fires before each of our
		// Finished can reach it, so the repetitions do not prove a refusal
		// within a minute: the timeout says what is likely.
		{name: "wrong key over a 3 s round trip", client: func(c *dtlssock.Config) { c.PSK = keyOf("not the key") }, server: func(*dtlssock.Config) {},
			delay: 1500 * time.Millisecond, text: "did not accept our Finished (wrong pre-shared key?)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := simnet.New(1)
				srv := n.AddHost("server", "10.0.0.1")
				dev := n.AddHost("device", "10.0.0.2")
				n.DNS().Set("server.sim", netip.MustParseAddr("10.0.0.1"))
				dev.SetLink(simnet.LinkConfig{Delay: tt.delay})
				pc, err := srv.ListenPacket("udp", ":5684")
				if err != nil {
					t.Fatal(err)
				}
				defer pc.Close()
				if tt.server != nil {
					cfg := pskConfig()
					tt.server(cfg)
					ln, err := dtlssock.Listen(pc, cfg)
					if err != nil {
						t.Fatal(err)
					}
					sockrig.EchoStreams(t, ln)
				}
				raw, err := dev.NewSocket("udp", nil)
				if err != nil {
					t.Fatal(err)
				}
				cfg := pskConfig()
				tt.client(cfg)
				s := dtlssock.New(raw, cfg)
				defer s.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				start := time.Now()
				err = s.Connect(ctx, "server.sim", "5684")
				took := time.Since(start)
				if tt.text == "" {
					if err != nil {
						t.Fatalf("Connect: %v", err)
					}
					sockrig.EchoOnce(t, s, "hello")
					return
				}
				if err == nil {
					t.Fatal("the handshake succeeded")
				}
				if errors.Is(err, sock.ErrAuth) != tt.auth || sock.IsPermanent(err) != tt.permanent || !strings.Contains(err.Error(), tt.text) {
					t.Fatalf("%v (after %v): ErrAuth %v, permanent %v; want %v, %v, and %q in the text",
						err, took, errors.Is(err, sock.ErrAuth), sock.IsPermanent(err), tt.auth, tt.permanent, tt.text)
				}
				if !tt.auth && !sock.IsTimeout(err) {
					t.Fatalf("%v: want a timeout", err)
				}
				if tt.auth && took > 30*time.Second {
					t.Fatalf("the refusal took %v to tell", took)
				}
				t.Logf("after %v (simulated): %v", took, err)
			})
		})
	}
}

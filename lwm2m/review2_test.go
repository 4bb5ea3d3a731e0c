package lwm2m_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// TestReview2TCPServerClosesIdleConnection: over TCP the connection is
// the registration's only way in: once the server (or a NAT, or a load
// balancer) closes it, the server cannot reach the client. The client
// must notice at once and register again over a new connection, not sit
// "Registered" on a dead stream until its next Update, up to a lifetime
// away (here 8.5 of 10 minutes; with the default a day).
func TestReview2TCPServerClosesIdleConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		srv := tcpServer(t, w, nil)
		cfg := w.config("dev-tc", t.TempDir(), nil)
		cfg.ServerURL = "coap+tcp://10.0.0.1:5693"
		c, _ := start(t, cfg)
		ctx := context.Background()
		if _, err := srv.WaitRegistered(ctx, "dev-tc", 0); err != nil {
			t.Fatal(err)
		}
		srv.Close() // the client's connection goes, with no Release
		srv2 := tcpServer(t, w, nil)
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if _, err := srv2.WaitRegistered(wctx, "dev-tc", 0); err != nil {
			t.Fatalf("a minute after the server closed the connection: %v; status %+v", err, c.Status())
		}
		if got := text(t)(srv2.Read(ctx, "dev-tc", "/3/0/0")); got != "tether" {
			t.Errorf("/3/0/0 %q", got)
		}
	})
}

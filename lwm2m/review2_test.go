package lwm2m_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/lwm2m"
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

// TestReview2StopThatTimesOutLeavesTheClientWorking: Stop whose context
// ends before the loop takes its command returns ctx's error, and the
// client runs on (Stop's doc: "or with ctx's error when ctx ends first").
// But Stop had already set stopReq, which nothing cleared: every bootstrap
// after it returned at once without moving ("Stop came before the
// exchange began"), so the loop spun in Bootstrapping forever, never
// waiting, and the client never reached its servers again. Here the
// factory server is unreachable, an ExitOffline waits in the command slot
// while a Register is in flight, and a one-second Stop cannot hand its
// command over; after five failed Registers the client must bootstrap
// and register with the server the bootstrap names.
func TestReview2StopThatTimesOutLeavesTheClientWorking(t *testing.T) {
	// On the code before the fix the loop spins: the bubble's clock
	// never moves again and the test would hang; fail it instead.
	spin := time.AfterFunc(2*time.Minute, func() {
		panic("TestReview2StopThatTimesOutLeavesTheClientWorking: the client's loop spins after a Stop that timed out")
	})
	defer spin.Stop()
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		newBSServer(t, w, func(int) []*coap.Message { return provision("coap://10.0.0.1:5683", 300) })
		cfg := w.config("dev-st", t.TempDir(), nil)
		cfg.ServerURL = "coap://10.0.0.99:5683" // the factory server: nobody there
		cfg.Bootstrap = &lwm2m.Bootstrap{URL: bsURL, StateDir: t.TempDir()}
		c, _ := start(t, cfg)
		ctx := context.Background()
		time.Sleep(time.Second) // the first Register is in flight
		go func() { _ = c.ExitOffline(ctx) }()
		synctest.Wait() // the ExitOffline holds the command slot (it cuts nothing)
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		err := c.Stop(sctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Stop: %v, want its context's end", err)
		}
		wctx, cancel := context.WithTimeout(ctx, time.Hour)
		defer cancel()
		if _, err := w.srv.WaitRegistered(wctx, "dev-st", 0); err != nil {
			t.Fatalf("after a Stop that timed out: %v; status %+v", err, c.Status())
		}
	})
}

// TestReview2ServerInitiatedBootstrapSurvivesReconnect: a server asks for
// a bootstrap (/1/x/9) and the client starts one; a Reconnect (a network
// change) cuts it short. Back on the network the client must bootstrap
// as asked, not forget the request and register with the old server
// again. (The same for offline mode, and for the bootstrap that
// registration failures call for.)
func TestReview2ServerInitiatedBootstrapSurvivesReconnect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		srv2, bs, cfg := movingBootstrap(t, w, "dev-sir")
		c, _ := start(t, cfg)
		ctx := context.Background()
		if _, err := w.srv.WaitRegistered(ctx, "dev-sir", 0); err != nil {
			t.Fatal(err)
		}
		want(t, coap.Changed)(w.srv.Execute(ctx, "dev-sir", "/1/1/9", nil))
		for c.Status().State != lwm2m.Bootstrapping {
			time.Sleep(time.Millisecond)
		}
		synctest.Wait() // the bootstrap's exchange is in flight
		if err := c.Reconnect(ctx); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
		defer cancel()
		if _, err := srv2.WaitRegistered(wctx, "dev-sir", 0); err != nil {
			n, _ := bs.stats()
			t.Fatalf("the bootstrap the server asked for, cut by a Reconnect: %v (%d Bootstrap-Requests; first server's Registers %d)", err, n, w.srv.Stats().Registers)
		}
	})
}

// TestReview2TCPServerClosesAfterEachRegister: a hostile (or broken)
// server that answers each Register and then closes the connection must
// not have the client register in a loop as fast as the network goes:
// after a lost connection the next one waits for RetryDelay from the last.
func TestReview2TCPServerClosesAfterEachRegister(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		registers := closingTCPServer(t, w, ":5693",
			coap.Message{Code: coap.Created, Options: coap.Options{{ID: 8, Value: []byte("rd")}, {ID: 8, Value: []byte("x")}}})
		cfg := w.config("dev-tr", t.TempDir(), nil)
		cfg.ServerURL = "coap+tcp://10.0.0.1:5693"
		_, stop := start(t, cfg)
		time.Sleep(time.Minute)
		stop()
		if n := registers.Load(); n < 2 || n > 14 {
			t.Errorf("%d Registers in a minute, want one every RetryDelay (5 s) at most, and more than one", n)
		}
	})
}

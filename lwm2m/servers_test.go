package lwm2m_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/lwm2m"
	"github.com/tether-iot/tether/lwm2m/content"
	"github.com/tether-iot/tether/lwm2m/lwm2mtest"
)

// secondServer starts a NoSec LwM2M test server on host 10.0.0.3 of the
// world's network.
func secondServer(t *testing.T, w *world) *lwm2mtest.Server {
	t.Helper()
	h := w.n.AddHost("server-2", "10.0.0.3")
	pc, err := h.ListenPacket("udp", ":5683")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := lwm2mtest.NewServer(pc, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// linkTargets lists a registration's object links.
func linkTargets(reg lwm2mtest.Registration) string {
	var links []string
	for _, l := range reg.Links {
		links = append(links, l.Target)
	}
	return strings.Join(links, ",")
}

// TestTwoServers registers one client with two servers, each with its own
// /1 instance, lifetime and registration; a value one writes is notified
// to the other's observer; offline mode silences both and both come back;
// Stop deregisters from both.
func TestTwoServers(t *testing.T) {
	for _, secure := range []bool{false, true} {
		name := map[bool]string{false: "nosec", true: "dtls-and-nosec"}[secure]
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t, secure, nil)
				srv2 := secondServer(t, w)
				cfg := w.config("dev-2s", t.TempDir(), nil)
				cfg.Servers = []lwm2m.Server{{URL: "coap://10.0.0.3:5683", ShortServerID: 7, Lifetime: 5 * time.Minute}}
				c, _, m := startWatched(t, cfg)
				ctx := context.Background()

				reg1, err := w.srv.WaitRegistered(ctx, "dev-2s", 0)
				if err != nil {
					t.Fatal(err)
				}
				reg2, err := srv2.WaitRegistered(ctx, "dev-2s", 0)
				if err != nil {
					t.Fatal(err)
				}
				if reg1.Lifetime != 10*time.Minute || reg2.Lifetime != 5*time.Minute {
					t.Errorf("lifetimes %v and %v, want 10m and 5m: each server its own", reg1.Lifetime, reg2.Lifetime)
				}
				for i, reg := range []lwm2mtest.Registration{reg1, reg2} {
					if got := linkTargets(reg); got != "/,/1/0,/1/1,/3/0,/5/0" {
						t.Errorf("server %d: object links %s, want both /1 instances", i+1, got)
					}
				}
				// Each server finds its Short Server ID in its own /1
				// instance, and sees the other's.
				if got := text(t)(w.srv.Read(ctx, "dev-2s", "/1/0/0")); got != "1" {
					t.Errorf("/1/0/0 at server 1: %q, want 1", got)
				}
				if got := text(t)(srv2.Read(ctx, "dev-2s", "/1/1/0")); got != "7" {
					t.Errorf("/1/1/0 at server 2: %q, want 7", got)
				}
				if got := text(t)(srv2.Read(ctx, "dev-2s", "/1/0/1")); got != "600" {
					t.Errorf("/1/0/1 at server 2: %q, want server 1's lifetime 600", got)
				}

				// Server 1 observes server 2's lifetime; server 2 writes
				// it: server 1 is notified, server 2 alone hears an Update.
				o, err := w.srv.Observe(ctx, "dev-2s", "/1/1/1")
				if err != nil {
					t.Fatal(err)
				}
				if string(o.First.Payload) != "300" {
					t.Errorf("first notification %q, want 300", o.First.Payload)
				}
				updates1, updates2 := w.srv.Stats().Updates, srv2.Stats().Updates
				want(t, coap.Changed)(srv2.Write(ctx, "dev-2s", "/1/1/1", content.Text, []byte("120")))
				waitNotified(t, o, "120")
				deadline := time.Now().Add(time.Minute)
				for srv2.Stats().Updates == updates2 && time.Now().Before(deadline) {
					time.Sleep(100 * time.Millisecond)
				}
				if r, _ := srv2.Registration("dev-2s"); r.Lifetime != 2*time.Minute {
					t.Errorf("server 2's registration lifetime %v after the write, want 2m", r.Lifetime)
				}
				if got := w.srv.Stats().Updates - updates1; got != 0 {
					t.Errorf("%d Updates at server 1 for server 2's lifetime", got)
				}

				sts := c.Servers()
				if len(sts) != 2 || sts[0].ShortServerID != 1 || sts[1].ShortServerID != 7 || !sts[0].Registered || !sts[1].Registered {
					t.Errorf("Servers() %+v", sts)
				}

				// Offline for five minutes (past server 2's lifetime):
				// nothing on the wire; back online, both are registered.
				if err := c.EnterOffline(ctx); err != nil {
					t.Fatal(err)
				}
				synctest.Wait()
				sent := w.n.Stats().Sent
				time.Sleep(5 * time.Minute)
				if got := w.n.Stats().Sent; got != sent {
					t.Errorf("%d datagrams sent while offline", got-sent)
				}
				for _, s := range c.Servers() {
					if s.State != lwm2m.Offline {
						t.Errorf("server %d: %v while offline", s.ShortServerID, s.State)
					}
				}
				regs2 := srv2.Stats().Registers
				if err := c.ExitOffline(ctx); err != nil {
					t.Fatal(err)
				}
				if _, err := srv2.WaitRegistered(ctx, "dev-2s", regs2); err != nil {
					t.Fatalf("server 2 after offline: %v", err)
				}
				if got := text(t)(w.srv.Read(ctx, "dev-2s", "/3/0/0")); got != "tether" {
					t.Errorf("/3/0/0 at server 1 after offline: %q", got)
				}

				sctx, cancel := context.WithTimeout(ctx, time.Minute)
				defer cancel()
				if err := c.Stop(sctx); err != nil {
					t.Fatal(err)
				}
				for i, s := range []*lwm2mtest.Server{w.srv, srv2} {
					if err := s.WaitDeregistered(sctx, "dev-2s"); err != nil {
						t.Errorf("server %d: %v", i+1, err)
					}
				}
				// Server 7's machine moved through its table too.
				got := m.otherStates(7)
				for _, s := range []lwm2m.RegState{lwm2m.Registered, lwm2m.Updating, lwm2m.Offline, lwm2m.Reconnecting, lwm2m.Deregistering, lwm2m.Stopped} {
					if !slices.Contains(got, s) {
						t.Errorf("server 7's registration never entered %v: %v", s, got)
					}
				}
			})
		})
	}
}

// waitNotified reads notifications until one carries value.
func waitNotified(t *testing.T, o *lwm2mtest.Observation, value string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var seen []string
	for {
		select {
		case n, ok := <-o.Notifications:
			if !ok {
				t.Fatalf("the observation ended after %v; want %q", seen, value)
			}
			if string(n.Payload) == value {
				return
			}
			seen = append(seen, string(n.Payload))
		case <-ctx.Done():
			t.Fatalf("notified %v; want %q", seen, value)
		}
	}
}

// TestServersConfigChecked refuses servers that cannot be told apart.
func TestServersConfigChecked(t *testing.T) {
	for _, tc := range []struct {
		name    string
		servers []lwm2m.Server
	}{
		{"no Short Server ID", []lwm2m.Server{{URL: "coap://10.0.0.3"}}},
		{"the first server's ID", []lwm2m.Server{{URL: "coap://10.0.0.3", ShortServerID: 1}}},
		{"an ID twice", []lwm2m.Server{{URL: "coap://10.0.0.3", ShortServerID: 2}, {URL: "coap://10.0.0.4", ShortServerID: 2}}},
		{"the reserved ID", []lwm2m.Server{{URL: "coap://10.0.0.3", ShortServerID: 65535}}},
		{"a bad URL", []lwm2m.Server{{URL: "http://10.0.0.3", ShortServerID: 2}}},
		{"coaps without credentials", []lwm2m.Server{{URL: "coaps://10.0.0.3", ShortServerID: 2}}},
		{"a lifetime under a second", []lwm2m.Server{{URL: "coap://10.0.0.3", ShortServerID: 2, Lifetime: time.Millisecond}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := lwm2m.New(lwm2m.Config{Endpoint: "x", ServerURL: "coap://10.0.0.1", Servers: tc.servers})
			if err == nil || !strings.Contains(err.Error(), "lwm2m") {
				t.Fatalf("New: %v, want a configuration error", err)
			}
		})
	}
}

// provisionTwo is provision with a second NoSec server, Short Server ID 2
// at /0/2 and /1/2.
func provisionTwo(uri1, uri2 string) []*coap.Message {
	ms := provision(uri1, 300)
	binding := "U"
	if strings.Contains(uri2, "+tcp:") {
		binding = "T"
	}
	sec := []content.Record{
		{Path: content.ResourcePath(0, 2, 0), Value: content.StringValue(uri2)},
		{Path: content.ResourcePath(0, 2, 1), Value: content.BoolValue(false)},
		{Path: content.ResourcePath(0, 2, 2), Value: content.IntValue(3)},
		{Path: content.ResourcePath(0, 2, 10), Value: content.IntValue(2)},
	}
	srv := []content.Record{
		{Path: content.ResourcePath(1, 2, 0), Value: content.IntValue(2)},
		{Path: content.ResourcePath(1, 2, 1), Value: content.IntValue(200)},
		{Path: content.ResourcePath(1, 2, 7), Value: content.StringValue(binding)},
	}
	secTLV, _ := content.Encode(content.TLV, content.InstancePath(0, 2), sec)
	srvTLV, _ := content.Encode(content.TLV, content.InstancePath(1, 2), srv)
	extra := []*coap.Message{
		req(coap.PUT, "/0/2", secTLV, uintOption(coap.ContentFormat, uint32(content.TLV))),
		req(coap.PUT, "/1/2", srvTLV, uintOption(coap.ContentFormat, uint32(content.TLV))),
	}
	// Before the Discover, the Read and the Finish.
	return slices.Concat(ms[:3], extra, ms[3:])
}

// TestBootstrapTwoServers has a bootstrap server provision two LwM2M
// servers: the client registers with both, each at its /1 instance, and a
// restart registers with both again without asking the bootstrap server.
func TestBootstrapTwoServers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		srv2 := secondServer(t, w)
		bs := newBSServer(t, w, func(int) []*coap.Message {
			return provisionTwo("coap://10.0.0.1:5683", "coap://10.0.0.3:5683")
		})
		state := t.TempDir()
		cfg := w.config("dev-bs2", t.TempDir(), nil)
		cfg.ServerURL = ""
		cfg.Bootstrap = &lwm2m.Bootstrap{URL: bsURL, StateDir: state}
		_, stop, m := startWatched(t, cfg)
		ctx := context.Background()
		reg1, err := w.srv.WaitRegistered(ctx, "dev-bs2", 0)
		if err != nil {
			t.Fatal(err)
		}
		reg2, err := srv2.WaitRegistered(ctx, "dev-bs2", 0)
		if err != nil {
			t.Fatal(err)
		}
		if reg1.Lifetime != 300*time.Second || reg2.Lifetime != 200*time.Second {
			t.Errorf("lifetimes %v and %v, want 5m0s and 3m20s", reg1.Lifetime, reg2.Lifetime)
		}
		if got := linkTargets(reg2); got != "/,/1/1,/1/2,/3/0,/5/0" {
			t.Errorf("object links %s, want /1/1 and /1/2", got)
		}
		if got := text(t)(srv2.Read(ctx, "dev-bs2", "/1/2/0")); got != "2" {
			t.Errorf("/1/2/0 at server 2: %q, want 2", got)
		}
		if _, err := os.Stat(filepath.Join(state, "bootstrap.json")); err != nil {
			t.Fatal(err)
		}
		if got := m.otherStates(2); !slices.Contains(got, lwm2m.Registered) {
			t.Errorf("server 2's registration: %v", got)
		}
		stop()

		// A restart: both servers from the saved state, no bootstrap.
		regs1, regs2 := w.srv.Stats().Registers, srv2.Stats().Registers
		_, stop2 := start(t, cfg)
		defer stop2()
		if _, err := w.srv.WaitRegistered(ctx, "dev-bs2", regs1); err != nil {
			t.Fatal(err)
		}
		if _, err := srv2.WaitRegistered(ctx, "dev-bs2", regs2); err != nil {
			t.Fatal(err)
		}
		if n, _ := bs.stats(); n != 1 {
			t.Errorf("%d Bootstrap-Requests, want 1: the restart uses the saved state", n)
		}
	})
}

// TestServerInitiatedBootstrap: a server executes /1/x/9 (Bootstrap-Request
// Trigger, LwM2M 1.1 5.2.3); the client answers 2.04, asks its bootstrap
// server again, and registers with the server that bootstrap names. A
// client without a bootstrap server refuses the Execute with 4.05.
func TestServerInitiatedBootstrap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		srv2, bs, cfg := movingBootstrap(t, w, "dev-sib")
		_, _, m := startWatched(t, cfg)
		ctx := context.Background()
		if _, err := w.srv.WaitRegistered(ctx, "dev-sib", 0); err != nil {
			t.Fatal(err)
		}
		want(t, coap.Changed)(w.srv.Execute(ctx, "dev-sib", "/1/1/9", nil))
		if _, err := srv2.WaitRegistered(ctx, "dev-sib", 0); err != nil {
			t.Fatal(err)
		}
		if n, _ := bs.stats(); n != 2 {
			t.Errorf("%d Bootstrap-Requests, want 2", n)
		}
		reg, _ := m.states()
		if i := slices.Index(reg, lwm2m.Registered); i < 0 || !slices.Contains(reg[i:], lwm2m.Bootstrapping) {
			t.Errorf("states %v: no bootstrap after the registration", reg)
		}

		// Without a bootstrap server there is nothing to trigger.
		c2cfg := w.config("dev-nobs", t.TempDir(), nil)
		start(t, c2cfg)
		if _, err := w.srv.WaitRegistered(ctx, "dev-nobs", 0); err != nil {
			t.Fatal(err)
		}
		want(t, coap.MethodNotAllowed)(w.srv.Execute(ctx, "dev-nobs", "/1/0/9", nil))
	})
}

// TestLargeReadInBlocks: a Read whose answer is larger than a block (an
// opaque resource of 3,000 bytes) is answered block by block (RFC 7959
// Block2): block 0 with Size2 and an ETag when the server asks for none,
// each block the server asks for, at the size it asks for, and 4.02 past
// the end; the blocks make the value whole.
func TestLargeReadInBlocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		b := &blob{value: bytes.Repeat([]byte("0123456789abcdef"), 190)[:3000]}
		cfg := w.config("dev-b2", t.TempDir(), nil)
		cfg.Objects = []lwm2m.Object{b}
		start(t, cfg)
		ctx := context.Background()
		if _, err := w.srv.WaitRegistered(ctx, "dev-b2", 0); err != nil {
			t.Fatal(err)
		}
		get := func(opts ...coap.Option) *coap.Message {
			t.Helper()
			m := req(coap.GET, "/33000/0/0", nil, append(opts, uintOption(17, uint32(content.OpaqueFormat)))...)
			sortOpts(m.Options)
			resp, err := w.srv.Do(ctx, "dev-b2", m)
			if err != nil {
				t.Fatal(err)
			}
			return resp
		}
		first := get()
		b2, ok, err := coap.GetBlock(first.Options, coap.Block2, false)
		size2, _ := coap.Uint(first.Options, coap.Size2)
		etag, _ := coap.Bytes(first.Options, coap.ETag)
		if first.Code != coap.Content || !ok || err != nil || b2.Num != 0 || !b2.More || b2.Size() != 1024 || size2 != 3000 || len(etag) == 0 || len(first.Payload) != 1024 {
			t.Fatalf("first answer %v %v (Block2 %v %v, Size2 %d, ETag %x), want block 0 of 1024 of 3000", first.Code, len(first.Payload), b2, err, size2, etag)
		}
		for _, size := range []int{1024, 256} {
			szx, _ := coap.SZXFor(size)
			var got []byte
			for num := uint32(0); ; num++ {
				resp := get(uintOption(coap.Block2, coap.Block{Num: num, SZX: szx}.Value()))
				blk, _, _ := coap.GetBlock(resp.Options, coap.Block2, false)
				if e, _ := coap.Bytes(resp.Options, coap.ETag); resp.Code != coap.Content || blk.Num != num || blk.Size() != size || !bytes.Equal(e, etag) {
					t.Fatalf("block %d of %d: %v, Block2 %v, ETag %x", num, size, resp.Code, blk, e)
				}
				got = append(got, resp.Payload...)
				if !blk.More {
					break
				}
			}
			if !bytes.Equal(got, b.value) {
				t.Errorf("blocks of %d: %d bytes, not the value", size, len(got))
			}
		}
		if resp := get(uintOption(coap.Block2, coap.Block{Num: 3, SZX: 6}.Value())); resp.Code != coap.BadOption {
			t.Errorf("block 3 of 1024 (past the end): %v, want 4.02", resp.Code)
		}
		// A small answer stays whole.
		if resp := get(); len(resp.Payload) == 0 {
			t.Fatal("no answer")
		}
		small := req(coap.GET, "/3/0/0", nil)
		resp, err := w.srv.Do(ctx, "dev-b2", small)
		if err != nil || resp.Code != coap.Content {
			t.Fatalf("/3/0/0: %v %v", resp, err)
		}
		if _, ok := coap.Bytes(resp.Options, coap.Block2); ok {
			t.Error("a small answer came with Block2")
		}
	})
}

// TestUpdateDoesNotWaitForASlowServer: with a second server that never
// answers (its session in a Register's retransmissions), Update returns at
// once and the first server hears its Update; it used to wait for the
// other session's exchange to end (93 s).
func TestUpdateDoesNotWaitForASlowServer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		cfg := w.config("dev-slow", t.TempDir(), nil)
		cfg.Servers = []lwm2m.Server{{URL: "coap://10.0.0.99:5683", ShortServerID: 2}}
		c, _ := start(t, cfg)
		ctx := context.Background()
		if _, err := w.srv.WaitRegistered(ctx, "dev-slow", 0); err != nil {
			t.Fatal(err)
		}
		for !c.Status().Registered {
			time.Sleep(10 * time.Millisecond)
		}
		updates := w.srv.Stats().Updates
		uctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if err := c.Update(uctx); err != nil {
			t.Fatalf("Update: %v", err)
		}
		for w.srv.Stats().Updates == updates {
			time.Sleep(10 * time.Millisecond)
		}
		if uctx.Err() != nil {
			t.Error("the first server's Update came after a second")
		}
	})
}

// movingBootstrap has a bootstrap server provision ep with the world's
// server first and, each time after, with a second server (on 10.0.0.3);
// it returns that server, the bootstrap server and ep's configuration.
func movingBootstrap(t *testing.T, w *world, ep string) (*lwm2mtest.Server, *bsServer, lwm2m.Config) {
	t.Helper()
	srv2 := secondServer(t, w)
	bs := newBSServer(t, w, func(n int) []*coap.Message {
		if n == 0 {
			return provision("coap://10.0.0.1:5683", 300)
		}
		return provision("coap://10.0.0.3:5683", 300)
	})
	cfg := w.config(ep, t.TempDir(), nil)
	cfg.ServerURL = ""
	cfg.Bootstrap = &lwm2m.Bootstrap{URL: bsURL, StateDir: t.TempDir()}
	return srv2, bs, cfg
}

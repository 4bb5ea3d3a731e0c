package lwm2mtest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/peer"
	"github.com/tether-iot/tether/lwm2m/lwm2mtest"
	"github.com/tether-iot/tether/sock/dtlssock"
	"github.com/tether-iot/tether/sock/simnet"
)

// A 1.0 server refuses a 1.1 Register with 4.12 and accepts the 1.0 one
// that follows, queue mode in the binding.
func TestOnly10(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := simnetRig(t, &lwm2mtest.Options{Only10: true})
		d := r.dial(t)
		ctx := t.Context()
		if resp, _ := d.register(ctx, "dev-1", "1.1", "b=U", "Q"); coap.CodeString(resp.Code) != preconditionFailed {
			t.Fatalf("a 1.1 Register: %s, want %s", coap.CodeString(resp.Code), preconditionFailed)
		}
		if _, ok := r.srv.Registration("dev-1"); ok {
			t.Fatal("registered after 4.12")
		}
		resp, loc := d.register(ctx, "dev-1", "1.0", "b=UQ")
		if coap.CodeString(resp.Code) != created {
			t.Fatalf("a 1.0 Register: %s", coap.CodeString(resp.Code))
		}
		reg, _ := r.srv.Registration("dev-1")
		if reg.Version != "1.0" || reg.Binding != "UQ" || !reg.Queue || reg.Location != loc {
			t.Errorf("registration %+v, want 1.0, UQ, queue mode, at %s", reg, loc)
		}
		if st := r.srv.EndpointStats("dev-1"); st.Rejected != 1 || st.Registers != 1 {
			t.Errorf("EndpointStats %+v, want 1 rejected and 1 Register", st)
		}
	})
}

// Malformed registration requests are refused, and nothing is registered.
func TestRegisterRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := simnetRig(t, nil)
		d := r.dial(t)
		ctx := t.Context()
		for _, c := range []struct {
			name    string
			code    coap.Code
			path    string
			payload string
			query   []string
			want    string
		}{
			{"no ep", coap.POST, "/rd", objectLinks, []string{"lt=60"}, badRequest},
			{"bad lt", coap.POST, "/rd", objectLinks, []string{"ep=x", "lt=soon"}, badRequest},
			{"bad links", coap.POST, "/rd", "</3/0", []string{"ep=x"}, badRequest},
			{"GET /rd", coap.GET, "/rd", "", nil, "4.05 Method Not Allowed"},
			{"elsewhere", coap.POST, "/bs", "", []string{"ep=x"}, notFound},
			{"deep", coap.POST, "/rd/0/1", "", nil, notFound},
		} {
			if got := codeOf(d.rd(ctx, c.code, c.path, c.payload, c.query...)); got != c.want {
				t.Errorf("%s: %s, want %s", c.name, got, c.want)
			}
		}
		// A Content-Format other than link format.
		req := &coap.Message{Code: coap.POST, Payload: []byte(objectLinks), Options: coap.Options{
			{ID: coap.URIPath, Value: []byte("rd")}, {ID: coap.ContentFormat, Value: []byte{110}},
			{ID: coap.URIQuery, Value: []byte("ep=x")}}}
		if got := codeOf(d.p.Do(ctx, req)); got != badRequest {
			t.Errorf("Content-Format 110: %s, want %s", got, badRequest)
		}
		if st := r.srv.Stats(); st.Registers != 0 || st.Rejected != 5 {
			t.Errorf("Stats %+v, want no Register and 5 rejected (4.04s count too)", st)
		}
		if _, ok := r.srv.Registration("x"); ok {
			t.Error("x registered")
		}
	})
}

// A second Register replaces the first: a new location, the old one
// unknown, its observations ended (their notifications reset).
func TestReRegister(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := simnetRig(t, nil)
		d := r.dial(t)
		ctx := t.Context()
		_, loc0 := d.register(ctx, "dev-1", "1.1")
		o, err := r.srv.Observe(ctx, "dev-1", "/5/0/3")
		if err != nil {
			t.Fatal(err)
		}
		_, loc1 := d.register(ctx, "dev-1", "1.1")
		if loc0 != "/rd/0" || loc1 != "/rd/1" {
			t.Errorf("locations %s then %s, want /rd/0 then /rd/1", loc0, loc1)
		}
		if reg, err := r.srv.WaitRegistered(ctx, "dev-1", 1); err != nil || reg.Location != loc1 {
			t.Errorf("WaitRegistered after 1: %+v, %v", reg, err)
		}
		if _, open := <-o.Notifications; open {
			t.Error("the old registration's observation is still open")
		}
		if err := d.notify(ctx, "/5/0/3", "1", true); !errors.Is(err, peer.ErrReset) {
			t.Errorf("a notification of the old observation: %v, want %v", err, peer.ErrReset)
		}
		if got := codeOf(d.rd(ctx, coap.POST, loc0, "")); got != notFound {
			t.Errorf("Update of the old location: %s, want %s", got, notFound)
		}
		if got := codeOf(d.rd(ctx, coap.POST, loc1, "")); got != changed {
			t.Errorf("Update of the new location: %s, want %s", got, changed)
		}
	})
}

// A NoSec client that comes back from a new port is found again by its
// Update (or Register): requests go to the new address.
func TestClientMoves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := simnetRig(t, nil)
		ctx := t.Context()
		a := r.dial(t)
		_, loc := a.register(ctx, "dev-1", "1.1")
		b := r.dial(t) // the same device, after a reconnect
		b.values["/3/0/0"] = "moved"
		if got := codeOf(b.rd(ctx, coap.POST, loc, "")); got != changed {
			t.Fatalf("Update from the new port: %s", got)
		}
		reg, _ := r.srv.Registration("dev-1")
		if reg.Addr.String() != b.local || a.local == b.local {
			t.Errorf("Addr %s, want the new %s (old %s)", reg.Addr, b.local, a.local)
		}
		m, err := r.srv.Read(ctx, "dev-1", "/3/0/0")
		if err != nil || string(m.Payload) != "moved" {
			t.Errorf("Read after the move: %s %q, want the new socket's answer", codeOf(m, err), payload(m))
		}
		// Both addresses' traffic is the endpoint's.
		st, ep := r.srv.Stats(), r.srv.EndpointStats("dev-1")
		if ep.DatagramsIn != st.DatagramsIn || ep.BytesOut != st.BytesOut {
			t.Errorf("EndpointStats %+v, want all of %+v", ep, st)
		}
	})
}

// A notification that overtakes the first response of its Observe is
// kept for the observation, not reset.
func TestNotificationOvertakes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := simnetRig(t, nil)
		ctx := t.Context()
		d := r.dial(t)
		d.register(ctx, "dev-1", "1.1")
		// Between the first response and the observation's start, a
		// notification arrives and the server has taken it.
		defer lwm2mtest.SetTestHookObserved(func() {
			if err := d.notify(ctx, "/5/0/3", "early", true); err != nil {
				t.Errorf("the early notification: %v", err)
			}
		})()
		o, err := r.srv.Observe(ctx, "dev-1", "/5/0/3")
		if err != nil {
			t.Fatal(err)
		}
		if n := next(t, o); string(n.Payload) != "early" {
			t.Errorf("notification %q, want the early one", n.Payload)
		}
		if got := d.resetTokens(); len(got) != 0 {
			t.Errorf("resets %x, want none", got)
		}
	})
}

// A notification with an error code (or without Observe) ends the
// observation (RFC 7641 3.2): delivered, then the channel closes.
func TestObservationEndedByClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := simnetRig(t, nil)
		ctx := t.Context()
		d := r.dial(t)
		d.register(ctx, "dev-1", "1.1")
		o, err := r.srv.Observe(ctx, "dev-1", "/5/0/3")
		if err != nil {
			t.Fatal(err)
		}
		gone := &coap.Message{Code: coap.NotFound, Token: o.Token()}
		if err := d.p.Notify(ctx, gone, true); err != nil {
			t.Fatal(err)
		}
		if n := next(t, o); n.Code != coap.NotFound {
			t.Errorf("got %s, want the 4.04", coap.CodeString(n.Code))
		}
		if _, open := <-o.Notifications; open {
			t.Error("still open")
		}
		if err := d.notify(ctx, "/5/0/3", "1", true); !errors.Is(err, peer.ErrReset) {
			t.Errorf("a later notification: %v, want a Reset", err)
		}
		// An observation the client refuses never starts.
		o, err = r.srv.Observe(ctx, "dev-1", "/9/9/9")
		if err != nil || o.First.Code != coap.NotFound {
			t.Fatalf("Observe of a missing resource: %v, %v", o, err)
		}
		if _, open := <-o.Notifications; open {
			t.Error("a refused observation's channel is open")
		}
	})
}

// A test that does not read never holds up the Server: a full channel
// drops (and counts), and the client's notifications are still ACKed.
func TestNotificationsDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := simnetRig(t, &lwm2mtest.Options{NotifyBuffer: 1})
		ctx := t.Context()
		d := r.dial(t)
		d.register(ctx, "dev-1", "1.1")
		o, err := r.srv.Observe(ctx, "dev-1", "/5/0/3")
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if err := d.notify(ctx, "/5/0/3", fmt.Sprint(i), true); err != nil {
				t.Fatalf("notification %d: %v", i, err)
			}
		}
		if o.Count() != 3 || o.Dropped() != 2 {
			t.Errorf("Count %d Dropped %d, want 3 and 2", o.Count(), o.Dropped())
		}
		if n := next(t, o); string(n.Payload) != "0" {
			t.Errorf("kept %q, want the first", n.Payload)
		}
	})
}

// A duplicated non-confirmable notification (the network copied it) is
// delivered once.
func TestDuplicateNotification(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := simnetRig(t, nil)
		ctx := t.Context()
		d := r.dial(t)
		d.register(ctx, "dev-1", "1.1")
		o, err := r.srv.Observe(ctx, "dev-1", "/5/0/3")
		if err != nil {
			t.Fatal(err)
		}
		d.mu.Lock()
		m := d.notification(o.Token(), "1")
		d.mu.Unlock()
		m.Type, m.MessageID = coap.NonConfirmable, 4242
		wire, _ := coap.AppendUDP(nil, m)
		for range 2 {
			if err := d.conn.Send(wire); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		if o.Count() != 1 || len(o.Notifications) != 1 {
			t.Errorf("Count %d, %d queued, want 1", o.Count(), len(o.Notifications))
		}
	})
}

// With Expire, a registration whose lifetime passed is gone: its Update
// is 4.04 and the client must register again.
func TestExpire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := simnetRig(t, &lwm2mtest.Options{Expire: true})
		ctx := t.Context()
		d := r.dial(t)
		_, loc := d.register(ctx, "dev-1", "1.1") // lt=60
		time.Sleep(50 * time.Second)
		if got := codeOf(d.rd(ctx, coap.POST, loc, "")); got != changed {
			t.Fatalf("Update within the lifetime: %s", got)
		}
		time.Sleep(59 * time.Second) // 60 s after the Update
		if _, ok := r.srv.Registration("dev-1"); !ok {
			t.Fatal("expired early")
		}
		time.Sleep(2 * time.Second)
		if err := r.srv.WaitDeregistered(ctx, "dev-1"); err != nil {
			t.Fatal(err)
		}
		if got := codeOf(d.rd(ctx, coap.POST, loc, "")); got != notFound {
			t.Errorf("Update after the lifetime: %s, want %s", got, notFound)
		}
	})
}

// Junk never stops the Server: a confirmable message it cannot parse is
// reset, responses nobody asked for are reset, and registration still works.
func TestJunk(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := simnetRig(t, nil)
		ctx := t.Context()
		d := r.dial(t)
		for _, b := range [][]byte{
			{}, {0xff}, {0x40, 0x01}, {0x40, 0x01, 0x12, 0x34, 0xff, 0xff}, // CON, cut short
			bytes.Repeat([]byte{0x5a}, 1500),
			{0x48, 0x45, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8}, // CON 2.05, token nobody knows
			{0x58, 0x45, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8}, // NON 2.05, the same
			{0x60, 0, 0, 3}, {0x70, 0, 0, 4}, // ACK, RST of nothing
		} {
			if err := d.conn.Send(b); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		if resp, _ := d.register(ctx, "dev-1", "1.1"); coap.CodeString(resp.Code) != created {
			t.Fatalf("Register after junk: %s", coap.CodeString(resp.Code))
		}
		if m, err := r.srv.Read(ctx, "dev-1", "/3/0/0"); err != nil || string(m.Payload) != "tether" {
			t.Errorf("Read after junk: %s", codeOf(m, err))
		}
	})
}

// Close ends what is in flight and every wait, and leaves no goroutine.
func TestClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := simnetRig(t, nil)
		ctx := t.Context()
		d := r.dial(t)
		d.register(ctx, "dev-1", "1.1")
		o, err := r.srv.Observe(ctx, "dev-1", "/5/0/3")
		if err != nil {
			t.Fatal(err)
		}
		d.p.Close() // the device answers nothing from now on
		readErr := make(chan error, 1)
		go func() { _, err := r.srv.Read(ctx, "dev-1", "/3/0/0"); readErr <- err }()
		waitErr := make(chan error, 1)
		go func() { _, err := r.srv.WaitRegistered(ctx, "dev-1", 1); waitErr <- err }()
		time.Sleep(time.Second)
		if err := r.srv.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-readErr; !errors.Is(err, peer.ErrClosed) {
			t.Errorf("Read in flight: %v, want peer.ErrClosed", err)
		}
		if err := <-waitErr; !errors.Is(err, lwm2mtest.ErrClosed) {
			t.Errorf("WaitRegistered: %v, want ErrClosed", err)
		}
		if _, open := <-o.Notifications; open {
			t.Error("an observation is open after Close")
		}
		if _, err := r.srv.Read(ctx, "dev-1", "/3/0/0"); !errors.Is(err, lwm2mtest.ErrClosed) {
			t.Errorf("Read after Close: %v", err)
		}
		if err := r.srv.Close(); err != nil {
			t.Errorf("a second Close: %v", err)
		}
	})
}

// WaitRegistered gives up with its context.
func TestWaitTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := simnetRig(t, nil)
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		if _, err := r.srv.WaitRegistered(ctx, "nobody", 0); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("WaitRegistered: %v, want the deadline", err)
		}
	})
}

// Peers are bounded: with no room, a new address is dropped while a
// registered client holds its peer; an unregistered peer idle for five
// minutes makes room.
func TestMaxClients(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := simnetRig(t, &lwm2mtest.Options{MaxClients: 1})
		ctx := t.Context()
		a := r.dial(t)
		_, loc := a.register(ctx, "a", "1.1")
		b := r.dial(t)
		bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := b.rd(bctx, coap.POST, "/rd", objectLinks, "ep=b")
		cancel()
		if err == nil {
			t.Fatal("a second client was served with room for one")
		}
		if got := codeOf(a.rd(ctx, coap.DELETE, loc, "")); got != deleted {
			t.Fatal(got)
		}
		time.Sleep(6 * time.Minute)
		if resp, _ := b.register(ctx, "b", "1.1"); coap.CodeString(resp.Code) != created {
			t.Errorf("after eviction: %s", coap.CodeString(resp.Code))
		}
	})
}

// Ten thousand registered plain-UDP clients (a thousand under the race
// detector): no goroutine per client, and what each costs in memory.
func TestManyClients(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 registrations")
	}
	synctest.Test(t, func(t *testing.T) {
		clients := 10000
		if raceEnabled {
			clients = 1000 // the same checks, ten times fewer
		}
		n := simnet.New(1)
		sh := n.AddHost("server", "10.0.0.1")
		pc, err := sh.ListenPacket("udp", ":5683")
		if err != nil {
			t.Fatal(err)
		}
		srv, err := lwm2mtest.NewServer(pc, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		// Each client is a bare socket: a Register datagram out, its
		// answer in. 10,000 ports on one host, 500 at a time (the
		// simulated socket buffer is bounded).
		dh := n.AddHost("devices", "10.0.1.1")
		to := &net.UDPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 5683}
		conns := make([]net.PacketConn, clients)
		for i := range conns {
			if conns[i], err = dh.ListenPacket("udp", ":0"); err != nil {
				t.Fatal(err)
			}
		}
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		goroutines := runtime.NumGoroutine()
		for i, c := range conns {
			m := &coap.Message{Type: coap.Confirmable, Code: coap.POST, MessageID: int32(i), Token: []byte{byte(i >> 8), byte(i)},
				Payload: []byte(objectLinks), Options: coap.Options{
					{ID: coap.URIPath, Value: []byte("rd")}, {ID: coap.ContentFormat, Value: []byte{40}},
					{ID: coap.URIQuery, Value: fmt.Appendf(nil, "ep=dev-%d", i)}, {ID: coap.URIQuery, Value: []byte("lt=86400")}}}
			wire, _ := coap.AppendUDP(nil, m)
			if _, err := c.WriteTo(wire, to); err != nil {
				t.Fatal(err)
			}
			if i%500 == 499 {
				synctest.Wait()
			}
		}
		synctest.Wait()
		if st := srv.Stats(); st.Registers != clients {
			t.Fatalf("%d registered, want %d", st.Registers, clients)
		}
		if g := runtime.NumGoroutine() - goroutines; g > 10 {
			t.Errorf("%d more goroutines for %d clients", g, clients)
		}
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		each := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / int64(clients)
		t.Logf("%d clients: %d bytes of heap each (the server's, and an answer queued in each simulated socket)", clients, each)
		if each > 16<<10 {
			t.Errorf("%d bytes a client, want a few KiB", each)
		}
		// Every one answered 2.01.
		buf := make([]byte, 256)
		var m coap.Message
		for i, c := range conns {
			c.SetReadDeadline(time.Now().Add(time.Second))
			n, _, err := c.ReadFrom(buf)
			if err != nil || coap.DecodeUDP(buf[:n], &m) != nil || coap.CodeString(m.Code) != created {
				t.Fatalf("client %d: %v %s", i, err, coap.CodeString(m.Code))
			}
			c.Close()
		}
		if _, ok := srv.Registration(fmt.Sprintf("dev-%d", clients-1)); !ok {
			t.Error("the last client is not registered")
		}
	})
}

// A DTLS session restored with a Connection ID from a new address is no
// new handshake, and the registration follows the client; a new socket
// (a full handshake) is one more.
func TestDTLSSessionRestored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := pskConfig()
		cfg.ConnectionIDs = true
		r := simnetRig(t, &lwm2mtest.Options{DTLS: cfg})
		ctx := t.Context()
		d := r.dial(t)
		_, loc := d.register(ctx, "dev-1", "1.1")

		s := d.conn.(*dtlssock.Socket)
		if err := s.Shutdown(); err != nil { // offline: nothing sent
			t.Fatal(err)
		}
		d.reader.Wait()
		r.host.SetAddrs("10.0.0.77") // back with a new address
		if err := s.Connect(ctx, "10.0.0.1", "5683"); err != nil {
			t.Fatal(err)
		}
		if !s.StateRestored() {
			t.Fatal("the session was not restored: the test needs a Connection ID")
		}
		d.startReader()
		if got := codeOf(d.rd(ctx, coap.POST, loc, "")); got != changed {
			t.Fatalf("Update after the restore: %s", got)
		}
		reg, _ := r.srv.Registration("dev-1")
		if host, _, _ := net.SplitHostPort(reg.Addr.String()); host != "10.0.0.77" {
			t.Errorf("Addr %s, want the new address", reg.Addr)
		}
		if m, err := r.srv.Read(ctx, "dev-1", "/3/0/0"); err != nil || string(m.Payload) != "tether" {
			t.Errorf("Read after the restore: %s", codeOf(m, err))
		}
		if st, ep := r.srv.Stats(), r.srv.EndpointStats("dev-1"); st.Handshakes != 1 || ep.Handshakes != 1 {
			t.Errorf("Handshakes %d (endpoint %d), want 1", st.Handshakes, ep.Handshakes)
		}

		// A new socket: a full handshake and a new Register.
		d2 := r.dial(t)
		d2.register(ctx, "dev-1", "1.1")
		if st, ep := r.srv.Stats(), r.srv.EndpointStats("dev-1"); st.Handshakes != 2 || ep.Handshakes != 2 {
			t.Errorf("Handshakes %d (endpoint %d), want 2", st.Handshakes, ep.Handshakes)
		}
		// De-register and Register again over the same connection: no
		// new handshake.
		_, loc = d2.register(ctx, "dev-1", "1.1")
		if got := codeOf(d2.rd(ctx, coap.DELETE, loc, "")); got != deleted {
			t.Fatal(got)
		}
		d2.register(ctx, "dev-1", "1.1")
		if ep := r.srv.EndpointStats("dev-1"); ep.Handshakes != 2 || ep.Registers != 4 {
			t.Errorf("EndpointStats %+v, want 2 handshakes and 4 Registers", ep)
		}
	})
}

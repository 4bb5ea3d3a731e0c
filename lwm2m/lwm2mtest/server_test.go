package lwm2mtest_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/peer"
	"github.com/tether-iot/tether/lwm2m/content"
	"github.com/tether-iot/tether/lwm2m/lwm2mtest"
	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/dtlssock"
	"github.com/tether-iot/tether/sock/netsock"
	"github.com/tether-iot/tether/sock/simnet"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Response codes the registration interface answers.
const (
	created            = "2.01 Created"
	deleted            = "2.02 Deleted"
	changed            = "2.04 Changed"
	content205         = "2.05 Content"
	notFound           = "4.04 Not Found"
	badRequest         = "4.00 Bad Request"
	preconditionFailed = "4.12 Precondition Failed"
)

var psk = []byte("tether test key!")

func pskConfig() *dtlssock.Config {
	return &dtlssock.Config{
		PSK:          func([]byte) ([]byte, error) { return psk, nil },
		PSKIdentity:  []byte("dev-1"),
		CipherSuites: []dtlssock.CipherSuite{dtlssock.TLS_PSK_WITH_AES_128_CCM_8},
	}
}

// rig is a Server and a way to connect fake devices to it.
type rig struct {
	srv    *lwm2mtest.Server
	dial   func(t *testing.T) *device
	host   *simnet.Host // the devices' host, on a simulated network
	stream bool         // TCP or TLS: no message types, no Resets, no datagrams
}

// simnetRig serves on a simulated network (inside a synctest bubble); each
// device is a new socket, on a new port, of one device host.
func simnetRig(t *testing.T, opts *lwm2mtest.Options) rig {
	n := simnet.New(1)
	sh := n.AddHost("server", "10.0.0.1")
	dh := n.AddHost("device", "10.0.0.2")
	pc, err := sh.ListenPacket("udp", ":5683")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := lwm2mtest.NewServer(pc, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	dial := func(t *testing.T) *device {
		t.Helper()
		raw, err := dh.NewSocket("udp", nil)
		if err != nil {
			t.Fatal(err)
		}
		var s sock.Socket = raw
		if opts != nil && opts.DTLS != nil {
			s = dtlssock.New(raw, pskConfig())
		}
		s.SetReceiveTimeout(-1)
		if err := s.Connect(t.Context(), "10.0.0.1", "5683"); err != nil {
			t.Fatal(err)
		}
		host, _ := sock.AssociationOf(s).LocalHost()
		port, _ := sock.AssociationOf(s).LocalPort()
		return newDevice(t, s, net.JoinHostPort(host, port))
	}
	return rig{srv: srv, dial: dial, host: dh}
}

// loopbackRig serves on a real UDP socket on 127.0.0.1.
func loopbackRig(t *testing.T, opts *lwm2mtest.Options) rig {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := lwm2mtest.NewServer(pc, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	dial := func(t *testing.T) *device {
		t.Helper()
		c, err := net.DialUDP("udp4", nil, srv.Addr().(*net.UDPAddr))
		if err != nil {
			t.Fatal(err)
		}
		return newDevice(t, udpConn{c}, c.LocalAddr().String())
	}
	return rig{srv: srv, dial: dial}
}

// exercise runs a device's life against the server: register, update,
// device management, observe with a non-confirmable and a confirmable
// notification, cancel (then a notification is reset, or over TCP
// dropped), de-register. secure is DTLS or TLS: a handshake is counted.
func exercise(t *testing.T, r rig, secure bool) {
	ctx := t.Context()
	srv := r.srv
	d := r.dial(t)

	// Register.
	resp, loc := d.register(ctx, "dev-1", "1.1", "b=U", "Q")
	if got := coap.CodeString(resp.Code); got != created || loc != "/rd/0" {
		t.Fatalf("Register: %s Location-Path %q, want %s /rd/0", got, loc, created)
	}
	reg, err := srv.WaitRegistered(ctx, "dev-1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if reg.Endpoint != "dev-1" || reg.Location != "/rd/0" || reg.Lifetime != time.Minute ||
		reg.Binding != "U" || !reg.Queue || reg.Version != "1.1" || reg.Addr.String() != d.local ||
		reg.Registered.IsZero() || !reg.Updated.IsZero() {
		t.Errorf("registration %+v, want dev-1 at /rd/0, 60 s, U, queue, 1.1, from %s", reg, d.local)
	}
	if got := content.AppendLinks(nil, reg.Links); string(got) != objectLinks || len(reg.Links) != 4 {
		t.Errorf("links %q (%d), want %q", got, len(reg.Links), objectLinks)
	}
	if l, ok := reg.Link("/5/0"); !ok || l.Params[0] != (content.LinkParam{Name: "ver", Value: "1.1"}) {
		t.Errorf("Link(/5/0) = %+v, %v", l, ok)
	}

	// Update: a new lifetime; an unknown location is 4.04.
	if got := codeOf(d.rd(ctx, coap.POST, loc, "", "lt=120")); got != changed {
		t.Fatalf("Update: %s, want %s", got, changed)
	}
	if reg, err = srv.WaitUpdated(ctx, "dev-1", 0); err != nil {
		t.Fatal(err)
	}
	if reg.Lifetime != 2*time.Minute || reg.Updated.IsZero() || !reg.Queue {
		t.Errorf("after Update: %+v, want 120 s and still queue mode", reg)
	}
	if got := codeOf(d.rd(ctx, coap.POST, "/rd/99", "")); got != notFound {
		t.Errorf("Update of /rd/99: %s, want %s", got, notFound)
	}

	// Device management.
	m, err := srv.Read(ctx, "dev-1", "/3/0/0", content.Text)
	if err != nil || coap.CodeString(m.Code) != content205 || string(m.Payload) != "tether" {
		t.Errorf("Read /3/0/0: %s %q, want %s \"tether\"", codeOf(m, err), payload(m), content205)
	}
	if q := d.last(); q.code != coap.GET || q.path != "/3/0/0" || q.accept != 0 || q.observe != -1 {
		t.Errorf("the device saw %+v", q)
	}
	if m, err = srv.Discover(ctx, "dev-1", "/3/0"); err != nil || string(m.Payload) != "</3/0>" || d.last().accept != int(content.LinkFormat) {
		t.Errorf("Discover: %s %q, accept %d", codeOf(m, err), payload(m), d.last().accept)
	}
	if m, err = srv.Write(ctx, "dev-1", "/3/0/1", content.Text, []byte("model-2")); err != nil || coap.CodeString(m.Code) != changed {
		t.Errorf("Write: %s", codeOf(m, err))
	}
	if q := d.last(); q.code != coap.PUT || q.cf != 0 || string(q.payload) != "model-2" {
		t.Errorf("the device saw %+v", q)
	}
	if m, err = srv.Read(ctx, "dev-1", "/3/0/1"); err != nil || string(m.Payload) != "model-2" || d.last().accept != -1 {
		t.Errorf("Read after Write: %s %q", codeOf(m, err), payload(m))
	}
	if m, err = srv.WritePartial(ctx, "dev-1", "/3/0", content.TLV, []byte{0xc1, 1, 'x'}); err != nil || d.last().code != coap.POST || d.last().cf != int(content.TLV) {
		t.Errorf("WritePartial: %s, the device saw %+v", codeOf(m, err), d.last())
	}
	if m, err = srv.Execute(ctx, "dev-1", "/3/0/4", []byte("0='now'")); err != nil || d.last().code != coap.POST || string(d.last().payload) != "0='now'" || d.last().cf != -1 {
		t.Errorf("Execute: %s, the device saw %+v", codeOf(m, err), d.last())
	}
	if m, err = srv.WriteAttributes(ctx, "dev-1", "/3/0/0", "pmin=1", "pmax=5"); err != nil || !slices.Equal(d.last().query, []string{"pmin=1", "pmax=5"}) || len(d.last().payload) != 0 {
		t.Errorf("WriteAttributes: %s, the device saw %+v", codeOf(m, err), d.last())
	}
	if m, err = srv.Read(ctx, "dev-1", "/4/0/0"); err != nil || coap.CodeString(m.Code) != notFound {
		t.Errorf("Read of a missing object: %s", codeOf(m, err))
	}
	tlv := []byte{0xc8, 0x00, 0x04, 'h', 'o', 't', '!'} // resource 0, "hot!"
	if m, err = srv.Create(ctx, "dev-1", "/3303", content.TLV, tlv); err != nil || m.Code != coap.Created || lwm2mtest.Location(m) != "/3303/1" {
		t.Errorf("Create: %s at %q, want 2.01 at /3303/1", codeOf(m, err), lwm2mtest.Location(m))
	}
	if q := d.last(); q.code != coap.POST || q.path != "/3303" || q.cf != int(content.TLV) || !bytes.Equal(q.payload, tlv) {
		t.Errorf("Create: the device saw %+v", q)
	}
	if m, err = srv.Delete(ctx, "dev-1", "/3303/1"); err != nil || m.Code != coap.Deleted || d.last().code != coap.DELETE || d.last().path != "/3303/1" {
		t.Errorf("Delete: %s, the device saw %+v", codeOf(m, err), d.last())
	}
	if m, err = srv.Delete(ctx, "dev-1", "/3303/1"); err != nil || m.Code != coap.NotFound {
		t.Errorf("Delete of a deleted instance: %s", codeOf(m, err))
	}

	// Observe, a non-confirmable and a confirmable notification.
	o, err := srv.Observe(ctx, "dev-1", "/5/0/3")
	if err != nil {
		t.Fatal(err)
	}
	if obs, ok := coap.Uint(o.First.Options, coap.Observe); !ok || string(o.First.Payload) != "0" {
		t.Fatalf("Observe: first response %s %q, Observe %d %v", coap.CodeString(o.First.Code), o.First.Payload, obs, ok)
	}
	if d.last().observe != 0 {
		t.Errorf("the device saw Observe %d, want 0", d.last().observe)
	}
	if err := d.notify(ctx, "/5/0/3", "1", false); err != nil {
		t.Fatal(err)
	}
	// Over TCP a message has no type: -1, as coap.DecodeTCP leaves it.
	typ := func(t coap.Type) coap.Type {
		if r.stream {
			return -1
		}
		return t
	}
	if n := next(t, o); string(n.Payload) != "1" || n.Type != typ(coap.NonConfirmable) {
		t.Errorf("first notification %q (type %v)", n.Payload, n.Type)
	}
	if err := d.notify(ctx, "/5/0/3", "2", true); err != nil {
		t.Fatalf("a confirmable notification: %v, want it acknowledged", err)
	}
	if n := next(t, o); string(n.Payload) != "2" || n.Type != typ(coap.Confirmable) {
		t.Errorf("second notification %q (type %v)", n.Payload, n.Type)
	}
	if o.Count() != 2 {
		t.Errorf("Count = %d, want 2", o.Count())
	}

	// Cancel: GET Observe=1 with the same token; then notifications are
	// reset, confirmable or not.
	if err := srv.Cancel(ctx, o); err != nil {
		t.Fatal(err)
	}
	if q := d.last(); q.observe != 1 || !bytes.Equal(q.token, o.Token()) || q.path != "/5/0/3" {
		t.Errorf("Cancel: the device saw %+v, want GET /5/0/3 Observe 1 with token %x", q, o.Token())
	}
	if _, open := <-o.Notifications; open {
		t.Error("Notifications still open after Cancel")
	}
	if r.stream {
		// No Reset over TCP (RFC 8323): the server drops them.
		for _, v := range []string{"3", "4"} {
			if err := d.notify(ctx, "/5/0/3", v, v == "3"); err != nil {
				t.Fatal(err)
			}
		}
		if err := d.p.(*peer.Stream).Ping(ctx); err != nil { // the server read them: the stream is in order
			t.Fatal(err)
		}
		if o.Count() != 2 {
			t.Errorf("Count = %d after Cancel, want 2", o.Count())
		}
	} else {
		if err := d.notify(ctx, "/5/0/3", "3", true); !errors.Is(err, peer.ErrReset) {
			t.Errorf("a confirmable notification after Cancel: %v, want %v", err, peer.ErrReset)
		}
		if err := d.notify(ctx, "/5/0/3", "4", false); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the Reset of a non-confirmable notification", func() bool {
			rs := d.resetTokens()
			return len(rs) == 1 && bytes.Equal(rs[0], o.Token())
		})
	}

	// De-register.
	if got := codeOf(d.rd(ctx, coap.DELETE, loc, "")); got != deleted {
		t.Fatalf("De-register: %s, want %s", got, deleted)
	}
	if err := srv.WaitDeregistered(ctx, "dev-1"); err != nil {
		t.Fatal(err)
	}
	if _, ok := srv.Registration("dev-1"); ok {
		t.Error("still registered after De-register")
	}
	if _, err := srv.Read(ctx, "dev-1", "/3/0/0"); !errors.Is(err, lwm2mtest.ErrNotRegistered) {
		t.Errorf("Read after De-register: %v, want ErrNotRegistered", err)
	}
	if got := codeOf(d.rd(ctx, coap.DELETE, loc, "")); got != notFound {
		t.Errorf("a second De-register: %s, want %s", got, notFound)
	}

	st, ep := srv.Stats(), srv.EndpointStats("dev-1")
	want := lwm2mtest.Stats{Registers: 1, Updates: 1, Deregisters: 1, Rejected: 2, Notifications: 2}
	if secure {
		want.Handshakes = 1
	}
	if got := (lwm2mtest.Stats{Registers: st.Registers, Updates: st.Updates, Deregisters: st.Deregisters,
		Rejected: st.Rejected, Notifications: st.Notifications, Handshakes: st.Handshakes}); got != want {
		t.Errorf("Stats %+v, want %+v", st, want)
	}
	want.Rejected = 0 // the two 4.04s named no endpoint
	if got := (lwm2mtest.Stats{Registers: ep.Registers, Updates: ep.Updates, Deregisters: ep.Deregisters,
		Rejected: ep.Rejected, Notifications: ep.Notifications, Handshakes: ep.Handshakes}); got != want {
		t.Errorf("EndpointStats %+v, want %+v", ep, want)
	}
	// In: 5 registration requests, 13 answers to the server's requests,
	// 4 notifications. Out: 5 answers, 13 requests, an ACK of the
	// confirmable notification and 2 Resets. DTLS adds its handshake.
	switch {
	case r.stream:
		// Frames in: a CSM, 5 registration requests, 13 answers, 4
		// notifications, a Ping; out: a CSM, 5 answers, 13 requests,
		// a Pong, each at least 2 bytes.
		if st.DatagramsIn != 0 || st.DatagramsOut != 0 || st.BytesIn < 2*24 || st.BytesOut < 2*20 {
			t.Errorf("%d datagrams in and %d out, %d bytes in and %d out: want no datagrams, and bytes for 24 frames in and 20 out",
				st.DatagramsIn, st.DatagramsOut, st.BytesIn, st.BytesOut)
		}
	default:
		if plain := st.DatagramsIn == 22 && st.DatagramsOut == 21; plain == secure || st.DatagramsIn < 22 || st.DatagramsOut < 21 {
			t.Errorf("%d datagrams in and %d out, want 22 and 21 (more over DTLS)", st.DatagramsIn, st.DatagramsOut)
		}
		if st.BytesIn < 4*int64(st.DatagramsIn) || st.BytesOut < 4*int64(st.DatagramsOut) {
			t.Errorf("%d bytes in and %d out: fewer than the datagrams' headers", st.BytesIn, st.BytesOut)
		}
	}
	if ep.DatagramsIn != st.DatagramsIn || ep.DatagramsOut != st.DatagramsOut || ep.BytesIn != st.BytesIn || ep.BytesOut != st.BytesOut {
		t.Errorf("the only endpoint's traffic %+v differs from the server's %+v", ep, st)
	}
	t.Logf("stats: %+v", st)

	// The record: every exchange, in order; the Resets of the last two
	// notifications are not exchanges of an observation.
	var got []string
	for _, r := range srv.Records("") {
		got = append(got, r.String())
	}
	wantRecs := []string{
		"dev-1 register /rd?ep=dev-1&lt=60&lwm2m=1.1&b=U&Q: " + created,
		"dev-1 update /rd/0?lt=120: " + changed,
		"update /rd/99: " + notFound,
		"dev-1 read /3/0/0: " + content205,
		"dev-1 discover /3/0: " + content205,
		"dev-1 write /3/0/1: " + changed,
		"dev-1 read /3/0/1: " + content205,
		"dev-1 write-partial /3/0: " + changed,
		"dev-1 execute /3/0/4: " + changed,
		"dev-1 write-attributes /3/0/0?pmin=1&pmax=5: " + changed,
		"dev-1 read /4/0/0: " + notFound,
		"dev-1 create /3303: " + created,
		"dev-1 delete /3303/1: " + deleted,
		"dev-1 delete /3303/1: " + notFound,
		"dev-1 observe /5/0/3: " + content205,
		"dev-1 notify /5/0/3: " + content205,
		"dev-1 notify /5/0/3: " + content205,
		"dev-1 cancel /5/0/3",
		"dev-1 deregister /rd/0: " + deleted,
		"deregister /rd/0: " + notFound,
	}
	if !slices.Equal(got, wantRecs) {
		t.Errorf("Records:\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(wantRecs, "\n\t"))
	}
	recs := srv.Records("dev-1")
	if len(recs) != len(wantRecs)-2 || string(recs[0].Payload) != objectLinks || string(recs[2].Payload) != "tether" ||
		string(recs[14].Payload) != "1" || string(recs[15].Payload) != "2" {
		t.Errorf("Records(dev-1): %d records, payloads %q %q %q %q", len(recs), payload0(recs, 0), payload0(recs, 2), payload0(recs, 14), payload0(recs, 15))
	}
	for i := 1; i < len(recs); i++ {
		if recs[i].Time.Before(recs[i-1].Time) {
			t.Errorf("record %d (%v) is older than the one before it", i, recs[i])
		}
	}
}

func payload0(recs []lwm2mtest.Record, i int) []byte {
	if i < len(recs) {
		return recs[i].Payload
	}
	return nil
}

func payload(m *coap.Message) []byte {
	if m == nil {
		return nil
	}
	return m.Payload
}

// next returns the observation's next notification, failing after 10 s.
func next(t *testing.T, o *lwm2mtest.Observation) *coap.Message {
	t.Helper()
	select {
	case n, ok := <-o.Notifications:
		if !ok {
			t.Fatal("Notifications closed")
		}
		return n
	case <-time.After(10 * time.Second):
		t.Fatal("no notification")
	}
	return nil
}

// waitFor polls cond for up to 10 s (bubble time under synctest).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 1000 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestSimnet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		exercise(t, simnetRig(t, nil), false)
	})
}

func TestLoopback(t *testing.T) {
	exercise(t, loopbackRig(t, nil), false)
}

func TestDTLS(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := pskConfig()
		cfg.ConnectionIDs = true
		exercise(t, simnetRig(t, &lwm2mtest.Options{DTLS: cfg}), true)
	})
}

func TestDTLSLoopback(t *testing.T) {
	exercise(t, loopbackDTLSRig(t), true)
}

// loopbackDTLSRig is loopbackRig with DTLS: devices are dtlssock sockets
// over netsock.Socket.
func loopbackDTLSRig(t *testing.T) rig {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := lwm2mtest.NewServer(pc, &lwm2mtest.Options{DTLS: pskConfig()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	port := itoa(srv.Addr().(*net.UDPAddr).Port)
	dial := func(t *testing.T) *device {
		t.Helper()
		raw, err := netsock.New("udp4", nil)
		if err != nil {
			t.Fatal(err)
		}
		s := dtlssock.New(raw, pskConfig())
		s.SetReceiveTimeout(-1)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		if err := s.Connect(ctx, "127.0.0.1", port); err != nil {
			t.Fatal(err)
		}
		host, _ := sock.AssociationOf(s).LocalHost()
		lport, _ := sock.AssociationOf(s).LocalPort()
		return newDevice(t, s, net.JoinHostPort(host, lport))
	}
	return rig{srv: srv, dial: dial}
}

func itoa(i int) string { return strconv.Itoa(i) }

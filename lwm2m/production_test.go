package lwm2m_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/internal/testpki"
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/lwm2m"
	"github.com/tether-iot/tether/lwm2m/content"
	"github.com/tether-iot/tether/lwm2m/lwm2mtest"
	"github.com/tether-iot/tether/sock/dtlssock"
)

// TestFirmwareVersionAfterUpdate: the product's Device object reports the
// version it runs now (Device.FirmwareVersionFunc); after a successful
// update the server's observation of /3/0/3 hears the new one, and a Read
// shows it.
func TestFirmwareVersionAfterUpdate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		image := testrig.Bytes(10_000, 11)
		w := newWorld(t, false, image)
		var running atomic.Value
		running.Store("1.0")
		cfg := w.config("dev-v", t.TempDir(), nil)
		cfg.Device.FirmwareVersion = ""
		cfg.Device.FirmwareVersionFunc = func() string { return running.Load().(string) }
		cfg.Firmware.Install = func(context.Context, string) error { running.Store("2.0"); return nil }
		start(t, cfg)
		ctx := context.Background()
		if _, err := w.srv.WaitRegistered(ctx, "dev-v", 0); err != nil {
			t.Fatal(err)
		}
		if got := readText(ctx, w, "dev-v", "/3/0/3"); got != "1.0" {
			t.Fatalf("/3/0/3 %q before the update, want 1.0", got)
		}
		ov, err := w.srv.Observe(ctx, "dev-v", "/3/0/3")
		if err != nil {
			t.Fatal(err)
		}
		o, err := w.srv.Observe(ctx, "dev-v", "/5/0/3")
		if err != nil {
			t.Fatal(err)
		}
		want(t, coap.Changed)(w.srv.Write(ctx, "dev-v", "/5/0/1", content.Text, []byte("coap://10.0.0.1:5690/fw.bin")))
		waitState(t, o, "1", "2")
		want(t, coap.Changed)(w.srv.Execute(ctx, "dev-v", "/5/0/2", nil))
		waitState(t, o, "3", "0")
		waitState(t, ov, "2.0")
		if got := readText(ctx, w, "dev-v", "/3/0/3"); got != "2.0" {
			t.Errorf("/3/0/3 %q after the update, want 2.0", got)
		}
	})
}

// TestCertificateSecuredServer: an LwM2M server secured by an X.509
// certificate (Security Mode 2): the client trusts its CA through
// Config.DTLS, registers, and is served; a client that trusts another CA
// never registers, and says why.
func TestCertificateSecuredServer(t *testing.T) {
	pki := testpki.Get()
	for _, tc := range []struct {
		name    string
		trusted bool
	}{{"trusted", true}, {"a stranger's CA", false}} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorldWith(t, true, nil, &dtlssock.Config{Certificates: []tls.Certificate{pki.Server}})
				cfg := w.config("dev-x", t.TempDir(), nil)
				cfg.PSK, cfg.PSKIdentity = nil, nil
				pool := pki.Pool
				if !tc.trusted {
					pool = x509.NewCertPool()
					pool.AppendCertsFromPEM(pki.StrangerPEM)
				}
				cfg.DTLS = &dtlssock.Config{RootCAs: pool}
				var authFailed atomic.Bool
				cfg.OnEvent = func(ev lwm2m.Event) {
					if ev.Kind == "error" && strings.Contains(ev.Detail, "certificate") {
						authFailed.Store(true)
					}
				}
				c, _ := start(t, cfg)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				defer cancel()
				if tc.trusted {
					if _, err := w.srv.WaitRegistered(ctx, "dev-x", 0); err != nil {
						t.Fatal(err)
					}
					if got := readText(ctx, w, "dev-x", "/3/0/0"); got != "tether" {
						t.Errorf("/3/0/0 over the certificate-secured session: %q", got)
					}
					if st := c.Status(); st.Handshakes != 1 || !st.Registered {
						t.Errorf("status %+v, want registered after one handshake", st)
					}
					return
				}
				time.Sleep(2 * time.Minute)
				if st := c.Status(); st.Registered || w.srv.Stats().Registers != 0 {
					t.Errorf("registered with a server whose certificate it does not trust: %+v", st)
				}
				if !authFailed.Load() {
					t.Error("no event said the server's certificate was refused")
				}
			})
		})
	}
}

// drain returns the notifications an observation has received so far.
func drain(o *lwm2mtest.Observation) []*coap.Message {
	var out []*coap.Message
	for {
		select {
		case m, ok := <-o.Notifications:
			if !ok {
				return out
			}
			out = append(out, m)
		default:
			return out
		}
	}
}

// TestChangeConditions: gt, lt and st (Write-Attributes, LwM2M 1.1
// 5.1.2) let through only the changes that cross a threshold or move by a
// step; pmax sends one anyway; clearing them (a bare name, as Wakaama's
// clear sends) lets every change through again. They used to be refused
// with 4.00.
func TestChangeConditions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		s := &probe{value: 15}
		cfg := w.config("dev-g", t.TempDir(), nil)
		cfg.Objects = []lwm2m.Object{s}
		c, _ := start(t, cfg)
		ctx := context.Background()
		if _, err := w.srv.WaitRegistered(ctx, "dev-g", 0); err != nil {
			t.Fatal(err)
		}
		const p = "/3303/0/5700"
		want(t, coap.Changed)(w.srv.WriteAttributes(ctx, "dev-g", p, "gt=20", "lt=10", "st=4", "pmax=3600"))
		o, err := w.srv.Observe(ctx, "dev-g", p)
		if err != nil {
			t.Fatal(err)
		}
		values := func() (out []string) {
			for _, m := range drain(o) {
				out = append(out, string(m.Payload))
			}
			return out
		}
		for _, v := range []float64{16, 18, 21, 22, 24, 19, 17, 9, 11} {
			s.set(c, v)
			time.Sleep(10 * time.Second)
		}
		// 16, 18: nothing crossed, moved less than 4 from 15. 21: crossed
		// gt. 22: no. 24: no (3 from 21). 19: crossed gt down. 17: no. 9:
		// crossed lt. 11: crossed lt up.
		if got, want := strings.Join(values(), ","), "21,19,9,11"; got != want {
			t.Errorf("notified %s, want %s", got, want)
		}
		s.set(c, 25) // 14 from 11: a step of st or more
		time.Sleep(time.Second)
		if got := strings.Join(values(), ","); got != "25" {
			t.Errorf("a step of 14: notified %q, want 25", got)
		}
		time.Sleep(time.Hour) // pmax: notified whatever the conditions
		if got := strings.Join(values(), ","); got != "25" {
			t.Errorf("at pmax: notified %q, want 25", got)
		}
		disc := text(t)(w.srv.Discover(ctx, "dev-g", p))
		if !strings.Contains(disc, "gt=20") || !strings.Contains(disc, "lt=10") || !strings.Contains(disc, "st=4") {
			t.Errorf("Discover %s does not show gt, lt and st", disc)
		}
		want(t, coap.Changed)(w.srv.WriteAttributes(ctx, "dev-g", p, "gt", "lt", "st"))
		s.set(c, 25.5)
		time.Sleep(time.Second)
		if got := strings.Join(values(), ","); got != "25.5" {
			t.Errorf("after clear: notified %q, want 25.5", got)
		}
	})
}

// TestCurrentTimeNotifies: Current Time changes every second by itself,
// and its observers hear it every pmin (it used to wait for pmax).
func TestCurrentTimeNotifies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		start(t, w.config("dev-t", t.TempDir(), nil))
		ctx := context.Background()
		if _, err := w.srv.WaitRegistered(ctx, "dev-t", 0); err != nil {
			t.Fatal(err)
		}
		want(t, coap.Changed)(w.srv.WriteAttributes(ctx, "dev-t", "/3/0/13", "pmin=10"))
		o, err := w.srv.Observe(ctx, "dev-t", "/3/0/13")
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(61 * time.Second)
		got := drain(o)
		if len(got) != 6 {
			t.Fatalf("%d notifications of Current Time in 61 s at pmin 10, want 6", len(got))
		}
		prev := string(o.First.Payload)
		for _, m := range got {
			if string(m.Payload) <= prev {
				t.Errorf("Current Time went %s then %s", prev, m.Payload)
			}
			prev = string(m.Payload)
		}
	})
}

// TestConfirmableOnceADay: notifications are non-confirmable, but one a
// day is confirmable (RFC 7641 4.5: an observer that is gone is found
// out by it, as its Reset or silence ends the observation).
func TestConfirmableOnceADay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		start(t, w.config("dev-d", t.TempDir(), nil))
		ctx := context.Background()
		if _, err := w.srv.WaitRegistered(ctx, "dev-d", 0); err != nil {
			t.Fatal(err)
		}
		want(t, coap.Changed)(w.srv.WriteAttributes(ctx, "dev-d", "/3/0/0", "pmax=3600"))
		o, err := w.srv.Observe(ctx, "dev-d", "/3/0/0")
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(49*time.Hour + time.Minute)
		var con, non int
		for _, m := range drain(o) {
			if m.Type == coap.Confirmable {
				con++
			} else {
				non++
			}
		}
		if con != 2 || non != 47 {
			t.Errorf("in 49 hours at pmax 1 h: %d confirmable and %d non-confirmable notifications, want 2 and 47", con, non)
		}
	})
}

// sensors is a product's object with any number of instances, each one
// writable Float (/3303/I/5700), that the server creates and deletes.
type sensors struct {
	mu    sync.Mutex
	value map[uint16]float64
}

func (s *sensors) ID() uint16      { return 3303 }
func (s *sensors) Version() string { return "" }
func (s *sensors) Instances() []uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := slices.Collect(maps.Keys(s.value))
	slices.Sort(ids)
	return ids
}
func (s *sensors) Resources(uint16) []lwm2m.ResourceDef {
	return []lwm2m.ResourceDef{{ID: 5700, Ops: lwm2m.OpReadWrite, Type: content.Float}}
}
func (s *sensors) Read(inst, res uint16) ([]content.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return []content.Record{{Path: content.ResourcePath(3303, inst, res), Value: content.FloatValue(s.value[inst])}}, nil
}
func (s *sensors) Write(inst, _ uint16, recs []content.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.value[inst] = recs[0].Value.Float
	return nil
}
func (s *sensors) Execute(uint16, uint16, []byte) error { return lwm2m.ErrMethodNotAllowed }
func (s *sensors) Create(inst uint16, recs []content.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.value[inst] = 0
	for _, r := range recs {
		s.value[inst] = r.Value.Float
	}
	return nil
}
func (s *sensors) Delete(inst uint16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.value[inst]; !ok {
		return lwm2m.ErrNotFound
	}
	delete(s.value, inst)
	return nil
}

// TestCreateAndDelete: the server creates instances of a product's object
// (naming the instance in SenML, or leaving it to the client in TLV),
// refused for one that exists and for an object that cannot; it deletes
// one, whose observation ends; each change reaches the server's
// registration as object links in an Update.
func TestCreateAndDelete(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		s := &sensors{value: map[uint16]float64{0: 20}}
		cfg := w.config("dev-c", t.TempDir(), nil)
		cfg.Objects = []lwm2m.Object{s}
		start(t, cfg)
		ctx := context.Background()
		if _, err := w.srv.WaitRegistered(ctx, "dev-c", 0); err != nil {
			t.Fatal(err)
		}
		create := func(f content.Format, payload []byte) *coap.Message {
			t.Helper()
			m := req(coap.POST, "/3303", payload, uintOption(coap.ContentFormat, uint32(f)))
			resp, err := w.srv.Do(ctx, "dev-c", m)
			if err != nil {
				t.Fatal(err)
			}
			return resp
		}
		location := func(m *coap.Message) string {
			var segs []string
			for _, o := range m.Options {
				if o.ID == 8 {
					segs = append(segs, string(o.Value))
				}
			}
			return "/" + strings.Join(segs, "/")
		}
		links := func() string {
			reg, _ := w.srv.Registration("dev-c")
			var out []string
			for _, l := range reg.Links {
				out = append(out, l.Target)
			}
			return strings.Join(out, ",")
		}

		updates := w.srv.Stats().Updates
		m := create(content.SenMLJSON, []byte(`[{"bn":"/3303/7/","n":"5700","v":21.5}]`))
		if m.Code != coap.Created || location(m) != "/3303/7" {
			t.Fatalf("Create of /3303/7: %v at %s, want 2.01 at /3303/7", coap.CodeString(m.Code), location(m))
		}
		if _, err := w.srv.WaitUpdated(ctx, "dev-c", updates); err != nil {
			t.Fatal(err)
		}
		if got := links(); !strings.Contains(got, "/3303/7") {
			t.Errorf("object links after the Create: %s", got)
		}
		if got := readText(ctx, w, "dev-c", "/3303/7/5700"); got != "21.5" {
			t.Errorf("/3303/7/5700 %q, want 21.5", got)
		}
		tlv, err := content.Encode(content.TLV, content.InstancePath(3303, 9), []content.Record{{Path: content.ResourcePath(3303, 9, 5700), Value: content.FloatValue(3)}})
		if err != nil {
			t.Fatal(err)
		}
		if m := create(content.TLV, tlv); m.Code != coap.Created || location(m) != "/3303/1" {
			t.Errorf("Create with resource TLVs only: %v at %s, want 2.01 at /3303/1 (the lowest free)", coap.CodeString(m.Code), location(m))
		}
		if m := create(content.SenMLJSON, []byte(`[{"bn":"/3303/7/","n":"5700","v":1}]`)); m.Code != coap.BadRequest {
			t.Errorf("Create of an instance that exists: %v, want 4.00", coap.CodeString(m.Code))
		}
		if m, err := w.srv.Do(ctx, "dev-c", req(coap.POST, "/3", []byte(`[{"bn":"/3/1/","n":"0","vs":"x"}]`), uintOption(coap.ContentFormat, uint32(content.SenMLJSON)))); err != nil || m.Code != coap.MethodNotAllowed {
			t.Errorf("Create in /3: %v %v, want 4.05", m, err)
		}

		o, err := w.srv.Observe(ctx, "dev-c", "/3303/7/5700")
		if err != nil {
			t.Fatal(err)
		}
		updates = w.srv.Stats().Updates
		if m, err := w.srv.Do(ctx, "dev-c", req(coap.DELETE, "/3303/7", nil)); err != nil || m.Code != coap.Deleted {
			t.Fatalf("Delete /3303/7: %v %v, want 2.02", m, err)
		}
		if _, err := w.srv.WaitUpdated(ctx, "dev-c", updates); err != nil {
			t.Fatal(err)
		}
		if got := links(); strings.Contains(got, "/3303/7") {
			t.Errorf("object links after the Delete: %s", got)
		}
		select { // the observation ends with 4.04
		case m := <-o.Notifications:
			if m == nil || m.Code != coap.NotFound {
				t.Errorf("the notification after the Delete: %v, want 4.04", m)
			}
		case <-time.After(time.Hour):
			t.Error("no notification ended the observation of the deleted instance")
		}
		if m, err := w.srv.Do(ctx, "dev-c", req(coap.DELETE, "/3303/7", nil)); err != nil || m.Code != coap.NotFound {
			t.Errorf("Delete of what is gone: %v %v, want 4.04", m, err)
		}
		if m, err := w.srv.Do(ctx, "dev-c", req(coap.DELETE, "/3/0", nil)); err != nil || m.Code != coap.MethodNotAllowed {
			t.Errorf("Delete /3/0: %v %v, want 4.05", m, err)
		}
	})
}

// TestResultSurvivesRestart: Update Result 1 is kept across a restart (a
// device reboots into what it installed, and the server reads the result
// then).
func TestResultSurvivesRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, testrig.Bytes(5_000, 13))
		dir := t.TempDir()
		_, stop := start(t, w.config("dev-rs", dir, nil))
		ctx := context.Background()
		if _, err := w.srv.WaitRegistered(ctx, "dev-rs", 0); err != nil {
			t.Fatal(err)
		}
		o, err := w.srv.Observe(ctx, "dev-rs", "/5/0/3")
		if err != nil {
			t.Fatal(err)
		}
		want(t, coap.Changed)(w.srv.Write(ctx, "dev-rs", "/5/0/1", content.Text, []byte("coap://10.0.0.1:5690/fw.bin")))
		waitState(t, o, "1", "2")
		want(t, coap.Changed)(w.srv.Execute(ctx, "dev-rs", "/5/0/2", nil))
		waitState(t, o, "3", "0")
		stop()
		before := w.srv.Stats().Registers
		start(t, w.config("dev-rs", dir, nil))
		if _, err := w.srv.WaitRegistered(ctx, "dev-rs", before); err != nil {
			t.Fatal(err)
		}
		if got := readText(ctx, w, "dev-rs", "/5/0/3") + "," + readText(ctx, w, "dev-rs", "/5/0/5"); got != "0,1" {
			t.Errorf("after a restart: State, Result = %s, want 0,1", got)
		}
	})
}

// TestSend: Send reports values unasked (POST /dp, SenML CBOR); offline it
// keeps them and sends them once back; /1/0/23 Mute Send refuses it.
func TestSend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		c, _ := start(t, w.config("dev-s", t.TempDir(), nil))
		ctx := context.Background()
		if _, err := w.srv.WaitRegistered(ctx, "dev-s", 0); err != nil {
			t.Fatal(err)
		}
		sends := func() []lwm2mtest.Record {
			var out []lwm2mtest.Record
			for _, r := range w.srv.Records("dev-s") {
				if r.Op == lwm2mtest.OpSend {
					out = append(out, r)
				}
			}
			return out
		}
		if err := c.Send(ctx, content.ResourcePath(3, 0, 0), content.ResourcePath(1, 0, 1)); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		time.Sleep(time.Second)
		got := sends()
		if len(got) != 1 || got[0].Code != coap.Changed {
			t.Fatalf("sends %v, want one answered 2.04", got)
		}
		recs, err := content.Decode(content.SenMLCBOR, content.Path{}, got[0].Payload, func(p content.Path) (content.Type, bool) {
			if p.Object() == 3 {
				return content.String, true
			}
			return content.Integer, true
		})
		if err != nil || len(recs) != 2 || recs[0].Path != content.ResourcePath(1, 0, 1) || recs[1].Value.Text() != "tether" {
			t.Fatalf("the Send's payload decodes to %v, %v", recs, err)
		}

		if err := c.EnterOffline(ctx); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if err := c.Send(ctx, content.ResourcePath(3, 0, 0)); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Minute)
		if n := len(sends()); n != 1 {
			t.Fatalf("%d sends while offline went out", n-1)
		}
		if err := c.ExitOffline(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute)
		if n := len(sends()); n != 4 {
			t.Errorf("%d sends after coming back, want the 3 kept", n-1)
		}

		if err := c.Send(ctx, content.ResourcePath(3, 9, 0)); !errors.Is(err, lwm2m.ErrNotFound) {
			t.Errorf("Send of a path that does not exist: %v, want ErrNotFound", err)
		}
		want(t, coap.Changed)(w.srv.Write(ctx, "dev-s", "/1/0/23", content.Text, []byte("1")))
		if err := c.Send(ctx, content.ResourcePath(3, 0, 0)); !errors.Is(err, lwm2m.ErrSendMuted) {
			t.Errorf("Send while muted: %v, want ErrSendMuted", err)
		}
	})
}

// TestComposite: Read-Composite (FETCH /), Write-Composite (iPATCH /) and
// Observe-Composite (FETCH / with Observe), in SenML JSON and CBOR; they
// used to be answered 4.04.
func TestComposite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		s := &probe{value: 20}
		cfg := w.config("dev-cp", t.TempDir(), nil)
		cfg.Objects = []lwm2m.Object{s}
		c, _ := start(t, cfg)
		ctx := context.Background()
		if _, err := w.srv.WaitRegistered(ctx, "dev-cp", 0); err != nil {
			t.Fatal(err)
		}
		cf := func(f content.Format) coap.Option { return uintOption(coap.ContentFormat, uint32(f)) }
		do := func(m *coap.Message) *coap.Message {
			t.Helper()
			m.Options = append(m.Options, coap.Option{}) // placeholder removed below
			m.Options = m.Options[:len(m.Options)-1]
			resp, err := w.srv.Do(ctx, "dev-cp", m)
			if err != nil {
				t.Fatal(err)
			}
			return resp
		}
		paths := []byte(`[{"n":"/3/0/0"},{"n":"/1/0/1"},{"n":"/3303/0/5700"}]`)
		resp := do(req(coap.FETCH, "/", paths, cf(content.SenMLJSON)))
		if resp.Code != coap.Content || string(resp.Payload) != `[{"bn":"/","n":"1/0/1","v":600},{"n":"3/0/0","vs":"tether"},{"n":"3303/0/5700","v":20}]` {
			t.Errorf("Read-Composite: %v %s", coap.CodeString(resp.Code), resp.Payload)
		}
		resp = do(req(coap.FETCH, "/", paths, cf(content.SenMLJSON), uintOption(17, uint32(content.SenMLCBOR))))
		if cfOut, _ := coap.Uint(resp.Options, coap.ContentFormat); resp.Code != coap.Content || content.Format(cfOut) != content.SenMLCBOR {
			t.Errorf("Read-Composite with Accept CBOR: %v, format %d", coap.CodeString(resp.Code), cfOut)
		}
		if resp := do(req(coap.FETCH, "/", []byte(`[{"n":"/3/0/0","vs":"x"}]`), cf(content.SenMLJSON))); resp.Code != coap.BadRequest {
			t.Errorf("Read-Composite with a value: %v, want 4.00", coap.CodeString(resp.Code))
		}

		// Write-Composite: two objects at once; a read-only resource
		// refuses the whole.
		if resp := do(req(coap.IPATCH, "/", []byte(`[{"n":"/1/0/2","v":5},{"n":"/3/0/13","v":946684800}]`), cf(content.SenMLJSON))); resp.Code != coap.Changed {
			t.Errorf("Write-Composite: %v %s", coap.CodeString(resp.Code), resp.Payload)
		}
		if got := readText(ctx, w, "dev-cp", "/1/0/2"); got != "5" {
			t.Errorf("/1/0/2 %q after Write-Composite, want 5", got)
		}
		if resp := do(req(coap.IPATCH, "/", []byte(`[{"n":"/1/0/3","v":9},{"n":"/3/0/0","vs":"x"}]`), cf(content.SenMLJSON))); resp.Code != coap.MethodNotAllowed {
			t.Errorf("Write-Composite of a read-only resource: %v, want 4.05", coap.CodeString(resp.Code))
		}
		if got := readText(ctx, w, "dev-cp", "/1/0/3"); got != "0" {
			t.Errorf("a refused Write-Composite wrote /1/0/3 = %s", got)
		}

		// Observe-Composite, in JSON and CBOR: a change under any path
		// notifies the values of all.
		for _, f := range []content.Format{content.SenMLJSON, content.SenMLCBOR} {
			o, err := w.srv.ObserveComposite(ctx, "dev-cp", f, "/3303/0/5700", "/3/0/0")
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := coap.Uint(o.First.Options, coap.Observe); o.First.Code != coap.Content || !ok {
				t.Fatalf("Observe-Composite in %v: %v, Observe %v", f, coap.CodeString(o.First.Code), ok)
			}
			v := 30 + float64(f)
			s.set(c, v)
			select {
			case m := <-o.Notifications:
				recs, err := content.Decode(f, content.Path{}, m.Payload, func(p content.Path) (content.Type, bool) {
					if p.Object() == 3 {
						return content.String, true
					}
					return content.Float, true
				})
				if err != nil || len(recs) != 2 || recs[0].Path != content.ResourcePath(3, 0, 0) || recs[1].Value.Float != v {
					t.Errorf("the composite notification in %v: %v %v", f, recs, err)
				}
			case <-time.After(time.Minute):
				t.Fatalf("no notification of the composite observation in %v", f)
			}
			if err := w.srv.Cancel(ctx, o); err != nil {
				t.Fatal(err)
			}
			for _, r := range w.srv.Records("dev-cp") {
				if r.Op == lwm2mtest.OpCancel && r.Err != nil {
					t.Errorf("cancelling the composite observation: %v", r.Err)
				}
			}
		}
		// Both cancelled: a change notifies nobody.
		notes := func() (n int) {
			for _, r := range w.srv.Records("dev-cp") {
				if r.Op == lwm2mtest.OpNotify {
					n++
				}
			}
			return n
		}
		before := notes()
		s.set(c, 99)
		time.Sleep(time.Minute)
		if got := notes(); got != before {
			t.Errorf("%d notifications after both composite observations were cancelled", got-before)
		}
	})
}

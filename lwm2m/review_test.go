package lwm2m_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/lwm2m"
	"github.com/tether-iot/tether/lwm2m/content"
	"github.com/tether-iot/tether/sock/dtlssock"
)

// TestReviewEventAfterRunReturns: Config.OnEvent promises "Run returns once
// every event it emitted has been handed over", and Run's comment says the
// firmware's goroutines end before the last events are handed over. But
// the defers run in the other order (run.go:88-97: the flush is deferred
// after the firmware's stop, so it runs first): an Install that ends
// because the client stops emits "install failed" and the state event
// after the flush, and OnEvent is called by a goroutine that outlives Run.
func TestReviewEventAfterRunReturns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		image := testrig.Bytes(5000, 1)
		w := newWorld(t, false, image)
		cfg := w.config("dev-ra", t.TempDir(), nil)
		installing := make(chan struct{})
		cfg.Firmware.Install = func(ctx context.Context, _ string) error {
			close(installing)
			<-ctx.Done()
			return ctx.Err()
		}
		var returned atomic.Bool
		var late atomic.Int32
		var lateMu sync.Mutex
		var lateEvents []string
		cfg.OnEvent = func(ev lwm2m.Event) {
			// Take a second over each event (a slow log sink): Run must
			// still wait for it.
			time.Sleep(time.Second)
			if returned.Load() {
				late.Add(1)
				lateMu.Lock()
				lateEvents = append(lateEvents, ev.Kind+" "+ev.Detail)
				lateMu.Unlock()
			}
		}
		c, err := lwm2m.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		watch(t, c)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		runDone := make(chan struct{})
		go func() {
			defer close(runDone)
			c.Run(ctx)
			returned.Store(true)
		}()
		bg := context.Background()
		if _, err := w.srv.WaitRegistered(bg, "dev-ra", 0); err != nil {
			t.Fatal(err)
		}
		want(t, coap.Changed)(w.srv.Write(bg, "dev-ra", "/5/0/1", content.Text, []byte("coap://10.0.0.1:5690/fw.bin")))
		waitFor(t, 5*time.Minute, "never Downloaded", func() bool { return readText(bg, w, "dev-ra", "/5/0/3") == "2" })
		want(t, coap.Changed)(w.srv.Execute(bg, "dev-ra", "/5/0/2", nil))
		<-installing
		sctx, scancel := context.WithTimeout(bg, 10*time.Minute)
		defer scancel()
		if err := c.Stop(sctx); err != nil {
			t.Fatal(err)
		}
		<-runDone
		time.Sleep(time.Minute) // OnEvent's calls after Run returned, if any, take place
		if n := late.Load(); n > 0 {
			lateMu.Lock()
			defer lateMu.Unlock()
			t.Errorf("OnEvent was called %d times after Run returned: %q", n, lateEvents)
		}
	})
}

// TestReviewRebootAsStopIsTaken: the server executes /3/0/4 Reboot (no
// Device.Reboot: the client registers again) just as Stop is taken up by
// the loop. The loop's top (run.go:118-126) then moves Deregistering ->
// Reconnecting, which the table refuses (a "BUG" log), after having
// invalidated the registration: the De-register that follows is sent to
// the root path ("DELETE /", r.segments is nil) instead of /rd/ID, and
// the server keeps the registration.
func TestReviewRebootAsStopIsTaken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		r := newRogue(t, w, registered)
		cfg := w.config("dev-rb", t.TempDir(), nil)
		cfg.ServerURL = rogueURL
		c, err := lwm2m.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var once sync.Once
		lwm2m.WatchMoves(c, func(from, to lwm2m.RegState, allowed bool) {
			if !allowed {
				t.Errorf("registration tried %v -> %v, which its table refuses", from, to)
			}
			if to == lwm2m.Deregistering {
				// The server's Execute lands now, between Stop's turn and
				// the loop's next one (served on the reader).
				once.Do(func() {
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					defer cancel()
					if m, err := r.do(ctx, req(coap.POST, "/3/0/4", nil)); err != nil || m.Code != coap.Changed {
						t.Errorf("Execute /3/0/4: %v %v", m, err)
					}
				})
			}
		}, nil)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		runDone := make(chan struct{})
		go func() { defer close(runDone); c.Run(ctx) }()
		waitFor(t, time.Minute, "no Register", func() bool { return r.registers() > 0 })
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer scancel()
		if err := c.Stop(sctx); err != nil {
			t.Fatal(err)
		}
		<-runDone
		var deletes []string
		for _, m := range r.requests() {
			if m.Code == coap.DELETE {
				deletes = append(deletes, "/"+strings.Join(uriPath(m), "/"))
			}
		}
		if len(deletes) != 1 || deletes[0] != "/rd/7" {
			t.Errorf("De-registers sent: %q, want one DELETE /rd/7", deletes)
		}
	})
}

// TestReviewSendFromExecute: a product's Execute that reports values with
// Client.Send (a "measure now" button: the natural use of Send). Send
// waits for objCall (send.go:180), which serve already holds on the
// reader for this very Execute, and it ignores its ctx while waiting: the
// reader never returns, the Execute is never answered, and the whole
// client is stuck (every later answer from the server lands on the
// blocked reader, and Run's disconnect waits for the reader forever). Run
// in a child process, as the deadlock ends in synctest's panic.
func TestReviewSendFromExecute(t *testing.T) {
	if !crashTest(t, "TestReviewSendFromExecute") {
		return
	}
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		cfg := w.config("dev-se", t.TempDir(), nil)
		b := &button{}
		cfg.Objects = []lwm2m.Object{b}
		c, _ := start(t, cfg)
		b.c = c
		ctx := context.Background()
		if _, err := w.srv.WaitRegistered(ctx, "dev-se", 0); err != nil {
			t.Fatal(err)
		}
		xctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		m, err := w.srv.Execute(xctx, "dev-se", "/33001/0/1", nil)
		if err != nil {
			t.Fatalf("Execute whose handler calls Send (with a 1 s context): %v", err)
		}
		if b.err != nil && !errors.Is(b.err, context.DeadlineExceeded) {
			t.Errorf("Send: %v", b.err)
		}
		_ = m
	})
}

// button is a product object whose Execute sends /3/0/0 with Client.Send.
type button struct {
	c   *lwm2m.Client
	err error
}

func (b *button) ID() uint16          { return 33001 }
func (b *button) Version() string     { return "" }
func (b *button) Instances() []uint16 { return []uint16{0} }
func (b *button) Resources(uint16) []lwm2m.ResourceDef {
	return []lwm2m.ResourceDef{{ID: 1, Ops: lwm2m.OpExecute}}
}
func (b *button) Read(uint16, uint16) ([]content.Record, error) { return nil, lwm2m.ErrNotFound }
func (b *button) Write(uint16, uint16, []content.Record) error  { return lwm2m.ErrMethodNotAllowed }
func (b *button) Execute(uint16, uint16, []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	b.err = b.c.Send(ctx, content.ResourcePath(3, 0, 0))
	return nil
}

// TestReviewBootstrapStoreUnbounded: a bootstrap server writes thousands
// of /1 instances (each with an unknown resource, which bsTypeOf keeps
// "as it comes, opaque"), then finishes. Every write is taken
// (bootstrap.go:494-500 puts every record, no bound on records, instances
// or bytes) and all of it is kept in memory and written to
// bootstrap.json, which every start reads back. Within Bootstrap.Timeout
// a hostile or broken bootstrap server can so make the client hold (and
// persist) as much as it can send.
func TestReviewBootstrapStoreUnbounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		const n = 2000
		junk := strings.Repeat("x", 900)
		bs := newBSServer(t, w, func(k int) []*coap.Message {
			msgs := provision("coap://10.0.0.1:5683", 300)
			var extra []*coap.Message
			for i := range n {
				p := content.ResourcePath(1, uint16(100+i), 99)
				body, _ := content.Encode(content.SenMLJSON, content.InstancePath(1, uint16(100+i)),
					[]content.Record{{Path: p, Value: content.Value{Type: content.Opaque, Bytes: []byte(junk)}}})
				extra = append(extra, req(coap.PUT, fmt.Sprintf("/1/%d", 100+i), body, uintOption(coap.ContentFormat, uint32(content.SenMLJSON))))
			}
			return append(append(msgs[:3], extra...), msgs[5])
		})
		state := t.TempDir()
		cfg := w.config("dev-bu", t.TempDir(), nil)
		cfg.ServerURL = ""
		cfg.Bootstrap = &lwm2m.Bootstrap{URL: bsURL, StateDir: state, Timeout: time.Hour}
		start(t, cfg)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Hour)
		defer cancel()
		if _, err := w.srv.WaitRegistered(ctx, "dev-bu", 0); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		_, answers := bs.stats()
		taken := 0
		for _, a := range answers {
			if a.Code == coap.Changed {
				taken++
			}
		}
		fi, err := os.Stat(filepath.Join(state, "bootstrap.json"))
		if err != nil {
			t.Fatal(err)
		}
		if taken >= n || fi.Size() > 1<<20 {
			t.Errorf("the client took %d of %d Bootstrap-Writes of junk /1 instances and keeps %d bytes in bootstrap.json; want a bound", taken, n+3, fi.Size())
		}
	})
}

// TestReviewCorruptBootstrapState: bootstrap.json is unreadable (a flash
// that wore out, a user's edit, a file written by another version). New
// refuses to make a client (bootstrap.go:325: ErrConfig), so the device
// cannot start at all, though its bootstrap server could provision it
// again; the same package treats an unreadable firmware.json the other
// way ("a device that cannot start is worse than one that starts from
// Idle", firmware.go).
func TestReviewCorruptBootstrapState(t *testing.T) {
	state := t.TempDir()
	if err := os.WriteFile(filepath.Join(state, "bootstrap.json"), []byte(`[{"path":"/0/1/0","value":`), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := lwm2m.New(lwm2m.Config{Endpoint: "dev-cb", Bootstrap: &lwm2m.Bootstrap{URL: "coap://127.0.0.1:5685", StateDir: state}})
	if err != nil {
		t.Errorf("New with a corrupt bootstrap.json: %v; want a client that bootstraps again", err)
		return
	}
	c.Stop(context.Background())
}

// TestReviewBootstrapStateReadableByAll: bootstrap.json holds the PSK or
// private key, and the client writes it 0600; but it loads one that is
// readable by everyone (0644: copied in by a provisioning script, restored
// from a backup) without a word, and keeps using (and rewriting nothing
// of) secrets that every local user can read. ssh refuses such a key;
// the client should at least refuse or fix the mode.
func TestReviewBootstrapStateReadableByAll(t *testing.T) {
	state := t.TempDir()
	saved := `[{"path":"/0/1/0","value":{"Type":1,"Bytes":"Y29hcHM6Ly8xMjcuMC4wLjE6NTY4NA=="}},` +
		`{"path":"/0/1/2","value":{"Type":2,"Int":0}},` +
		`{"path":"/0/1/3","value":{"Type":6,"Bytes":"aWQ="}},` +
		`{"path":"/0/1/5","value":{"Type":6,"Bytes":"a2V5a2V5a2V5a2V5"}},` +
		`{"path":"/0/1/10","value":{"Type":2,"Int":1}},` +
		`{"path":"/1/1/0","value":{"Type":2,"Int":1}}]`
	file := filepath.Join(state, "bootstrap.json")
	if err := os.WriteFile(file, []byte(saved), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := lwm2m.New(lwm2m.Config{Endpoint: "dev-pm", Bootstrap: &lwm2m.Bootstrap{URL: "coap://127.0.0.1:5685", StateDir: state}})
	if err != nil {
		if errors.Is(err, lwm2m.ErrConfig) && strings.Contains(err.Error(), "perm") {
			return // refused for its mode: fine
		}
		t.Fatalf("New: %v (the test's saved account should load)", err)
	}
	defer c.Stop(context.Background())
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("the client took secrets from a bootstrap.json of mode %v, and left it so", fi.Mode().Perm())
	}
}

// TestReviewReadUnderObsMu: observe (observe.go:66-82) takes obsMu and,
// with it held, calls collect, which calls the product's Object.Read (and
// Device.FirmwareVersionFunc, and firmwareObject.Read, which takes f.mu:
// the reverse of moveLocked's f.mu -> changedTo -> obsMu). Object's doc
// says its methods run "with none of the client's locks held" and that
// Client.Changed "never waits"; a Read that refreshes a cached value and
// calls Changed (as a sensor driver does) deadlocks the reader on the
// first Observe, and with it the client. Run in a child process bounded
// in real time: a goroutine waiting for a sync.Mutex is not durably
// blocked, so synctest neither advances its clock nor sees the deadlock.
func TestReviewReadUnderObsMu(t *testing.T) {
	if !boundedChild(t, "TestReviewReadUnderObsMu", 20*time.Second) {
		return
	}
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		cfg := w.config("dev-ro", t.TempDir(), nil)
		s := &refreshing{}
		cfg.Objects = []lwm2m.Object{s}
		c, _ := start(t, cfg)
		s.c.Store(c)
		ctx := context.Background()
		if _, err := w.srv.WaitRegistered(ctx, "dev-ro", 0); err != nil {
			t.Fatal(err)
		}
		if got := readText(ctx, w, "dev-ro", "/33002/0/1"); got == "" {
			t.Fatal("the Read itself fails")
		}
		octx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		if _, err := w.srv.Observe(octx, "dev-ro", "/33002/0/1"); err != nil {
			t.Fatalf("Observe of a resource whose Read calls Changed: %v", err)
		}
	})
}

// refreshing is a product object whose Read takes a new sample and tells
// the client it changed.
type refreshing struct {
	c atomic.Pointer[lwm2m.Client]
	n atomic.Int64
}

func (s *refreshing) ID() uint16          { return 33002 }
func (s *refreshing) Version() string     { return "" }
func (s *refreshing) Instances() []uint16 { return []uint16{0} }
func (s *refreshing) Resources(uint16) []lwm2m.ResourceDef {
	return []lwm2m.ResourceDef{{ID: 1, Ops: lwm2m.OpRead, Type: content.Integer}}
}
func (s *refreshing) Read(inst, res uint16) ([]content.Record, error) {
	v := s.n.Add(1)
	if c := s.c.Load(); c != nil {
		c.Changed(content.ResourcePath(33002, inst, res)) // a new sample
	}
	return []content.Record{{Path: content.ResourcePath(33002, inst, res), Value: content.IntValue(v)}}, nil
}
func (s *refreshing) Write(uint16, uint16, []content.Record) error { return lwm2m.ErrMethodNotAllowed }
func (s *refreshing) Execute(uint16, uint16, []byte) error         { return lwm2m.ErrMethodNotAllowed }

// boundedChild is crashTest whose child runs with -test.timeout: a
// deadlock on a sync.Mutex stops synctest's clock and is never reported
// by it, so only real time can end it. It returns true in the child.
func boundedChild(t *testing.T, name string, limit time.Duration) (child bool) {
	if os.Getenv("HOSTILE_CHILD") == name {
		return true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+name+"$", "-test.count=1", "-test.timeout="+limit.String())
	cmd.Env = append(os.Environ(), "HOSTILE_CHILD="+name)
	out, err := cmd.CombinedOutput()
	if err != nil {
		text := string(out)
		if i := strings.Index(text, "panic:"); i >= 0 {
			lines := strings.Split(text[i:], "\n")
			text = strings.Join(lines[:min(len(lines), 6)], "\n")
		}
		var stuck []string
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, "lwm2m.(*Client).") || strings.Contains(l, "sync.(*Mutex).Lock") {
				stuck = append(stuck, strings.TrimSpace(l))
			}
		}
		t.Fatalf("the child process failed (%v):\n%s\nclient frames:\n%s", err, text, strings.Join(stuck[:min(len(stuck), 20)], "\n"))
	}
	return false
}

// TestReviewStopWaitsForBootstrapFinish: the bootstrap server takes the
// Bootstrap-Request (2.04) and then says nothing more. Stop(ctx) with a
// context without deadline (a library user's orderly shutdown) should end
// "the exchange in flight", but the loop is blocked in bootstrap's wait
// for Bootstrap-Finish (bootstrap.go:419-424), which Stop does not cut
// (only offline and reconnect commands do, send's cuts): Stop waits for
// Bootstrap.Timeout, an hour here.
func TestReviewStopWaitsForBootstrapFinish(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		bs := newBSServer(t, w, func(int) []*coap.Message { return nil })
		cfg := w.config("dev-sb", t.TempDir(), nil)
		cfg.ServerURL = ""
		cfg.Bootstrap = &lwm2m.Bootstrap{URL: bsURL, StateDir: t.TempDir(), Timeout: time.Hour}
		c, _ := start(t, cfg)
		waitFor(t, time.Minute, "no Bootstrap-Request", func() bool { n, _ := bs.stats(); return n > 0 })
		began := time.Now()
		if err := c.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(began); d > 2*time.Minute {
			t.Errorf("Stop took %v: it waited for a Bootstrap-Finish that never came", d)
		}
	})
}

// TestReviewRegisterLargerThanADatagram: a product object with 2000
// instances (a gateway's sensors, or instances a server created with
// Create: nothing bounds them). Register and Update carry the object
// links in one datagram (register.go:43, 114: no Block1, RFC 7959, which
// LwM2M 1.1 6.2.1 expects for a Register that does not fit): about 26 KB
// here, more than a DTLS record (16 KiB) or any server's datagram
// buffer, so the client never registers, retrying forever.
func TestReviewRegisterLargerThanADatagram(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, true, nil)
		cfg := w.config("dev-big", t.TempDir(), nil)
		cfg.Objects = []lwm2m.Object{&many{n: 2000}}
		start(t, cfg)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		defer cancel()
		if _, err := w.srv.WaitRegistered(ctx, "dev-big", 0); err != nil {
			t.Fatalf("a client with 2000 instances of an object never registers: %v", err)
		}
	})
}

// many is a product object with n instances of one readable resource.
type many struct{ n int }

func (m *many) ID() uint16      { return 33003 }
func (m *many) Version() string { return "" }
func (m *many) Instances() []uint16 {
	out := make([]uint16, m.n)
	for i := range out {
		out[i] = uint16(i)
	}
	return out
}
func (m *many) Resources(uint16) []lwm2m.ResourceDef {
	return []lwm2m.ResourceDef{{ID: 1, Ops: lwm2m.OpRead, Type: content.Integer}}
}
func (m *many) Read(inst, res uint16) ([]content.Record, error) {
	return []content.Record{{Path: content.ResourcePath(33003, inst, res), Value: content.IntValue(int64(inst))}}, nil
}
func (m *many) Write(uint16, uint16, []content.Record) error { return lwm2m.ErrMethodNotAllowed }
func (m *many) Execute(uint16, uint16, []byte) error         { return lwm2m.ErrMethodNotAllowed }

// TestReviewBootstrappedPinnedCertificate: the bootstrap server gives a
// certificate-mode account (/0/x/2 = 2) whose /0/x/4 Server Public Key is
// the LwM2M server's own self-signed certificate, as Leshan's and most
// demo set-ups issue (no subjectAltName for the address the URI names),
// and no /0/x/16 Certificate Usage, whose default is 3: domain-issued
// certificate, the certificate itself is the trust anchor and no name is
// checked (RFC 6698 DANE-EE). certificateConfig (bootstrap.go:282-287)
// puts it in RootCAs and dtlssock then checks the host name against it,
// so the handshake fails and the client never registers with the server
// it was given, re-bootstrapping in a loop.
func TestReviewBootstrappedPinnedCertificate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "lwm2m-server"},
			NotBefore: time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		w := newWorldWith(t, true, nil, &dtlssock.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
		newBSServer(t, w, func(int) []*coap.Message {
			sec := []content.Record{
				{Path: content.ResourcePath(0, 1, 0), Value: content.StringValue("coaps://10.0.0.1:5684")},
				{Path: content.ResourcePath(0, 1, 1), Value: content.BoolValue(false)},
				{Path: content.ResourcePath(0, 1, 2), Value: content.IntValue(2)},
				{Path: content.ResourcePath(0, 1, 4), Value: content.Value{Type: content.Opaque, Bytes: der}},
				{Path: content.ResourcePath(0, 1, 10), Value: content.IntValue(1)},
			}
			secTLV, _ := content.Encode(content.TLV, content.InstancePath(0, 1), sec)
			msgs := provision("coap://10.0.0.1:5683", 300)
			msgs[1] = req(coap.PUT, "/0/1", secTLV, uintOption(coap.ContentFormat, uint32(content.TLV)))
			return msgs
		})
		cfg := w.config("dev-pin", t.TempDir(), nil)
		cfg.ServerURL, cfg.PSK, cfg.PSKIdentity = "", nil, nil
		cfg.Bootstrap = &lwm2m.Bootstrap{URL: bsURL, StateDir: t.TempDir()}
		var why atomic.Value
		cfg.OnEvent = func(ev lwm2m.Event) {
			if ev.Kind == "error" {
				why.Store(ev.Detail)
			}
		}
		start(t, cfg)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		if _, err := w.srv.WaitRegistered(ctx, "dev-pin", 0); err != nil {
			t.Fatalf("never registered with the bootstrapped, pinned server: %v (last error: %v)", err, why.Load())
		}
	})
}

// TestReviewPanickingReadOnTheLoop: a product's Read that panics is
// answered 5.00 when the server reads (coap/peer recovers the handler,
// and serve's defer gives objCall back), but the same Read reached from a
// notification runs on Run's goroutine (observe.go:312 notification ->
// encodeRead), where nothing recovers it: the device process dies. One
// product bug, two behaviours; the loop should recover as the reader does
// (5.00 ends the observation) and give objCall back. Run in a child
// process, as the panic kills it.
func TestReviewPanickingReadOnTheLoop(t *testing.T) {
	if !crashTest(t, "TestReviewPanickingReadOnTheLoop") {
		return
	}
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		cfg := w.config("dev-pr", t.TempDir(), nil)
		o := &fragile{}
		cfg.Objects = []lwm2m.Object{o}
		c, _ := start(t, cfg)
		ctx := context.Background()
		if _, err := w.srv.WaitRegistered(ctx, "dev-pr", 0); err != nil {
			t.Fatal(err)
		}
		if _, err := w.srv.Observe(ctx, "dev-pr", "/33004/0/1"); err != nil {
			t.Fatal(err)
		}
		o.broken.Store(true)
		want(t, coap.InternalServerError)(w.srv.Read(ctx, "dev-pr", "/33004/0/1"))
		c.Changed(content.ResourcePath(33004, 0, 1))
		time.Sleep(time.Minute)
		if !c.Status().Registered {
			t.Error("not registered")
		}
	})
}

// fragile is a product object whose Read panics once broken is set.
type fragile struct{ broken atomic.Bool }

func (f *fragile) ID() uint16          { return 33004 }
func (f *fragile) Version() string     { return "" }
func (f *fragile) Instances() []uint16 { return []uint16{0} }
func (f *fragile) Resources(uint16) []lwm2m.ResourceDef {
	return []lwm2m.ResourceDef{{ID: 1, Ops: lwm2m.OpRead, Type: content.Integer}}
}
func (f *fragile) Read(inst, res uint16) ([]content.Record, error) {
	if f.broken.Load() {
		panic("sensor driver: index out of range")
	}
	return []content.Record{{Path: content.ResourcePath(33004, inst, res), Value: content.IntValue(1)}}, nil
}
func (f *fragile) Write(uint16, uint16, []content.Record) error { return lwm2m.ErrMethodNotAllowed }
func (f *fragile) Execute(uint16, uint16, []byte) error         { return lwm2m.ErrMethodNotAllowed }

// TestReviewBootstrappedLifetimeOverflows: the bootstrap server writes
// /1/x/1 Lifetime = 10^10 s (an Integer: nothing in the object forbids
// it; a typo, or a hostile bootstrap server). accountOf takes any
// positive value (bootstrap.go:233-235) and time.Duration(v)*time.Second
// overflows to a negative lifetime: the client sends "lt=-8446744073" to
// the server it was given. A server that refuses it (lwm2mtest: 4.00)
// gets the same Register forever, and re-bootstraps give the same account
// (kept in bootstrap.json, read at every start); one that takes it holds
// a registration that is expired the moment it is made (registration.
// expired), so the client registers again at once, without back-off. A
// Write of /1/0/1 by the LwM2M server is bounded (2^31 s, server.go); the
// bootstrap's value should be too, or the Finish refused with 4.06.
func TestReviewBootstrappedLifetimeOverflows(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		newBSServer(t, w, func(int) []*coap.Message { return provision("coap://10.0.0.1:5683", 10_000_000_000) })
		cfg := w.config("dev-lo", t.TempDir(), nil)
		cfg.ServerURL = ""
		cfg.Bootstrap = &lwm2m.Bootstrap{URL: bsURL, StateDir: t.TempDir()}
		var mu sync.Mutex
		var bad []string
		cfg.OnEvent = func(ev lwm2m.Event) {
			if ev.Kind == "register" && strings.Contains(ev.Detail, "lt=-") {
				mu.Lock()
				bad = append(bad, ev.Detail)
				mu.Unlock()
			}
		}
		start(t, cfg)
		time.Sleep(time.Minute)
		mu.Lock()
		defer mu.Unlock()
		if len(bad) > 0 {
			t.Errorf("%d Registers with a negative lifetime after a bootstrap with Lifetime 10^10 s: %q", len(bad), bad[0])
		}
	})
}

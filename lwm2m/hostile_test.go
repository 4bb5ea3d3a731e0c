package lwm2m_test

// A hostile review of the client: what a hostile server, a hostile network
// and a careless user do to it. Every test here is deterministic
// (testing/synctest over sock/simnet) unless it says otherwise, and each
// loop is bounded. The tests named TestHostile* that fail show a defect;
// those named TestHeld* show an attack that held up.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/peer"
	"github.com/tether-iot/tether/download"
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/internal/testrig/coaprig"
	"github.com/tether-iot/tether/lwm2m"
	"github.com/tether-iot/tether/lwm2m/content"
	"github.com/tether-iot/tether/lwm2m/lwm2mtest"
	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/simnet"
)

// rogue is a hostile LwM2M server on the world's server host, port 5685:
// one coap/peer for the one client that talks to it, whose answers to the
// registration interface the test chooses. It records every request.
type rogue struct {
	t      *testing.T
	pc     net.PacketConn
	silent atomic.Bool // drop every datagram: a server that never answers
	answer func(req *coap.Message) coap.Message

	mu   sync.Mutex
	p    *peer.Peer
	addr net.Addr
	reqs []*coap.Message
	done chan struct{}
}

// rogueURL is where a rogue listens.
const rogueURL = "coap://10.0.0.1:5685"

func newRogue(t *testing.T, w *world, answer func(req *coap.Message) coap.Message) *rogue {
	t.Helper()
	pc, err := w.host.ListenPacket("udp", ":5685")
	if err != nil {
		t.Fatal(err)
	}
	r := &rogue{t: t, pc: pc, answer: answer, done: make(chan struct{})}
	go r.read()
	t.Cleanup(func() {
		pc.Close()
		<-r.done
		r.mu.Lock()
		if r.p != nil {
			r.p.Close()
		}
		r.mu.Unlock()
	})
	return r
}

func (r *rogue) read() {
	defer close(r.done)
	buf := make([]byte, 64<<10)
	for {
		n, addr, err := r.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if r.silent.Load() {
			continue
		}
		r.mu.Lock()
		if r.addr == nil || r.addr.String() != addr.String() {
			if r.p != nil {
				r.p.Close()
			}
			r.addr = addr
			r.p = peer.New(func(b []byte) error { _, err := r.pc.WriteTo(b, addr); return err },
				&peer.Config{Handler: r.handle, OnResponse: func(*coap.Message) bool { return true }})
		}
		p := r.p
		r.mu.Unlock()
		p.Input(buf[:n])
	}
}

func (r *rogue) handle(req *coap.Message) coap.Message {
	m := cloneMsg(req)
	r.mu.Lock()
	r.reqs = append(r.reqs, m)
	r.mu.Unlock()
	resp := r.answer(m)
	sortOpts(resp.Options)
	return resp
}

// requests returns the requests received so far.
func (r *rogue) requests() []*coap.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*coap.Message(nil), r.reqs...)
}

// registers counts the Register requests received (POST /rd).
func (r *rogue) registers() int {
	n := 0
	for _, m := range r.requests() {
		if m.Code == coap.POST && strings.Join(uriPath(m), "/") == "rd" {
			n++
		}
	}
	return n
}

// do sends a request to the client, through the peer of its address.
func (r *rogue) do(ctx context.Context, req *coap.Message) (*coap.Message, error) {
	r.mu.Lock()
	p := r.p
	r.mu.Unlock()
	if p == nil {
		return nil, errors.New("rogue: no client yet")
	}
	sortOpts(req.Options)
	return p.Do(ctx, req)
}

// raw sends a datagram to the client as it is.
func (r *rogue) raw(b []byte) {
	r.mu.Lock()
	addr := r.addr
	r.mu.Unlock()
	if _, err := r.pc.WriteTo(b, addr); err != nil {
		r.t.Fatal(err)
	}
}

// registered answers Register 2.01 at /rd/7, Update 2.04, De-register 2.02.
func registered(req *coap.Message) coap.Message {
	switch {
	case req.Code == coap.POST && len(uriPath(req)) == 1:
		return coap.Message{Code: coap.Created, Options: coap.Options{
			{ID: 8, Value: []byte("rd")}, {ID: 8, Value: []byte("7")}}}
	case req.Code == coap.POST:
		return coap.Message{Code: coap.Changed}
	}
	return coap.Message{Code: coap.Deleted}
}

func uriPath(m *coap.Message) []string {
	var out []string
	for _, o := range m.Options {
		if o.ID == coap.URIPath {
			out = append(out, string(o.Value))
		}
	}
	return out
}

func cloneMsg(m *coap.Message) *coap.Message {
	c := &coap.Message{Code: m.Code, Type: m.Type, MessageID: m.MessageID,
		Token: bytes.Clone(m.Token), Payload: bytes.Clone(m.Payload)}
	for _, o := range m.Options {
		c.Options = append(c.Options, coap.Option{ID: o.ID, Value: bytes.Clone(o.Value)})
	}
	return c
}

func sortOpts(opts coap.Options) {
	for i := 1; i < len(opts); i++ {
		for j := i; j > 0 && opts[j-1].ID > opts[j].ID; j-- {
			opts[j-1], opts[j] = opts[j], opts[j-1]
		}
	}
}

// req builds a request for path with extra options.
func req(code coap.Code, path string, payload []byte, opts ...coap.Option) *coap.Message {
	m := &coap.Message{Code: code, Payload: payload}
	for _, seg := range strings.Split(strings.Trim(path, "/"), "/") {
		if seg != "" {
			m.Options = append(m.Options, coap.Option{ID: coap.URIPath, Value: []byte(seg)})
		}
	}
	m.Options = append(m.Options, opts...)
	return m
}

func uintOption(id coap.OptionID, v uint32) coap.Option {
	var b []byte
	for ; v > 0; v >>= 8 {
		b = append([]byte{byte(v)}, b...)
	}
	return coap.Option{ID: id, Value: b}
}

// waitFor polls cond every second for at most limit (of the bubble's
// time).
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", limit, what)
		}
		time.Sleep(time.Second)
	}
}

// readText reads a resource as text from the test server, "" on failure.
func readText(ctx context.Context, w *world, ep, path string) string {
	m, err := w.srv.Read(ctx, ep, path)
	if err != nil || m.Code != coap.Content {
		return ""
	}
	return string(m.Payload)
}

// crashTest runs the calling test, name, in a child process (the test
// binary again, with HOSTILE_CHILD set), because a panic on one of the
// client's goroutines kills the whole process: the parent reports it as
// this test's failure, with the panic and the first frames, and the
// other tests run on. It returns true in the child, which then runs the
// scenario.
func crashTest(t *testing.T, name string) (child bool) {
	if os.Getenv("HOSTILE_CHILD") == name {
		return true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+name+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), "HOSTILE_CHILD="+name)
	out, err := cmd.CombinedOutput()
	if err != nil {
		text := string(out)
		if i := strings.Index(text, "panic:"); i >= 0 {
			lines := strings.Split(text[i:], "\n")
			text = strings.Join(lines[:min(len(lines), 14)], "\n")
		}
		t.Fatalf("the child process failed (%v):\n%s", err, text)
	}
	return false
}

// ---------------------------------------------------------------------
// Critical and high severity.
// ---------------------------------------------------------------------

// TestHostileUnknownMethodCode: one CoAP request with a method code the
// registry does not name (0.08, say; RFC 7252 12.1.1 leaves 0.08-0.31
// unassigned) is answered 4.05 Method Not Allowed (RFC 7252 5.8: a
// request with an unrecognised method is answered 4.05, and the
// endpoint carries on). Today Client.answer slices
// coap.CodeString(req.Code)[5:], which is "0.08" (four bytes) for such a
// code: the reader goroutine panics and the device process dies. Anyone
// who can get one datagram to the device's port does it.
func TestHostileUnknownMethodCode(t *testing.T) {
	if !crashTest(t, "TestHostileUnknownMethodCode") {
		return
	}
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		r := newRogue(t, w, registered)
		cfg := w.config("dev-m", t.TempDir(), nil)
		cfg.ServerURL = rogueURL
		start(t, cfg)
		waitFor(t, time.Minute, "no Register", func() bool { return r.registers() > 0 })
		ctx := context.Background()
		for _, code := range []coap.Code{0x08, 0x1f, 0x20} { // 0.08, 0.31, 1.00
			m, err := r.do(ctx, req(code, "/3/0/0", nil))
			if err != nil {
				t.Fatalf("request with code %v: %v", code, err)
			}
			if m.Code != coap.MethodNotAllowed {
				t.Errorf("request with code %d.%02d answered %v, want 4.05", code>>5, code&31, coap.CodeString(m.Code))
			}
		}
	})
}

// TestHostileRunTwice: Run called a second time (after Stop, or by a
// supervisor that restarts what returned) panics with "close of closed
// channel": Run's first statement is defer close(c.runDone). A method
// that can only be called once says so with an error (ErrStopped), as
// net/http's Server.Serve returns ErrServerClosed after Shutdown.
func TestHostileRunTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		c, err := lwm2m.New(w.config("dev-2x", t.TempDir(), nil))
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		if _, err := w.srv.WaitRegistered(ctx, "dev-2x", 0); err != nil {
			t.Fatal(err)
		}
		if err := c.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		var panicked any
		err = func() error {
			defer func() { panicked = recover() }()
			return c.Run(ctx)
		}()
		if panicked != nil {
			t.Fatalf("the second Run panicked: %v", panicked)
		}
		if !errors.Is(err, lwm2m.ErrStopped) {
			t.Errorf("the second Run returned %v, want ErrStopped", err)
		}
	})
}

// TestHostileStopWhileInstalling: Firmware.Install's doc says "ctx ends
// when the client stops", but Stop does not end it: Run deregisters, then
// waits in firmware.stop for the Install goroutine, which waits for a ctx
// that only the caller of Run can cancel. Stop never returns (here: it
// times out after ten minutes), even with an Install that honours ctx;
// tether device then reports "deregistering: context deadline exceeded"
// and cancels, which kills the install script midway.
func TestHostileStopWhileInstalling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		image := testrig.Bytes(5000, 1)
		w := newWorld(t, false, image)
		cfg := w.config("dev-i", t.TempDir(), nil)
		installing := make(chan struct{})
		cfg.Firmware.Install = func(ctx context.Context, _ string) error {
			close(installing)
			<-ctx.Done() // a long install that honours ctx
			return ctx.Err()
		}
		c, _ := start(t, cfg)
		ctx := context.Background()
		if _, err := w.srv.WaitRegistered(ctx, "dev-i", 0); err != nil {
			t.Fatal(err)
		}
		want(t, coap.Changed)(w.srv.Write(ctx, "dev-i", "/5/0/1", content.Text, []byte("coap://10.0.0.1:5690/fw.bin")))
		waitFor(t, 5*time.Minute, "never Downloaded", func() bool { return readText(ctx, w, "dev-i", "/5/0/3") == "2" })
		want(t, coap.Changed)(w.srv.Execute(ctx, "dev-i", "/5/0/2", nil))
		<-installing
		sctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		defer cancel()
		if err := c.Stop(sctx); err != nil {
			t.Fatalf("Stop while Install runs: %v (Run is still waiting for Install)", err)
		}
	})
}

// TestHostileSharedFirmwareDir: two clients given the same Firmware.Dir
// (two endpoints of one gateway, a copy-pasted configuration). The second
// one's download fails to start (download.ErrLocked: the first holds
// firmware.bin.part) and startDownload's failure path then calls
// removeImage, which deletes the first client's .part and .part.state:
// files it does not own. The first client's download then cannot finish,
// and both share firmware.json, so each overwrites the other's state.
// Expected: New refuses a Dir another client uses (ErrConfig), or at
// least a failed start never removes files it did not create.
func TestHostileSharedFirmwareDir(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		image := testrig.Bytes(300*1024, 1)
		w := newWorld(t, false, image)
		w.dev.SetLink(simnet.LinkConfig{Delay: 50 * time.Millisecond}) // 300 blocks: 30 s
		dir := t.TempDir()
		ctx := context.Background()
		start(t, w.config("dev-a", dir, nil))
		if _, err := w.srv.WaitRegistered(ctx, "dev-a", 0); err != nil {
			t.Fatal(err)
		}
		want(t, coap.Changed)(w.srv.Write(ctx, "dev-a", "/5/0/1", content.Text, []byte("coap://10.0.0.1:5690/fw.bin")))
		time.Sleep(5 * time.Second)
		partA, err := os.Stat(filepath.Join(dir, "firmware.bin.part"))
		if err != nil {
			t.Fatal(err)
		}

		cfgB := w.config("dev-b", dir, nil)
		b, err := lwm2m.New(cfgB)
		if errors.Is(err, lwm2m.ErrConfig) {
			return // refused: the fix
		} else if err != nil {
			t.Fatal(err)
		}
		bctx, cancel := context.WithCancel(ctx)
		bdone := make(chan struct{})
		go func() { defer close(bdone); b.Run(bctx) }()
		defer func() { cancel(); <-bdone }()
		if _, err := w.srv.WaitRegistered(ctx, "dev-b", 0); err != nil {
			t.Fatal(err)
		}
		want(t, coap.Changed)(w.srv.Write(ctx, "dev-b", "/5/0/1", content.Text, []byte("coap://10.0.0.1:5690/fw.bin")))
		time.Sleep(time.Second)
		t.Logf("dev-b: State %s Result %s", readText(ctx, w, "dev-b", "/5/0/3"), readText(ctx, w, "dev-b", "/5/0/5"))
		if now, err := os.Stat(filepath.Join(dir, "firmware.bin.part")); err != nil || !os.SameFile(now, partA) {
			t.Errorf("dev-a's firmware.bin.part was removed (or replaced) by dev-b (err %v)", err)
		}
		waitFor(t, 10*time.Minute, "dev-a's download never ended", func() bool { return readText(ctx, w, "dev-a", "/5/0/3") != "1" })
		s, res := readText(ctx, w, "dev-a", "/5/0/3"), readText(ctx, w, "dev-a", "/5/0/5")
		if s != "2" {
			t.Fatalf("dev-a ended in State %s Result %s, want 2 (Downloaded): dev-b broke its download", s, res)
		}
		got, err := os.ReadFile(filepath.Join(dir, "firmware.bin"))
		if err != nil || !bytes.Equal(sha(got), sha(image)) {
			t.Errorf("dev-a reports State 2 (Downloaded), but firmware.bin holds %d bytes that are not the image (%d bytes; err %v): Execute Update would install them",
				len(got), len(image), err)
		}
	})
}

// TestHostileQueueModeSleepsMidConversation: in queue mode the client
// closes its socket MAX_TRANSMIT_WAIT after its own last exchange
// (Register, Update, notification), however busy the server keeps it:
// requests the server sends and the client answers do not count (r.active
// is only set by the client's exchanges). LwM2M 1.1 6.5: the client stays
// reachable MAX_TRANSMIT_WAIT after the last message it sent, and a
// response is a message it sent (Anjay restarts its queue-mode timer on
// every exchange). Here the server reads at 80 s and again at 150 s: the
// second read finds the device asleep 57 s after it last answered.
func TestHostileQueueModeSleepsMidConversation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		cfg := w.config("dev-qc", t.TempDir(), nil)
		cfg.QueueMode = true
		cfg.Lifetime = 30 * time.Minute
		c, _ := start(t, cfg)
		ctx := context.Background()
		if _, err := w.srv.WaitRegistered(ctx, "dev-qc", 0); err != nil {
			t.Fatal(err)
		}
		time.Sleep(80 * time.Second)
		if got := readText(ctx, w, "dev-qc", "/3/0/0"); got != "tether" {
			t.Fatalf("read at 80 s: %q", got)
		}
		time.Sleep(70 * time.Second)
		if c.Status().Asleep {
			t.Errorf("asleep 70 s after answering a request (MAX_TRANSMIT_WAIT is %v)", coap.DefaultParams.MaxTransmitWait())
		}
		rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		if _, err := w.srv.Read(rctx, "dev-qc", "/3/0/0"); err != nil {
			t.Errorf("read at 150 s: %v", err)
		}
	})
}

// TestHostileObjectCallsOverlap: Object's doc promises "Methods are called
// from the client's goroutines, one at a time per client", so a product
// writes its objects without locks. But serve runs on the connection's
// reader goroutine and notifications read on Run's goroutine
// (notification -> encodeRead -> collect -> Object.Read), with nothing
// between them: a Read for a notification and a server's Write of the
// same object run at once.
func TestHostileObjectCallsOverlap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		cfg := w.config("dev-o", t.TempDir(), nil)
		o := &slowObject{}
		cfg.Objects = []lwm2m.Object{o}
		start(t, cfg)
		ctx := context.Background()
		if _, err := w.srv.WaitRegistered(ctx, "dev-o", 0); err != nil {
			t.Fatal(err)
		}
		want(t, coap.Changed)(w.srv.WriteAttributes(ctx, "dev-o", "/9000/0/1", "pmax=1"))
		if _, err := w.srv.Observe(ctx, "dev-o", "/9000/0/1"); err != nil {
			t.Fatal(err)
		}
		for i := range 20 {
			want(t, coap.Changed)(w.srv.Write(ctx, "dev-o", "/9000/0/1", content.Text, []byte(fmt.Sprint(i))))
		}
		if n := o.overlaps.Load(); n > 0 {
			t.Errorf("%d calls of the object's methods ran while another was running; the doc says one at a time", n)
		}
	})
}

// slowObject is a product object whose methods take 200 ms (a bus read,
// say) and that counts calls that overlap.
type slowObject struct {
	busy     atomic.Int32
	overlaps atomic.Int32
	value    int64 // unguarded: the doc says calls never overlap
}

func (s *slowObject) enter() func() {
	if s.busy.Add(1) > 1 {
		s.overlaps.Add(1)
	}
	time.Sleep(200 * time.Millisecond)
	return func() { s.busy.Add(-1) }
}

func (s *slowObject) ID() uint16          { return 9000 }
func (s *slowObject) Version() string     { return "" }
func (s *slowObject) Instances() []uint16 { return []uint16{0} }
func (s *slowObject) Resources(uint16) []lwm2m.ResourceDef {
	return []lwm2m.ResourceDef{{ID: 1, Ops: lwm2m.OpReadWrite, Type: content.Integer}}
}

func (s *slowObject) Read(inst, res uint16) ([]content.Record, error) {
	defer s.enter()()
	return []content.Record{{Path: content.ResourcePath(9000, inst, res), Value: content.IntValue(s.value)}}, nil
}

func (s *slowObject) Write(_, _ uint16, recs []content.Record) error {
	defer s.enter()()
	s.value = recs[0].Value.Int
	return nil
}

func (s *slowObject) Execute(uint16, uint16, []byte) error { return lwm2m.ErrMethodNotAllowed }

// TestHostileStaleStateLost: firmware.json is lost or corrupted (a
// flash wear-out, a user cleaning StateDir) while Dir still holds the
// .part and .part.state of an earlier download, of another URL.
// newFirmwareObject then starts from Idle but leaves those files, and the
// next Package URI fails to start: download.ToFile refuses a .part of
// another URL (ErrOutput), which /5 reports as Result 4 (connection
// lost), though nothing was lost. Only the second attempt works, because
// the failure path removes the files. The client owns Dir: when its own
// state says Idle, nothing in Dir is worth keeping.
func TestHostileStaleStateLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		image := testrig.Bytes(300*1024, 1)
		w := newWorld(t, false, image)
		if err := os.WriteFile(filepath.Join(w.files, "old.bin"), image, 0o644); err != nil {
			t.Fatal(err)
		}
		w.dev.SetLink(simnet.LinkConfig{Delay: 50 * time.Millisecond})
		dir := t.TempDir()
		ctx := context.Background()
		_, stop := start(t, w.config("dev-s", dir, nil))
		if _, err := w.srv.WaitRegistered(ctx, "dev-s", 0); err != nil {
			t.Fatal(err)
		}
		want(t, coap.Changed)(w.srv.Write(ctx, "dev-s", "/5/0/1", content.Text, []byte("coap://10.0.0.1:5690/old.bin")))
		time.Sleep(5 * time.Second)
		stop()
		if err := os.WriteFile(filepath.Join(dir, "firmware.json"), []byte(`{"state":`), 0o644); err != nil {
			t.Fatal(err)
		}
		registers := w.srv.EndpointStats("dev-s").Registers
		start(t, w.config("dev-s", dir, nil))
		if _, err := w.srv.WaitRegistered(ctx, "dev-s", registers); err != nil {
			t.Fatal(err)
		}
		want(t, coap.Changed)(w.srv.Write(ctx, "dev-s", "/5/0/1", content.Text, []byte("coap://10.0.0.1:5690/fw.bin")))
		time.Sleep(time.Second)
		if s, r := readText(ctx, w, "dev-s", "/5/0/3"), readText(ctx, w, "dev-s", "/5/0/5"); s != "1" {
			t.Errorf("State %s Result %s one second after a good Package URI, want State 1 (Downloading)", s, r)
		}
	})
}

// TestHostileUnboundedObservations: every Observe with a new token adds
// an observation, without any bound: a server (or, over NoSec, anyone who
// can spoof its address) makes the device allocate an entry, up to 32
// pending snapshots each, and a notification per entry per pmax, for as
// long as the registration lasts. Changed, nextNotification and dueNow
// scan them all under obsMu, on every wake of the loop. RFC 7641 4.1 lets
// a server refuse an observer (answer without Observe); a constrained
// client must (Config.StoredNotifications already bounds the offline
// queue; nothing bounds this).
func TestHostileUnboundedObservations(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		w.restartServer(&lwm2mtest.Options{NotifyBuffer: 1})
		start(t, w.config("dev-obs", t.TempDir(), nil))
		ctx := context.Background()
		if _, err := w.srv.WaitRegistered(ctx, "dev-obs", 0); err != nil {
			t.Fatal(err)
		}
		const tries = 1200
		accepted := 0
		for range tries {
			o, err := w.srv.Observe(ctx, "dev-obs", "/3/0/0")
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := coap.Uint(o.First.Options, coap.Observe); ok {
				accepted++
			}
		}
		want(t, coap.Changed)(w.srv.WriteAttributes(ctx, "dev-obs", "/3/0/0", "pmax=1"))
		synctest.Wait()
		sent := w.n.Stats().Sent
		time.Sleep(time.Second + 500*time.Millisecond)
		t.Logf("%d of %d observations accepted; %d datagrams in the next 1.5 s", accepted, tries, w.n.Stats().Sent-sent)
		if accepted == tries {
			t.Errorf("all %d observations of one resource accepted: no bound on what a server can make the client hold", tries)
		}
	})
}

// failingSensor is a sensor whose reads fail while fail is set (an I2C
// bus that glitches).
type failingSensor struct {
	probe
	fail atomic.Bool
}

func (s *failingSensor) Read(inst, res uint16) ([]content.Record, error) {
	if s.fail.Load() {
		return nil, errors.New("i2c: no ACK from the sensor")
	}
	return s.probe.Read(inst, res)
}

// probe is this file's own IPSO Temperature (3303/0/5700), so that it
// depends on no other test file's helpers but newWorld, start and want.
type probe struct {
	mu    sync.Mutex
	value float64
}

func (s *probe) ID() uint16          { return 3303 }
func (s *probe) Version() string     { return "" }
func (s *probe) Instances() []uint16 { return []uint16{0} }
func (s *probe) Resources(uint16) []lwm2m.ResourceDef {
	return []lwm2m.ResourceDef{{ID: 5700, Ops: lwm2m.OpRead, Type: content.Float}}
}

func (s *probe) Read(inst, res uint16) ([]content.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return []content.Record{{Path: content.ResourcePath(3303, inst, res), Value: content.FloatValue(s.value)}}, nil
}

func (s *probe) Write(uint16, uint16, []content.Record) error { return lwm2m.ErrMethodNotAllowed }
func (s *probe) Execute(uint16, uint16, []byte) error         { return lwm2m.ErrMethodNotAllowed }

// set changes the value, as the device's own sensor does, and tells c.
func (s *probe) set(c *lwm2m.Client, v float64) {
	s.mu.Lock()
	s.value = v
	s.mu.Unlock()
	c.Changed(content.ResourcePath(3303, 0, 5700))
}

// TestHostileReadErrorEndsObservationSilently: when a notification's read
// fails once (a transient error of the product's object), messages()
// calls forget: the observation is gone from the client, and the server
// is told nothing; it still believes it observes, and never hears from it
// again. RFC 7641 3.2/4.2: an observation that ends because the resource
// cannot be served ends with a notification carrying the error code
// (which tells the observer); or the client keeps the observation and
// tries again at the next pmax.
func TestHostileReadErrorEndsObservationSilently(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		cfg := w.config("dev-e", t.TempDir(), nil)
		s := &failingSensor{probe: probe{value: 20}}
		cfg.Objects = []lwm2m.Object{s}
		start(t, cfg)
		ctx := context.Background()
		if _, err := w.srv.WaitRegistered(ctx, "dev-e", 0); err != nil {
			t.Fatal(err)
		}
		want(t, coap.Changed)(w.srv.WriteAttributes(ctx, "dev-e", "/3303/0/5700", "pmax=5"))
		o, err := w.srv.Observe(ctx, "dev-e", "/3303/0/5700")
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(11 * time.Second)
		s.fail.Store(true)
		time.Sleep(5 * time.Second) // one pmax: its read fails
		s.fail.Store(false)
		before := o.Count()
		time.Sleep(30 * time.Second)
		ended := false
		for !ended {
			select {
			case _, ok := <-o.Notifications:
				ended = !ok
				continue
			default:
			}
			break
		}
		if o.Count() == before && !ended {
			t.Errorf("no notification in 30 s at pmax 5 s after one failed read, and the server was not told: the observation died silently")
		}
	})
}

// TestHostileQueueWakeOnNewPort: a NoSec client in queue mode wakes for a
// notification; if its old local port is taken meanwhile, connect's Bind
// fails silently and the socket gets another port. wakeUp keeps the
// registration anyway (only a DTLS session that did not resume counts),
// so the server still has the old address: its requests go there and
// time out until the next Update, up to a lifetime away. A NoSec
// reconnect from another address must Register again, or at least send
// an Update (LwM2M 1.1 6.2.2: the client updates when its address
// changes; our summary, section 2: any NoSec reconnect registers again).
func TestHostileQueueWakeOnNewPort(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		cfg := w.config("dev-qp", t.TempDir(), nil)
		cfg.QueueMode = true
		cfg.Lifetime = time.Hour
		s := &probe{value: 1}
		cfg.Objects = []lwm2m.Object{s}
		c, _ := start(t, cfg)
		ctx := context.Background()
		reg, err := w.srv.WaitRegistered(ctx, "dev-qp", 0)
		if err != nil {
			t.Fatal(err)
		}
		o, err := w.srv.Observe(ctx, "dev-qp", "/3303/0/5700")
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(coap.DefaultParams.MaxTransmitWait() + time.Second)
		if !c.Status().Asleep {
			t.Fatal("not asleep")
		}
		// Something else on the device takes the port meanwhile.
		_, port, _ := net.SplitHostPort(reg.Addr.String())
		squatter, err := w.dev.NewSocket("udp", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer squatter.Close()
		if err := sock.Bind(ctx, squatter, "", port); err != nil {
			t.Fatalf("binding the old port %s: %v", port, err)
		}
		s.set(c, 2)
		select {
		case <-o.Notifications:
		case <-time.After(time.Minute):
			t.Fatal("no notification after the wake-up")
		}
		time.Sleep(time.Second)
		rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		if _, err := w.srv.Read(rctx, "dev-qp", "/3/0/0"); err != nil {
			now, _ := w.srv.Registration("dev-qp")
			t.Errorf("the server cannot reach the client after it woke on another port (server has %v, Registers %d): %v",
				now.Addr, w.srv.EndpointStats("dev-qp").Registers, err)
		}
	})
}

// noShutdown is a socket without the optional Shutdown capability (an
// integrator's modem socket: sock says Shutdown is optional).
type noShutdown struct{ sock.Socket }

// TestHostileOfflineWhenASuspendFails: EnterOffline carries out the
// downloads' part first and returns at its first error, before taking
// the registration connection offline. A firmware download over a socket
// without Shutdown (download.Options.NewSocket: "without Shutdown,
// Suspend reports sock.ErrNotSupported") thus keeps the whole device
// online: the controller marked UDP offline, the registration did not,
// and the client keeps sending Updates while its user believes it is
// offline. Offline mode is the user's promise that nothing goes out: the
// registration must go offline whatever a download says, and the
// download's error be returned beside it.
func TestHostileOfflineWhenASuspendFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		image := testrig.Bytes(300*1024, 1)
		w := newWorld(t, false, image)
		w.dev.SetLink(simnet.LinkConfig{Delay: 50 * time.Millisecond})
		cfg := w.config("dev-ns", t.TempDir(), nil)
		cfg.Lifetime = time.Minute
		cfg.Firmware.Download.NewSocket = func(network string) (sock.Socket, error) {
			s, err := w.dev.NewSocket(network, nil)
			if err != nil {
				return nil, err
			}
			return noShutdown{s}, nil
		}
		c, _ := start(t, cfg)
		ctx := context.Background()
		if _, err := w.srv.WaitRegistered(ctx, "dev-ns", 0); err != nil {
			t.Fatal(err)
		}
		want(t, coap.Changed)(w.srv.Write(ctx, "dev-ns", "/5/0/1", content.Text, []byte("coap://10.0.0.1:5690/fw.bin")))
		time.Sleep(3 * time.Second)
		err := c.EnterOffline(ctx)
		t.Logf("EnterOffline: %v", err)
		updates := w.srv.EndpointStats("dev-ns").Updates
		time.Sleep(2 * time.Minute)
		if !c.Status().Offline {
			t.Error("Status().Offline is false after EnterOffline")
		}
		if got := w.srv.EndpointStats("dev-ns").Updates; got != updates {
			t.Errorf("%d Updates reached the server in two minutes after EnterOffline", got-updates)
		}
	})
}

// TestHostileLifetimeOfOneSecond: the server writes /1/0/1 = 1 (accepted:
// the write checks d >= 1 s). updateDue is then at + max(1 s - 0.5 s,
// 1 s) = at + 1 s, exactly when the registration expires, and Run checks
// expiry first: instead of Updates the client sends a Register every
// second, each dropping every observation. The Update must fall due
// before the lifetime ends (LwM2M 1.1 6.2.2), so the one-second floor
// must stay below the lifetime.
func TestHostileLifetimeOfOneSecond(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		start(t, w.config("dev-lt", t.TempDir(), nil))
		ctx := context.Background()
		if _, err := w.srv.WaitRegistered(ctx, "dev-lt", 0); err != nil {
			t.Fatal(err)
		}
		want(t, coap.Changed)(w.srv.Write(ctx, "dev-lt", "/1/0/1", content.Text, []byte("1")))
		time.Sleep(10 * time.Second)
		st := w.srv.EndpointStats("dev-lt")
		if st.Registers > 1 {
			t.Errorf("%d Registers and %d Updates in 10 s at a 1 s lifetime: the Update falls due when the lifetime ends", st.Registers, st.Updates)
		}
	})
}

// TestHostileLocationPathWithSlash: a Location-Path option is one path
// segment, whatever bytes it holds (RFC 7252 5.10.7). The client joins
// the segments with "/" and splits them again for the Update, so a
// segment "a/b" becomes two: the Update goes to /rd/a/b, which the server
// never created (4.04, and a new Register, forever). Keep the segments.
func TestHostileLocationPathWithSlash(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		r := newRogue(t, w, func(req *coap.Message) coap.Message {
			if req.Code == coap.POST && len(uriPath(req)) == 1 {
				return coap.Message{Code: coap.Created, Options: coap.Options{
					{ID: 8, Value: []byte("rd")}, {ID: 8, Value: []byte("a/b")}}}
			}
			return registered(req)
		})
		cfg := w.config("dev-lp", t.TempDir(), nil)
		cfg.ServerURL = rogueURL
		c, _ := start(t, cfg)
		ctx := context.Background()
		waitFor(t, time.Minute, "no Register", func() bool { return c.Status().Registered })
		if err := c.Update(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		for _, m := range r.requests() {
			if p := uriPath(m); m.Code == coap.POST && len(p) > 1 {
				if fmt.Sprintf("%q", p) != `["rd" "a/b"]` {
					t.Errorf("Update sent to Uri-Path %q, want [\"rd\" \"a/b\"]", p)
				}
				return
			}
		}
		t.Error("no Update")
	})
}

// TestHostileStopBeforeRun: Stop (or any command) on a client whose Run
// was never called, or has not started yet, waits for its whole ctx
// (forever with context.Background()), and the command stays queued: a
// Run started later executes it (here: deregisters at once). Stop before
// Run should make Run return at once, and return promptly itself.
func TestHostileStopBeforeRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		c, err := lwm2m.New(w.config("dev-sb", t.TempDir(), nil))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		begin := time.Now()
		err = c.Stop(ctx)
		if waited := time.Since(begin); waited >= time.Minute {
			t.Errorf("Stop before Run waited %v and returned %v", waited, err)
		}
	})
}

// TestHostileStateFileIsADirectory: StateDir/firmware.json is a directory
// (or unreadable: permission denied). newFirmwareObject drops the read
// error without a word (only a JSON error is logged) and New succeeds;
// every save then fails (an "error" event per change) while the Package
// URI writes are answered 2.04, and a restart silently loses a download
// in State 1: the resumption Firmware.StateDir exists for. New checks the
// folder already (ErrConfig); it should check the file the same way.
func TestHostileStateFileIsADirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "firmware.json"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := lwm2m.New(lwm2m.Config{
		Endpoint: "dev-d", ServerURL: "coap://127.0.0.1",
		Firmware: &lwm2m.Firmware{Dir: dir, Install: func(context.Context, string) error { return nil }},
	})
	if !errors.Is(err, lwm2m.ErrConfig) {
		t.Errorf("New with firmware.json a directory: %v, want ErrConfig", err)
	}
}

// TestHostileOnEventUnderLock: emit calls Config.OnEvent while the client
// holds its own locks: obsMu in observerReset, firmwareObject.mu in set.
// An OnEvent that calls back into the client (Changed, to log events into
// a product's Event Log object, say) deadlocks the connection's reader:
// observerReset holds obsMu, Changed takes it again. Nothing in OnEvent's
// doc warns of it ("must not block": Changed does not block, by its own
// doc). Real time on loopback: synctest cannot wait out a goroutine
// blocked on a mutex. The callback runs Changed on a goroutine and waits
// two seconds for it, so the test ends either way.
func TestHostileOnEventUnderLock(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	srv, err := lwm2mtest.NewServer(pc, nil)
	if err != nil {
		t.Fatal(err)
	}
	var c *lwm2m.Client
	var stuck atomic.Bool
	var ready atomic.Bool
	s := &probe{value: 1}
	cfg := lwm2m.Config{
		Endpoint: "dev-ev", ServerURL: "coap://" + addr, Lifetime: time.Hour,
		Objects: []lwm2m.Object{s},
		OnEvent: func(ev lwm2m.Event) {
			if !ready.Load() || ev.Kind != "notify" || !strings.Contains(ev.Detail, "reset") {
				return
			}
			done := make(chan struct{})
			go func() { c.Changed(content.ResourcePath(3303, 0, 5700)); close(done) }()
			select {
			case <-done:
			case <-time.After(2 * time.Second):
				stuck.Store(true)
			}
		},
	}
	c, err = lwm2m.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	runDone := make(chan struct{})
	go func() { defer close(runDone); c.Run(ctx) }()
	defer func() { cancel(); <-runDone }()
	if _, err := srv.WaitRegistered(ctx, "dev-ev", 0); err != nil {
		t.Fatal(err)
	}
	want(t, coap.Changed)(srv.WriteAttributes(ctx, "dev-ev", "/3303/0/5700", "pmax=1"))
	if _, err := srv.Observe(ctx, "dev-ev", "/3303/0/5700"); err != nil {
		t.Fatal(err)
	}
	ready.Store(true)
	// A new server on the same address knows no observation: it resets
	// the next notification.
	srv.Close()
	pc2, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	srv2, err := lwm2mtest.NewServer(pc2, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv2.Close()
	for i := 0; i < 50 && !stuck.Load(); i++ {
		time.Sleep(100 * time.Millisecond)
	}
	if stuck.Load() {
		t.Error("Changed called from OnEvent blocked: OnEvent runs with the client's obsMu held")
	}
}

// ---------------------------------------------------------------------
// Attacks that held up.
// ---------------------------------------------------------------------

// TestHeldDeviceManagementCodes sends what a hostile server sends and
// checks the codes LwM2M 1.1 (our summary, section 3) asks for.
func TestHeldDeviceManagementCodes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		start(t, w.config("dev-c", t.TempDir(), nil))
		ctx := context.Background()
		if _, err := w.srv.WaitRegistered(ctx, "dev-c", 0); err != nil {
			t.Fatal(err)
		}
		cf := func(f uint32) coap.Option { return uintOption(coap.ContentFormat, f) }
		accept := func(f uint32) coap.Option { return uintOption(17, f) }
		query := func(q string) coap.Option { return coap.Option{ID: coap.URIQuery, Value: []byte(q)} }
		obs := func(v uint32) coap.Option { return uintOption(coap.Observe, v) }
		tests := []struct {
			name  string
			req   *coap.Message
			codes []coap.Code // any of them
		}{
			{"object 65535", req(coap.GET, "/65535", nil), []coap.Code{coap.BadRequest, coap.NotFound}},
			{"instance 65535", req(coap.GET, "/3/65535", nil), []coap.Code{coap.BadRequest, coap.NotFound}},
			{"resource 65535", req(coap.GET, "/3/0/65535", nil), []coap.Code{coap.BadRequest, coap.NotFound}},
			{"resource instance 65535", req(coap.GET, "/3/0/11/65535", nil), []coap.Code{coap.BadRequest, coap.NotFound}},
			{"id 65536", req(coap.GET, "/3/0/65536", nil), []coap.Code{coap.BadRequest}},
			{"five levels", req(coap.GET, "/3/0/11/0/0", nil), []coap.Code{coap.BadRequest}},
			{"instance 65534", req(coap.GET, "/3/65534", nil), []coap.Code{coap.NotFound}},
			{"resource instance of a single resource", req(coap.GET, "/3/0/0/0", nil), []coap.Code{coap.NotFound}},
			{"Accept JSON (50)", req(coap.GET, "/3/0/0", nil, accept(50)), []coap.Code{0x86}},
			{"Observe with Accept 50", req(coap.GET, "/3/0/0", nil, obs(0), accept(50)), []coap.Code{0x86}},
			{"Observe 2", req(coap.GET, "/3/0/0", nil, obs(2)), []coap.Code{coap.BadRequest}},
			{"Observe an executable", req(coap.GET, "/3/0/4", nil, obs(0)), []coap.Code{coap.MethodNotAllowed}},
			{"Write CF 50", req(coap.PUT, "/1/0/1", []byte("{}"), cf(50)), []coap.Code{0x8f}},
			{"Write CF 65535", req(coap.PUT, "/1/0/1", []byte("1"), cf(65535)), []coap.Code{0x8f}},
			{"lifetime 0", req(coap.PUT, "/1/0/1", []byte("0"), cf(0)), []coap.Code{coap.BadRequest}},
			{"lifetime -5", req(coap.PUT, "/1/0/1", []byte("-5"), cf(0)), []coap.Code{coap.BadRequest}},
			{"lifetime 2^40", req(coap.PUT, "/1/0/1", []byte("1099511627776"), cf(0)), []coap.Code{coap.BadRequest}},
			{"lifetime 2^63", req(coap.PUT, "/1/0/1", []byte("9223372036854775808"), cf(0)), []coap.Code{coap.BadRequest}},
			{"lifetime junk", req(coap.PUT, "/1/0/1", []byte("\xff\xfe"), cf(0)), []coap.Code{coap.BadRequest}},
			{"a SenML write naming another resource", req(coap.PUT, "/1/0/1", []byte(`[{"bn":"/1/0/2","v":1}]`), cf(110)), []coap.Code{coap.BadRequest}},
			{"a huge string", req(coap.PUT, "/1/0/7", bytes.Repeat([]byte("U"), 1000), cf(0)), []coap.Code{coap.BadRequest}},
			{"write a read-only State", req(coap.PUT, "/5/0/3", []byte("2"), cf(0)), []coap.Code{coap.MethodNotAllowed}},
			{"read a write-only Package", req(coap.GET, "/5/0/0", nil), []coap.Code{coap.MethodNotAllowed}},
			{"execute a readable", req(coap.POST, "/3/0/0", nil), []coap.Code{coap.MethodNotAllowed}},
			{"Update while Idle", req(coap.POST, "/5/0/2", nil), []coap.Code{coap.MethodNotAllowed}},
			{"DELETE", req(0x04, "/3/0", nil), []coap.Code{coap.MethodNotAllowed}},
			{"FETCH", req(0x05, "/3/0", nil), []coap.Code{coap.MethodNotAllowed}},
			{"the Security object", req(coap.GET, "/0/0/3", nil), []coap.Code{0x81}},
			{"pmin > pmax", req(coap.PUT, "/3/0/13", nil, query("pmin=10"), query("pmax=5")), []coap.Code{coap.BadRequest}},
			{"pmin 2^31", req(coap.PUT, "/3/0/13", nil, query("pmin=2147483648")), []coap.Code{coap.BadRequest}},
			{"pmax 2^64", req(coap.PUT, "/3/0/13", nil, query("pmax=18446744073709551616")), []coap.Code{coap.BadRequest}},
			{"pmin -1", req(coap.PUT, "/3/0/13", nil, query("pmin=-1")), []coap.Code{coap.BadRequest}},
			{"pmin empty", req(coap.PUT, "/3/0/13", nil, query("pmin=")), []coap.Code{coap.BadRequest}},
			{"pmin 2^31-1", req(coap.PUT, "/3/0/13", nil, query("pmin=2147483647")), []coap.Code{coap.Changed}},
			{"gt", req(coap.PUT, "/3/0/13", nil, query("gt=1")), []coap.Code{coap.BadRequest}},
		}
		for _, tc := range tests {
			m, err := w.srv.Do(ctx, "dev-c", tc.req)
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
				continue
			}
			ok := false
			for _, c := range tc.codes {
				ok = ok || m.Code == c
			}
			if !ok {
				t.Errorf("%s: answered %v (%q)", tc.name, coap.CodeString(m.Code), m.Payload)
			}
		}
		// The huge pmin did not make a timer overflow: the device still
		// answers, and /3/0/13's attributes are what was written last.
		if got := readText(ctx, w, "dev-c", "/3/0/0"); got != "tether" {
			t.Errorf("after the attacks /3/0/0 reads %q", got)
		}
	})
}

// TestHostileAttributesOnMissingResourceInstance: Write-Attributes checks
// the resource of a path but not its resource instance: attributes on
// /3/0/11/999 (Error Code has one instance, 0) are accepted (2.04) and
// stored, one map entry per path. A server writes 65535 of them per
// multiple resource. An unknown path is 4.04 (our summary, section 3).
func TestHostileAttributesOnMissingResourceInstance(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		start(t, w.config("dev-ra", t.TempDir(), nil))
		ctx := context.Background()
		if _, err := w.srv.WaitRegistered(ctx, "dev-ra", 0); err != nil {
			t.Fatal(err)
		}
		m, err := w.srv.WriteAttributes(ctx, "dev-ra", "/3/0/11/999", "pmin=5")
		if err != nil {
			t.Fatal(err)
		}
		if m.Code != coap.NotFound {
			t.Errorf("Write-Attributes on /3/0/11/999 (no such resource instance): %v, want 4.04", coap.CodeString(m.Code))
		}
	})
}

// TestHeldJunkAndHugeDatagrams: garbage, truncated CoAP, a confirmable
// message with a bad option, an empty CON (ping), and a 4 KiB request:
// the client survives them all (the ping and the unreadable CON get a
// Reset, the oversize datagram is dropped) and answers the next Read.
func TestHeldJunkAndHugeDatagrams(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		r := newRogue(t, w, registered)
		cfg := w.config("dev-j", t.TempDir(), nil)
		cfg.ServerURL = rogueURL
		start(t, cfg)
		waitFor(t, time.Minute, "no Register", func() bool { return r.registers() > 0 })
		huge, _ := coap.AppendUDP(nil, &coap.Message{Type: coap.Confirmable, Code: coap.PUT, MessageID: 7,
			Options: coap.Options{{ID: coap.URIPath, Value: []byte("1")}, {ID: coap.URIPath, Value: []byte("0")}, {ID: coap.URIPath, Value: []byte("7")}},
			Payload: bytes.Repeat([]byte("U"), 4096)})
		for _, b := range [][]byte{
			{}, {0xff}, {0x40, 0x01}, {0x40, 0x01, 0x12, 0x34, 0xff},
			{0x48, 0x01, 0x00, 0x01, 1, 2, 3}, // token length 8, three bytes of it
			{0x40, 0x01, 0x00, 0x02, 0xff},    // payload marker, no payload
			{0x40, 0x01, 0x00, 0x03, 0xf0},    // option delta 15 (reserved)
			{0x40, 0x00, 0x00, 0x04},          // an empty CON: a ping
			{0x70, 0x00, 0x00, 0x05},          // an empty RST
			{0x60, 0x45, 0x00, 0x06},          // an ACK nobody waits for
			huge,
			bytes.Repeat([]byte{0x55}, 65000),
		} {
			r.raw(b)
		}
		time.Sleep(time.Second)
		m, err := r.do(context.Background(), req(coap.GET, "/3/0/0", nil))
		if err != nil || m.Code != coap.Content || string(m.Payload) != "tether" {
			t.Fatalf("after the junk: %v %v", m, err)
		}
	})
}

// TestHeldSilentServer: a server that never answers Register. The
// retries back off (5 s doubling, bounded by MaxRetryDelay), and Stop
// returns once the Register in flight gives up (MAX_TRANSMIT_WAIT at
// most), with nothing to deregister.
func TestHeldSilentServer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		r := newRogue(t, w, registered)
		r.silent.Store(true)
		cfg := w.config("dev-sil", t.TempDir(), nil)
		cfg.ServerURL = rogueURL
		cfg.MaxRetryDelay = 2 * time.Minute
		var registers atomic.Int32
		cfg.OnEvent = func(ev lwm2m.Event) {
			if ev.Kind == "register" && strings.HasPrefix(ev.Detail, "POST") {
				registers.Add(1)
			}
		}
		c, _ := start(t, cfg)
		time.Sleep(time.Hour)
		n := registers.Load()
		t.Logf("%d Registers in an hour against a silent server", n)
		// Each try: up to 93 s of retransmissions, then a wait of at
		// most two minutes: at least 16 tries in an hour, and no storm.
		if n < 10 || n > 40 {
			t.Errorf("%d Registers in an hour against a silent server", n)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		begin := time.Now()
		if err := c.Stop(ctx); err != nil {
			t.Errorf("Stop: %v after %v", err, time.Since(begin))
		}
		if c.Status().Registered {
			t.Error("registered with a silent server")
		}
	})
}

// TestHeldRegisterWithoutLocation: 2.01 with no Location-Path is a
// failure: retried with back-off, never taken for a registration.
func TestHeldRegisterWithoutLocation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		r := newRogue(t, w, func(req *coap.Message) coap.Message { return coap.Message{Code: coap.Created} })
		cfg := w.config("dev-nl", t.TempDir(), nil)
		cfg.ServerURL = rogueURL
		c, _ := start(t, cfg)
		time.Sleep(10 * time.Minute)
		t.Logf("%d Registers in 10 min answered 2.01 without a location", r.registers())
		if n := r.registers(); n < 3 || n > 12 {
			t.Errorf("%d Registers in 10 min", n)
		}
		if c.Status().Registered {
			t.Error("registered without a location")
		}
	})
}

// TestHeldUpdateKeepsFailing: Updates answered 5.00 make the client
// register again (with its back-off), never a storm.
func TestHeldUpdateKeepsFailing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		r := newRogue(t, w, func(req *coap.Message) coap.Message {
			if req.Code == coap.POST && len(uriPath(req)) == 2 {
				return coap.Message{Code: coap.InternalServerError}
			}
			return registered(req)
		})
		cfg := w.config("dev-uf", t.TempDir(), nil)
		cfg.ServerURL = rogueURL
		cfg.Lifetime = time.Minute
		start(t, cfg)
		time.Sleep(10 * time.Minute)
		regs, all := r.registers(), len(r.requests())
		t.Logf("%d Registers, %d requests in 10 min of failing Updates", regs, all)
		if regs < 10 || all > 3*regs+5 {
			t.Errorf("%d Registers, %d requests in all, in 10 min of failing Updates", regs, all)
		}
	})
}

// TestHeldFirmwareTooLarge: an image over Download.MaxSize ends in
// State 0 with Result 2 (not enough storage), and leaves no files.
func TestHeldFirmwareTooLarge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		image := testrig.Bytes(50_000, 1)
		w := newWorld(t, false, image)
		dir := t.TempDir()
		cfg := w.config("dev-big", dir, nil)
		cfg.Firmware.Download.MaxSize = 10_000
		start(t, cfg)
		ctx := context.Background()
		if _, err := w.srv.WaitRegistered(ctx, "dev-big", 0); err != nil {
			t.Fatal(err)
		}
		want(t, coap.Changed)(w.srv.Write(ctx, "dev-big", "/5/0/1", content.Text, []byte("coap://10.0.0.1:5690/fw.bin")))
		waitFor(t, 5*time.Minute, "the download never ended", func() bool { return readText(ctx, w, "dev-big", "/5/0/3") == "0" })
		if r := readText(ctx, w, "dev-big", "/5/0/5"); r != "2" {
			t.Errorf("Result %s for an image over MaxSize, want 2", r)
		}
		if m, _ := filepath.Glob(filepath.Join(dir, "firmware.bin*")); len(m) != 0 {
			t.Errorf("files left: %v", m)
		}
	})
}

// TestHeldCommandStorm: EnterOffline, ExitOffline, Reconnect and Update
// from four goroutines, 40 times each, while Registers and Updates are
// in flight over a slow link (run with -race; TestMain checks for leaked
// goroutines). Afterwards the client comes back, answers, and stops.
func TestHeldCommandStorm(t *testing.T) {
	for _, secure := range []bool{false, true} {
		t.Run(map[bool]string{false: "nosec", true: "dtls"}[secure], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t, secure, nil)
				w.dev.SetLink(simnet.LinkConfig{Delay: 700 * time.Millisecond})
				cfg := w.config("dev-st", t.TempDir(), nil)
				cfg.Lifetime = time.Minute
				cfg.OnEvent = nil
				c, _ := start(t, cfg)
				var wg sync.WaitGroup
				var mu sync.Mutex
				var slow [4]int
				var maxWait [4]time.Duration
				for g := range 4 {
					wg.Go(func() {
						for i := range 40 {
							ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
							begin := time.Now()
							var err error
							kind := (g + i) % 4
							switch kind {
							case 0:
								err = c.EnterOffline(ctx)
							case 1:
								err = c.ExitOffline(ctx)
							case 2:
								err = c.Reconnect(ctx)
							case 3:
								err = c.Update(ctx)
							}
							cancel()
							if err != nil {
								mu.Lock()
								slow[kind]++
								mu.Unlock()
							}
							d := time.Since(begin)
							mu.Lock()
							maxWait[kind] = max(maxWait[kind], d)
							mu.Unlock()
							time.Sleep(time.Duration(100*(g+1)) * time.Millisecond)
						}
					})
				}
				wg.Wait()
				t.Logf("commands that failed (offline, online, reconnect, update): %v; longest waits %v", slow, maxWait)
				ctx := context.Background()
				if err := c.ExitOffline(ctx); err != nil {
					t.Fatal(err)
				}
				registers := w.srv.EndpointStats("dev-st").Registers
				t.Logf("server after the storm: %+v", w.srv.EndpointStats("dev-st"))
				waitFor(t, 5*time.Minute, "not registered after the storm", func() bool { return c.Status().Registered })
				if got := readText(ctx, w, "dev-st", "/3/0/0"); got != "tether" {
					t.Errorf("after the storm /3/0/0 reads %q (%d Registers before)", got, registers)
				}
				sctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
				defer cancel()
				if err := c.Stop(sctx); err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

// TestHeldChangedStorm: Changed from eight goroutines, 500 times each,
// with pmin 1 s: no race, and notifications stay within pmin.
func TestHeldChangedStorm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		cfg := w.config("dev-ch", t.TempDir(), nil)
		s := &probe{value: 1}
		cfg.Objects = []lwm2m.Object{s}
		cfg.OnEvent = nil
		c, _ := start(t, cfg)
		ctx := context.Background()
		if _, err := w.srv.WaitRegistered(ctx, "dev-ch", 0); err != nil {
			t.Fatal(err)
		}
		want(t, coap.Changed)(w.srv.WriteAttributes(ctx, "dev-ch", "/3303/0/5700", "pmin=1"))
		o, err := w.srv.Observe(ctx, "dev-ch", "/3303/0/5700")
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 500 {
					s.set(c, float64(g*1000+i))
					if i%50 == 0 {
						time.Sleep(100 * time.Millisecond)
					}
				}
			})
		}
		wg.Wait()
		time.Sleep(3 * time.Second)
		t.Logf("%d notifications", o.Count())
		if n := o.Count(); n < 1 || n > 6 {
			t.Errorf("%d notifications for a storm of changes lasting about a second at pmin 1 s", n)
		}
	})
}

// TestHostileEnterOfflineWaitsBehindRegister: EnterOffline is meant to
// cut the exchange in flight short (send cancels c.cancel), but send
// cancels only an exchange that has already begun, and only then queues
// the command. ExitOffline returns as soon as the loop has taken it; the
// loop then reconnects and starts a Register. An EnterOffline that lands
// between the two exchanges (c.cancel nil) cancels nothing: it waits
// behind the new Register, which against a silent server retransmits for
// MAX_TRANSMIT_WAIT (93 s), and its datagrams go out after the user asked
// for offline mode. tether device's "offline" then reports "context
// deadline exceeded" and the client goes offline a minute and a half
// later anyway. Here one goroutine alternates ExitOffline and
// EnterOffline 1000 times against a server that never answers; each
// EnterOffline should take milliseconds.
func TestHostileEnterOfflineWaitsBehindRegister(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		r := newRogue(t, w, registered)
		r.silent.Store(true)
		cfg := w.config("dev-eo", t.TempDir(), nil)
		cfg.ServerURL = rogueURL
		cfg.OnEvent = nil
		c, _ := start(t, cfg)
		var worst time.Duration
		slow := 0
		for range 1000 {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Second)
			if err := c.ExitOffline(ctx); err != nil {
				t.Fatal(err)
			}
			begin := time.Now()
			if err := c.EnterOffline(ctx); err != nil {
				t.Fatal(err)
			}
			cancel()
			if d := time.Since(begin); d > 5*time.Second {
				slow++
				worst = max(worst, d)
			}
		}
		if slow > 0 {
			t.Errorf("%d of 1000 EnterOffline calls waited for a Register to time out (the longest %v)", slow, worst)
		}
	})
}

// TestHeldResetWhileSuspended: a download waiting on a transport that is
// offline (TCP: an http Package URI) is cancelled by a write of an empty
// Package URI at once (reset waits for the download's Done on the
// reader goroutine: it must not wait for the transport to come back),
// and a new Package URI right after the reset starts cleanly.
func TestHeldResetWhileSuspended(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		image := testrig.Bytes(20_000, 1)
		w := newWorld(t, false, image)
		ln, err := w.host.Listen("tcp", ":8080")
		if err != nil {
			t.Fatal(err)
		}
		hs := &http.Server{Handler: http.FileServer(http.Dir(w.files))}
		go hs.Serve(ln)
		t.Cleanup(func() { hs.Close() })
		dir := t.TempDir()
		c, _ := start(t, w.config("dev-rs", dir, nil))
		ctx := context.Background()
		if _, err := w.srv.WaitRegistered(ctx, "dev-rs", 0); err != nil {
			t.Fatal(err)
		}
		if err := c.EnterOffline(ctx, download.TCP); err != nil {
			t.Fatal(err)
		}
		want(t, coap.Changed)(w.srv.Write(ctx, "dev-rs", "/5/0/1", content.Text, []byte("http://10.0.0.1:8080/fw.bin")))
		time.Sleep(time.Minute)
		if s := readText(ctx, w, "dev-rs", "/5/0/3"); s != "1" {
			t.Fatalf("State %s while TCP is offline, want 1", s)
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		want(t, coap.Changed)(w.srv.Write(wctx, "dev-rs", "/5/0/1", content.Text, nil))
		want(t, coap.Changed)(w.srv.Write(wctx, "dev-rs", "/5/0/1", content.Text, []byte("http://10.0.0.1:8080/fw.bin")))
		if err := c.ExitOffline(ctx, download.TCP); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Minute, "never Downloaded", func() bool { return readText(ctx, w, "dev-rs", "/5/0/3") == "2" })
		got, err := os.ReadFile(filepath.Join(dir, "firmware.bin"))
		if err != nil || !bytes.Equal(sha(got), sha(image)) {
			t.Errorf("image after reset and restart: %d bytes, %v", len(got), err)
		}
	})
}

// maxIDObject is a product object with the ID the TS reserves (65535).
type maxIDObject struct{ probe }

func (*maxIDObject) ID() uint16 { return content.NoID }

// TestHostileReservedObjectID: New accepts a product object with ID 65535
// (it refuses only 0 and duplicates). The client then announces
// </65535/0> in its Register, an object no server can address: every
// request for it is 4.00 (ParsePath refuses 65535), and a strict server
// refuses the Register. A careless configuration should fail in New,
// with ErrConfig, as /0 does.
func TestHostileReservedObjectID(t *testing.T) {
	_, err := lwm2m.New(lwm2m.Config{Endpoint: "dev-id", ServerURL: "coap://127.0.0.1",
		Objects: []lwm2m.Object{&maxIDObject{}}})
	if !errors.Is(err, lwm2m.ErrConfig) {
		t.Errorf("New with an object of ID 65535: %v, want ErrConfig", err)
	}
}

// ---------------------------------------------------------------------
// Firm ground: no user code under a lock, no wait on the reader, durable
// state. Each of these failed before its fix.
// ---------------------------------------------------------------------

// TestHostileOnEventCallsEnterOffline: an OnEvent that takes the device
// offline when a download starts (a product that saves its metered link
// for the image, say). OnEvent used to run inside /5's Write, on the
// connection's reader, with /5's lock held: EnterOffline waited for the
// loop, the loop's disconnect waited for the reader, and both stayed
// stuck. Real time on loopback (a goroutine stuck on a mutex is not
// durably blocked for synctest); EnterOffline is bounded by 10 s, so the
// old code fails rather than hangs.
func TestHostileOnEventCallsEnterOffline(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := lwm2mtest.NewServer(pc, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	image := testrig.Bytes(30_000, 5)
	fileURL := coaprig.ServeFile(t, image, nil)
	var c *lwm2m.Client
	offline := make(chan error, 1)
	var once sync.Once
	cfg := lwm2m.Config{
		Endpoint: "dev-oe", ServerURL: "coap://" + pc.LocalAddr().String(), Lifetime: time.Hour,
		Firmware: &lwm2m.Firmware{Dir: t.TempDir(), Install: func(context.Context, string) error { return nil }},
		OnEvent: func(ev lwm2m.Event) {
			if ev.Kind == "firmware" && strings.HasPrefix(ev.Detail, "state 1") {
				once.Do(func() {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					err := c.EnterOffline(ctx)
					if err == nil {
						err = c.ExitOffline(ctx)
					}
					offline <- err
				})
			}
		},
	}
	c, err = lwm2m.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	runDone := make(chan struct{})
	go func() { defer close(runDone); c.Run(ctx) }()
	defer func() { cancel(); <-runDone }()
	if _, err := srv.WaitRegistered(ctx, "dev-oe", 0); err != nil {
		t.Fatal(err)
	}
	o, err := srv.Observe(ctx, "dev-oe", "/5/0/3")
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 15*time.Second)
	defer wcancel()
	srv.Write(wctx, "dev-oe", "/5/0/1", content.Text, []byte(fileURL)) // the answer may be lost to the offline period
	select {
	case err := <-offline:
		if err != nil {
			t.Fatalf("EnterOffline and ExitOffline from OnEvent: %v", err)
		}
	case <-wctx.Done():
		t.Fatal("OnEvent never saw State 1")
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		if c.Status().Registered && strings.Contains(readText(ctx, &world{srv: srv}, "dev-oe", "/5/0/3"), "2") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the download never completed after the offline period; status %+v, notifications %d", c.Status(), o.Count())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// gatedSocket is a socket whose Close waits for a gate: a download that
// winds down slowly (a modem's socket that takes its time to close).
type gatedSocket struct {
	sock.Socket
	gate <-chan struct{}
}

func (s *gatedSocket) Close() error {
	<-s.gate
	return s.Socket.Close()
}

func (s *gatedSocket) Unwrap() sock.Socket { return s.Socket }

// TestHostileResetWaitsOnTheReader: a reset (an empty Package URI) during
// a download used to wait, on the connection's reader, for the download
// to wind down; a download whose socket is slow to close then held up
// every request the server sent meanwhile. Now the write is answered at
// once, the server's next Read too, and the files go once the download
// has let go of them.
func TestHostileResetWaitsOnTheReader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		image := testrig.Bytes(200_000, 6)
		w := newWorld(t, false, image)
		w.asked.Hold(50_000) // the download stays in flight
		gate := make(chan struct{})
		dir := t.TempDir()
		cfg := w.config("dev-r", dir, nil)
		cfg.Firmware.Download.NewSocket = func(network string) (sock.Socket, error) {
			s, err := w.dev.NewSocket(network, nil)
			return &gatedSocket{Socket: s, gate: gate}, err
		}
		c, _ := start(t, cfg)
		ctx := context.Background()
		if _, err := w.srv.WaitRegistered(ctx, "dev-r", 0); err != nil {
			t.Fatal(err)
		}
		want(t, coap.Changed)(w.srv.Write(ctx, "dev-r", "/5/0/1", content.Text, []byte("coap://10.0.0.1:5690/fw.bin")))
		waitFor(t, time.Minute, "no .part", func() bool {
			_, err := os.Stat(filepath.Join(dir, "firmware.bin.part"))
			return err == nil
		})
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		want(t, coap.Changed)(w.srv.Write(rctx, "dev-r", "/5/0/1", content.Text, nil))
		if got := readText(rctx, w, "dev-r", "/3/0/0"); got != "tether" {
			t.Fatalf("a Read after the reset, while the download winds down: %q, want tether", got)
		}
		if got := readText(rctx, w, "dev-r", "/5/0/3"); got != "0" {
			t.Errorf("State %q after the reset, want 0", got)
		}
		close(gate)
		w.asked.Hold(0)
		lwm2m.SettleFirmware(c)
		if m, _ := filepath.Glob(filepath.Join(dir, "firmware.bin*")); len(m) != 0 {
			t.Errorf("files left after the reset: %v", m)
		}
	})
}

// TestHostileFullDiskFirmwareState: with the state folder full, /5's state
// cannot be saved. A Package URI is then answered 2.04 with Result 2 (not
// enough storage) and no download, as Anjay does; a download that
// completes when its state can no longer be saved ends in Idle with
// Result 2 and no image, rather than telling the server Downloaded while
// the disk says Downloading. In every case the file on disk agrees with
// what the server was told, and no temporary file stays.
func TestHostileFullDiskFirmwareState(t *testing.T) {
	full := func(string, []byte, os.FileMode) error { return syscall.ENOSPC }
	synctest.Test(t, func(t *testing.T) {
		image := testrig.Bytes(20_000, 7)
		w := newWorld(t, false, image)
		dir := t.TempDir()
		c, _ := start(t, w.config("dev-f", dir, nil))
		ctx := context.Background()
		if _, err := w.srv.WaitRegistered(ctx, "dev-f", 0); err != nil {
			t.Fatal(err)
		}
		statePath := filepath.Join(dir, "firmware.json")

		// Full before the Package URI.
		lwm2m.SetStateWriter(c, full)
		want(t, coap.Changed)(w.srv.Write(ctx, "dev-f", "/5/0/1", content.Text, []byte("coap://10.0.0.1:5690/fw.bin")))
		if st, res := readText(ctx, w, "dev-f", "/5/0/3"), readText(ctx, w, "dev-f", "/5/0/5"); st != "0" || res != "2" {
			t.Errorf("a Package URI on a full disk: State %s, Result %s; want 0 and 2", st, res)
		}
		if _, err := os.Stat(statePath); !os.IsNotExist(err) {
			t.Errorf("the state file after a refused download: %v, want none (Idle)", err)
		}
		synctest.Wait()
		if w.asked.GETs() != 0 {
			t.Errorf("%d GETs: a download started whose state was not saved", w.asked.GETs())
		}

		// Room again for the start; full once the image is complete.
		lwm2m.SetStateWriter(c, os.WriteFile)
		w.asked.Hold(10_000)
		o, err := w.srv.Observe(ctx, "dev-f", "/5/0/3")
		if err != nil {
			t.Fatal(err)
		}
		want(t, coap.Changed)(w.srv.Write(ctx, "dev-f", "/5/0/1", content.Text, []byte("coap://10.0.0.1:5690/fw.bin")))
		waitState(t, o, "1")
		if b, _ := os.ReadFile(statePath); !strings.Contains(string(b), `"state":1`) {
			t.Fatalf("state file %s, want State 1", b)
		}
		lwm2m.SetStateWriter(c, full)
		w.asked.Hold(0)
		waitState(t, o, "0")
		if res := readText(ctx, w, "dev-f", "/5/0/5"); res != "2" {
			t.Errorf("Result %s after a completed download whose state could not be saved, want 2", res)
		}
		if _, err := os.Stat(statePath); !os.IsNotExist(err) {
			b, _ := os.ReadFile(statePath)
			t.Errorf("the disk says %s while the server was told Idle", b)
		}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if e.Name() != "firmware.lock" {
				t.Errorf("left in the folder: %s", e.Name())
			}
		}
	})
}

// blob is a product's object with one writable opaque resource (a
// certificate, a configuration file): /33000/0/0.
type blob struct {
	mu     sync.Mutex
	value  []byte
	writes int
}

func (b *blob) ID() uint16          { return 33000 }
func (b *blob) Version() string     { return "" }
func (b *blob) Instances() []uint16 { return []uint16{0} }
func (b *blob) Resources(uint16) []lwm2m.ResourceDef {
	return []lwm2m.ResourceDef{{ID: 0, Ops: lwm2m.OpReadWrite, Type: content.Opaque}}
}
func (b *blob) Read(inst, res uint16) ([]content.Record, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return []content.Record{{Path: content.ResourcePath(33000, inst, res), Value: content.OpaqueValue(b.value)}}, nil
}
func (b *blob) Write(_, _ uint16, recs []content.Record) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.value = bytes.Clone(recs[0].Value.Bytes)
	b.writes++
	return nil
}
func (b *blob) Execute(uint16, uint16, []byte) error { return lwm2m.ErrMethodNotAllowed }

func (b *blob) get() ([]byte, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.value, b.writes
}

// TestHostileLargeWrites: a Write larger than a datagram used to be
// dropped without an answer (the reader's buffer is an MTU). Now a
// datagram too large is answered 4.13 with Size1 and a Block1 size that
// fits; the same Write sent block-wise (Block1, RFC 7959) is answered
// 2.31 Continue per block and 2.04 with the last, and the object gets the
// whole value; beyond MaxRequestSize, announced by Size1 or reached, the
// answer is 4.13; a block out of order is 4.08, and a block of another
// request does not mix into the first.
func TestHostileLargeWrites(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		obj := &blob{}
		cfg := w.config("dev-b", t.TempDir(), nil)
		cfg.Objects = []lwm2m.Object{obj}
		cfg.MaxRequestSize = 8 << 10
		start(t, cfg)
		ctx := context.Background()
		if _, err := w.srv.WaitRegistered(ctx, "dev-b", 0); err != nil {
			t.Fatal(err)
		}
		value := testrig.Bytes(5000, 8)
		cf := uintOption(coap.ContentFormat, uint32(content.OpaqueFormat))
		block := func(num uint32, more bool, szx uint8, payload []byte, extra ...coap.Option) *coap.Message {
			opts := append([]coap.Option{cf, uintOption(coap.Block1, coap.Block{Num: num, More: more, SZX: szx}.Value())}, extra...)
			return req(coap.PUT, "/33000/0/0", payload, opts...)
		}
		do := func(m *coap.Message) *coap.Message {
			t.Helper()
			resp, err := w.srv.Do(ctx, "dev-b", m)
			if err != nil {
				t.Fatal(err)
			}
			return resp
		}

		// All at once: too large for the client's buffer.
		resp := do(req(coap.PUT, "/33000/0/0", value, cf))
		b1, ok, _ := coap.GetBlock(resp.Options, coap.Block1, false)
		size1, _ := coap.Uint(resp.Options, coap.Size1)
		if resp.Code != coap.RequestEntityTooLarge || !ok || b1.Size() != 1024 || size1 != 8<<10 {
			t.Fatalf("a 5000-byte Write in one datagram: %v, Block1 %v (%v), Size1 %d; want 4.13, 0/0/1024, 8192",
				coap.CodeString(resp.Code), b1, ok, size1)
		}

		// Block-wise, as the 4.13 suggested.
		n := uint32((len(value) + 1023) / 1024)
		for i := range n {
			chunk := value[i*1024 : min(int(i+1)*1024, len(value))]
			resp := do(block(i, i < n-1, 6, chunk))
			want := coap.Continue
			if i == n-1 {
				want = coap.Changed
			}
			echo, ok, _ := coap.GetBlock(resp.Options, coap.Block1, false)
			if resp.Code != want || !ok || echo.Num != i || echo.More != (i < n-1) {
				t.Fatalf("block %d: %v with Block1 %v (%v), want %v echoing the block", i, coap.CodeString(resp.Code), echo, ok, coap.CodeString(want))
			}
		}
		if got, writes := obj.get(); !bytes.Equal(got, value) || writes != 1 {
			t.Fatalf("the object got %d bytes in %d writes, want the %d bytes in one", len(got), writes, len(value))
		}

		// Out of order, and beyond the bound.
		if resp := do(block(2, true, 6, value[:1024])); resp.Code != coap.RequestEntityIncomplete {
			t.Errorf("block 2 with no block 0: %v, want 4.08", coap.CodeString(resp.Code))
		}
		if resp := do(block(0, true, 6, value[:1024], uintOption(coap.Size1, 100_000))); resp.Code != coap.RequestEntityTooLarge {
			t.Errorf("Size1 100000 over a bound of 8192: %v, want 4.13", coap.CodeString(resp.Code))
		}
		big := testrig.Bytes(9<<10, 9)
		var last *coap.Message
		for i := uint32(0); i < 9; i++ {
			last = do(block(i, i < 8, 6, big[i*1024:(i+1)*1024]))
			if last.Code != coap.Continue {
				break
			}
		}
		if last.Code != coap.RequestEntityTooLarge {
			t.Errorf("9 KiB block by block over a bound of 8 KiB: %v, want 4.13", coap.CodeString(last.Code))
		}
		// Two requests interleaved: the second's block 1 is not the first's.
		do(block(0, true, 6, value[:1024]))
		other := req(coap.PUT, "/33000/0/0", value[1024:2048], cf, uintOption(coap.Block1, coap.Block{Num: 1, More: true, SZX: 6}.Value()),
			coap.Option{ID: coap.URIQuery, Value: []byte("x")})
		if resp := do(other); resp.Code != coap.RequestEntityIncomplete {
			t.Errorf("a block of another request: %v, want 4.08", coap.CodeString(resp.Code))
		}
		if _, writes := obj.get(); writes != 1 {
			t.Errorf("%d writes, want only the whole one", writes)
		}
	})
}

// TestHostileOptions: a critical option the client does not know was
// ignored and the request answered 2.05 as if it were not there (RFC 7252
// 5.4.1: 4.02 Bad Option); a proxy request is 5.05 (5.10.2); elective
// options the client does not know are ignored.
func TestHostileOptions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		start(t, w.config("dev-o", t.TempDir(), nil))
		ctx := context.Background()
		if _, err := w.srv.WaitRegistered(ctx, "dev-o", 0); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name string
			opt  coap.Option
			code coap.Code
		}{
			{"If-Match (1)", coap.Option{ID: coap.IfMatch, Value: []byte{1}}, coap.BadOption},
			{"If-None-Match (5)", coap.Option{ID: coap.IfNoneMatch}, coap.BadOption},
			{"OSCORE (9)", coap.Option{ID: 9}, coap.BadOption},
			{"Q-Block2 (31)", coap.Option{ID: 31}, coap.BadOption},
			{"an unregistered critical 2049", coap.Option{ID: 2049, Value: []byte("x")}, coap.BadOption},
			{"Proxy-Uri (35)", coap.Option{ID: 35, Value: []byte("coap://x/")}, coap.ProxyingNotSupported},
			{"Block2 1", uintOption(coap.Block2, coap.Block{Num: 1, SZX: 6}.Value()), coap.BadOption},
			{"an unregistered elective 2048", coap.Option{ID: 2048, Value: []byte("x")}, coap.Content},
			{"No-Response (258, elective)", coap.Option{ID: 258}, coap.Content},
			{"Uri-Host (3)", coap.Option{ID: coap.URIHost, Value: []byte("dev")}, coap.Content},
			{"Block2 0", uintOption(coap.Block2, coap.Block{Num: 0, SZX: 6}.Value()), coap.Content},
		}
		for _, tc := range tests {
			resp, err := w.srv.Do(ctx, "dev-o", req(coap.GET, "/3/0/0", nil, tc.opt))
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if resp.Code != tc.code {
				t.Errorf("%s: %v (%q), want %v", tc.name, coap.CodeString(resp.Code), resp.Payload, coap.CodeString(tc.code))
			}
		}
	})
}

// TestHostileReplaceWrite: a replace-Write of /1/0 (PUT on the instance)
// kept the optional resources it did not carry; it now resets them (LwM2M
// 1.1 6.3.3), refuses one without a mandatory resource before writing
// anything, and a partial update (POST) keeps what it does not carry.
func TestHostileReplaceWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		start(t, w.config("dev-w", t.TempDir(), nil))
		ctx := context.Background()
		if _, err := w.srv.WaitRegistered(ctx, "dev-w", 0); err != nil {
			t.Fatal(err)
		}
		senml := func(s string) []byte { return []byte(s) }
		want(t, coap.Changed)(w.srv.WritePartial(ctx, "dev-w", "/1/0", content.SenMLJSON,
			senml(`[{"bn":"/1/0/","n":"2","v":5},{"n":"3","v":60},{"n":"6","vb":false}]`)))
		if got := readText(ctx, w, "dev-w", "/1/0/2") + "," + readText(ctx, w, "dev-w", "/1/0/3") + "," + readText(ctx, w, "dev-w", "/1/0/6"); got != "5,60,0" {
			t.Fatalf("after the partial update: %s, want 5,60,0", got)
		}
		want(t, coap.BadRequest)(w.srv.Write(ctx, "dev-w", "/1/0", content.SenMLJSON, senml(`[{"bn":"/1/0/","n":"1","v":700}]`)))
		if got := readText(ctx, w, "dev-w", "/1/0/1"); got != "600" {
			t.Errorf("a refused replace (no Binding) changed the lifetime to %s", got)
		}
		want(t, coap.Changed)(w.srv.Write(ctx, "dev-w", "/1/0", content.SenMLJSON,
			senml(`[{"bn":"/1/0/","n":"1","v":700},{"n":"7","vs":"U"},{"n":"3","v":30}]`)))
		got := readText(ctx, w, "dev-w", "/1/0/1") + "," + readText(ctx, w, "dev-w", "/1/0/2") + "," +
			readText(ctx, w, "dev-w", "/1/0/3") + "," + readText(ctx, w, "dev-w", "/1/0/6")
		if got != "700,0,30,1" {
			t.Errorf("after the replace: lifetime, pmin, pmax, storing = %s, want 700,0,30,1 (pmin and storing reset)", got)
		}
	})
}

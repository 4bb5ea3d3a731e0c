package lwm2m_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/peer"
	"github.com/tether-iot/tether/lwm2m"
	"github.com/tether-iot/tether/lwm2m/content"
	"github.com/tether-iot/tether/lwm2m/lwm2mtest"
)

// bsServer is a bootstrap server for the tests, on the world's server host
// at port 5685: it answers each Bootstrap-Request 2.04 and then sends the
// requests script returns for that request (the nth, from 0), one after
// the other, recording each answer.
type bsServer struct {
	t      *testing.T
	pc     net.PacketConn
	script func(n int) []*coap.Message

	mu       sync.Mutex
	requests int
	answers  []*coap.Message
	peers    map[string]*peer.Peer
	wg       sync.WaitGroup
}

const bsURL = "coap://10.0.0.1:5685"

func newBSServer(t *testing.T, w *world, script func(n int) []*coap.Message) *bsServer {
	t.Helper()
	pc, err := w.host.ListenPacket("udp", ":5685")
	if err != nil {
		t.Fatal(err)
	}
	return newBSServerOn(t, pc, script)
}

// newBSServerOn is newBSServer on pc.
func newBSServerOn(t *testing.T, pc net.PacketConn, script func(n int) []*coap.Message) *bsServer {
	t.Helper()
	s := &bsServer{t: t, pc: pc, script: script, peers: map[string]*peer.Peer{}}
	done := make(chan struct{})
	go s.read(done)
	t.Cleanup(func() {
		pc.Close()
		<-done
		s.mu.Lock()
		for _, p := range s.peers {
			p.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *bsServer) read(done chan struct{}) {
	defer close(done)
	buf := make([]byte, 2048)
	for {
		n, addr, err := s.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		s.mu.Lock()
		p := s.peers[addr.String()]
		if p == nil {
			p = peer.New(func(b []byte) error { _, err := s.pc.WriteTo(b, addr); return err }, &peer.Config{
				Handler: func(req *coap.Message) coap.Message { return s.handle(addr.String(), req) },
			})
			s.peers[addr.String()] = p
		}
		s.mu.Unlock()
		p.Input(buf[:n])
	}
}

// handle answers a Bootstrap-Request and starts its script.
func (s *bsServer) handle(addr string, req *coap.Message) coap.Message {
	if req.Code != coap.POST || strings.Join(uriPath(req), "/") != "bs" {
		return coap.Message{Code: coap.NotFound}
	}
	s.mu.Lock()
	n := s.requests
	s.requests++
	p := s.peers[addr]
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for _, m := range s.script(n) {
			sortOpts(m.Options)
			resp, err := p.Do(context.Background(), m)
			if err != nil {
				return
			}
			s.mu.Lock()
			s.answers = append(s.answers, resp)
			s.mu.Unlock()
		}
	}()
	return coap.Message{Code: coap.Changed}
}

func (s *bsServer) stats() (requests int, answers []*coap.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests, append([]*coap.Message(nil), s.answers...)
}

// provision is what a bootstrap server sends to give a client one NoSec
// server at uri: delete everything, write /0/1 and /1/1, discover, read
// /1, finish.
func provision(uri string, lifetime int64) []*coap.Message {
	sec := []content.Record{
		{Path: content.ResourcePath(0, 1, 0), Value: content.StringValue(uri)},
		{Path: content.ResourcePath(0, 1, 1), Value: content.BoolValue(false)},
		{Path: content.ResourcePath(0, 1, 2), Value: content.IntValue(3)},
		{Path: content.ResourcePath(0, 1, 10), Value: content.IntValue(1)},
	}
	srv := []content.Record{
		{Path: content.ResourcePath(1, 1, 0), Value: content.IntValue(1)},
		{Path: content.ResourcePath(1, 1, 1), Value: content.IntValue(lifetime)},
		{Path: content.ResourcePath(1, 1, 7), Value: content.StringValue("U")},
	}
	secTLV, _ := content.Encode(content.TLV, content.InstancePath(0, 1), sec)
	srvJSON, _ := content.Encode(content.SenMLJSON, content.InstancePath(1, 1), srv)
	return []*coap.Message{
		req(coap.DELETE, "/", nil),
		req(coap.PUT, "/0/1", secTLV, uintOption(coap.ContentFormat, uint32(content.TLV))),
		req(coap.PUT, "/1/1", srvJSON, uintOption(coap.ContentFormat, uint32(content.SenMLJSON))),
		req(coap.GET, "/", nil, uintOption(17, uint32(content.LinkFormat))),
		req(coap.GET, "/1", nil),
		req(coap.POST, "/bs", nil),
	}
}

// TestBootstrap: a client with no server asks the bootstrap server, which
// deletes, writes /0 and /1, discovers, reads /1 and finishes; the client
// registers with the server it was given, with the lifetime /1 says. The
// account is kept (0600) and a restarted client registers with it without
// asking again.
func TestBootstrap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		bs := newBSServer(t, w, func(int) []*coap.Message { return provision("coap://10.0.0.1:5683", 300) })
		state := t.TempDir()
		cfg := w.config("dev-bs", t.TempDir(), nil)
		cfg.ServerURL = ""
		cfg.Bootstrap = &lwm2m.Bootstrap{URL: bsURL, StateDir: state}
		c, stop := start(t, cfg)
		ctx := context.Background()
		reg, err := w.srv.WaitRegistered(ctx, "dev-bs", 0)
		if err != nil {
			t.Fatal(err)
		}
		if reg.Lifetime != 300*time.Second {
			t.Errorf("registered with lifetime %v, want the bootstrapped 300 s", reg.Lifetime)
		}
		synctest.Wait() // the bootstrap server records the Finish's answer
		n, answers := bs.stats()
		var codes []string
		for _, a := range answers {
			codes = append(codes, coap.CodeString(a.Code))
		}
		want := []string{"2.02 Deleted", "2.04 Changed", "2.04 Changed", "2.05 Content", "2.05 Content", "2.04 Changed"}
		if n != 1 || strings.Join(codes, ",") != strings.Join(want, ",") {
			t.Errorf("%d Bootstrap-Requests; answers %v, want 1 and %v", n, codes, want)
		}
		if len(answers) >= 4 {
			disc := string(answers[3].Payload)
			if !strings.Contains(disc, `</0/1>;ssid=1;uri="coap://10.0.0.1:5683"`) || !strings.Contains(disc, "</1/1>;ssid=1") || !strings.Contains(disc, "</3/0>") {
				t.Errorf("Bootstrap-Discover: %s", disc)
			}
		}
		// /1's instance is the one the bootstrap server wrote, /1/1.
		if got := readText(ctx, w, "dev-bs", "/1/1/1"); got != "300" {
			t.Errorf("/1/1/1 %q, want 300", got)
		}
		fi, err := os.Stat(filepath.Join(state, "bootstrap.json"))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("bootstrap.json: %v %v, want mode 0600", fi, err)
		}
		stop()
		_ = c

		// A restart: registers with the kept account, asks nothing.
		before := w.srv.Stats().Registers
		start(t, cfg)
		if _, err := w.srv.WaitRegistered(ctx, "dev-bs", before); err != nil {
			t.Fatal(err)
		}
		if n, _ := bs.stats(); n != 1 {
			t.Errorf("%d Bootstrap-Requests after the restart, want still 1", n)
		}
	})
}

// TestBootstrapFinishChecks: a Bootstrap-Finish with no usable account
// (no /1 for the /0's Short Server ID) is answered 4.06, and the client
// asks again after its back-off.
func TestBootstrapFinishChecks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		bs := newBSServer(t, w, func(n int) []*coap.Message {
			msgs := provision("coap://10.0.0.1:5683", 300)
			if n == 0 {
				msgs = append(msgs[:2], msgs[5]) // no /1
			}
			return msgs
		})
		cfg := w.config("dev-bf", t.TempDir(), nil)
		cfg.ServerURL = ""
		cfg.Bootstrap = &lwm2m.Bootstrap{URL: bsURL, StateDir: t.TempDir(), Timeout: time.Minute}
		start(t, cfg)
		if _, err := w.srv.WaitRegistered(context.Background(), "dev-bf", 0); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		n, answers := bs.stats()
		if n != 2 || len(answers) < 3 || answers[2].Code != coap.NotAcceptable {
			t.Errorf("%d requests; first Finish answered %v, want 2 requests and 4.06", n, answers)
		}
	})
}

// TestBootstrapOnRegistrationFailure: a server that never answers makes
// the client bootstrap again after Communication Retry Count (5) failed
// Registers, and the new account's server is registered with.
func TestBootstrapOnRegistrationFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		bs := newBSServer(t, w, func(n int) []*coap.Message {
			if n == 0 {
				return provision("coap://10.0.0.1:5699", 300) // nobody there
			}
			return provision("coap://10.0.0.1:5683", 300)
		})
		cfg := w.config("dev-bo", t.TempDir(), nil)
		cfg.ServerURL = ""
		cfg.RetryDelay, cfg.MaxRetryDelay = time.Second, time.Second
		cfg.Bootstrap = &lwm2m.Bootstrap{URL: bsURL, StateDir: t.TempDir()}
		start(t, cfg)
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		if _, err := w.srv.WaitRegistered(ctx, "dev-bo", 0); err != nil {
			t.Fatal(err)
		}
		if n, _ := bs.stats(); n != 2 {
			t.Errorf("%d Bootstrap-Requests, want 2", n)
		}
	})
}

// TestBootstrapConfig: what New refuses.
func TestBootstrapConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  lwm2m.Config
	}{
		{"no server at all", lwm2m.Config{Endpoint: "x"}},
		{"no StateDir", lwm2m.Config{Endpoint: "x", Bootstrap: &lwm2m.Bootstrap{URL: "coap://127.0.0.1"}}},
		{"coaps without credentials", lwm2m.Config{Endpoint: "x", Bootstrap: &lwm2m.Bootstrap{URL: "coaps://127.0.0.1", StateDir: t.TempDir()}}},
		{"http", lwm2m.Config{Endpoint: "x", Bootstrap: &lwm2m.Bootstrap{URL: "http://127.0.0.1", StateDir: t.TempDir()}}},
	} {
		if _, err := lwm2m.New(tc.cfg); !errors.Is(err, lwm2m.ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", tc.name, err)
		}
	}
}

// TestBootstrapOnLoopback: the bootstrap story on the production sockets:
// a bootstrap server on loopback provisions a NoSec server and a coap+tcp
// one, also on loopback; the client registers with both and is read over
// each; Stop deregisters from both.
func TestBootstrapOnLoopback(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	udpSrv, err := lwm2mtest.NewServer(pc, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer udpSrv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcpSrv, err := lwm2mtest.NewTCPServer(ln, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tcpSrv.Close()
	bpc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ms := provisionTwo("coap://"+pc.LocalAddr().String(), "coap+tcp://"+ln.Addr().String())
	bs := newBSServerOn(t, bpc, func(int) []*coap.Message { return ms })

	w := &world{t: t}
	cfg := w.config("dev-bslo", t.TempDir(), nil)
	cfg.NewSocket = nil // the production sockets
	cfg.ServerURL = ""
	cfg.Bootstrap = &lwm2m.Bootstrap{URL: "coap://" + bpc.LocalAddr().String(), StateDir: t.TempDir()}
	c, _ := start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i, s := range []*lwm2mtest.Server{udpSrv, tcpSrv} {
		if _, err := s.WaitRegistered(ctx, "dev-bslo", 0); err != nil {
			t.Fatalf("server %d: %v", i+1, err)
		}
		if got := text(t)(s.Read(ctx, "dev-bslo", "/3/0/0")); got != "tether" {
			t.Errorf("server %d: /3/0/0 %q", i+1, got)
		}
	}
	if reg, _ := tcpSrv.Registration("dev-bslo"); reg.Binding != "T" {
		t.Errorf("the TCP server's registration %+v, want binding T", reg)
	}
	if n, _ := bs.stats(); n != 1 {
		t.Errorf("%d Bootstrap-Requests", n)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for i, s := range []*lwm2mtest.Server{udpSrv, tcpSrv} {
		if err := s.WaitDeregistered(ctx, "dev-bslo"); err != nil {
			t.Errorf("server %d: %v", i+1, err)
		}
	}
}

package download_test

import (
	"crypto/sha256"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pion/dtls/v3"

	"github.com/tether-iot/tether/coap/fileserver"
	"github.com/tether-iot/tether/download"
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/internal/testrig/coaprig"
	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/simnet"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// memSink is an io.WriterAt in memory.
type memSink struct {
	mu  sync.Mutex
	buf []byte
}

func (m *memSink) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if end := int(off) + len(p); end > len(m.buf) {
		m.buf = append(m.buf, make([]byte, end-len(m.buf))...)
	}
	copy(m.buf[off:], p)
	return len(p), nil
}

func (m *memSink) Truncate(n int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.buf = m.buf[:n]
	return nil
}

func (m *memSink) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.buf)
}

func (m *memSink) sum() [32]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return sha256.Sum256(m.buf)
}

// offlineCycles takes transport tr offline n times during a download,
// each time after every more blocks, for off each time. Its progress
// method is the download's Options.Progress: the cycles are counted in
// blocks, not in time, so a fast machine runs exactly as many as a slow
// one.
type offlineCycles struct {
	c     *download.Controller
	tr    download.Transport
	n     int
	every int
	off   time.Duration

	mu   sync.Mutex
	ran  int
	seen int // blocks at the last call: Progress also reports phase changes
}

func (o *offlineCycles) progress(p download.Progress) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ran >= o.n || p.Blocks == o.seen || p.Blocks%o.every != 0 {
		return
	}
	o.seen = p.Blocks
	o.ran++
	o.c.EnterOffline(o.tr)
	time.AfterFunc(o.off, func() { o.c.ExitOffline(o.tr) })
}

// cycles returns the offline cycles run so far.
func (o *offlineCycles) cycles() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.ran
}

// dtlsFileServer serves data as /fw.bin from tether's file server behind a
// pion DTLS listener on loopback configured by opts, until the test ends,
// and returns the listener's host:port.
func dtlsFileServer(t testing.TB, data []byte, opts ...dtls.ServerOption) string {
	t.Helper()
	srv, err := fileserver.New(testrig.File(t, "fw.bin", data), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ln, err := dtls.ListenWithOptions("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeDatagramListener(ln)
	return ln.Addr().String()
}

// server is a file server on a simulated host, restartable, logging the
// blocks it is asked for (coaprig.Requests, kept across restarts).
type server struct {
	t    testing.TB
	host *simnet.Host
	dir  string
	*coaprig.Requests

	life sync.Mutex // guards srv, opts and wrap: tests restart the server from timers
	srv  *fileserver.Server
	pc   net.PacketConn
	ln   net.Listener
	opts *fileserver.Options                 // for the next start
	wrap func(net.PacketConn) net.PacketConn // for the next start: a hostile side
}

func newServer(t testing.TB, h *simnet.Host, name string, data []byte) *server {
	t.Helper()
	s := &server{t: t, host: h, dir: t.TempDir(), Requests: new(coaprig.Requests)}
	s.write(name, data)
	s.start()
	t.Cleanup(s.stop)
	return s
}

// write writes data as name, and gives its size to the log of requests.
func (s *server) write(name string, data []byte) {
	if err := os.WriteFile(filepath.Join(s.dir, name), data, 0o644); err != nil {
		s.t.Fatal(err)
	}
	s.SetSize(len(data))
}

func (s *server) start() {
	s.life.Lock()
	defer s.life.Unlock()
	srv, err := fileserver.New(s.dir, s.opts)
	if err != nil {
		s.t.Fatal(err)
	}
	pc, err := s.host.ListenPacket("udp", ":5683")
	if err != nil {
		s.t.Fatal(err)
	}
	ln, err := s.host.Listen("tcp", ":5683")
	if err != nil {
		s.t.Fatal(err)
	}
	served := s.Conn(pc)
	if s.wrap != nil {
		served = s.wrap(served)
	}
	go srv.ServeUDP(served)
	go srv.ServeTCP(ln)
	s.srv, s.pc, s.ln = srv, pc, ln
}

func (s *server) stop() {
	s.life.Lock()
	defer s.life.Unlock()
	if s.srv != nil {
		s.srv.Close()
		s.pc.Close() // now, even if a Serve goroutine has not started yet
		s.ln.Close()
		s.srv = nil
	}
}

// restart stops the server and starts it again with opts.
func (s *server) restart(opts *fileserver.Options) {
	s.stop()
	s.life.Lock()
	s.opts = opts
	s.life.Unlock()
	s.start()
}

// serving is the usual world: a file server for data as fw.bin on host a
// (10.0.0.1), known as fw.sim, and a device whose link delays each
// datagram by delay.
func serving(t testing.TB, data []byte, delay time.Duration) (world, *server) {
	t.Helper()
	w := newWorld(1)
	a := newServer(t, w.n.AddHost("a", "10.0.0.1"), "fw.bin", data)
	w.name("fw.sim", "10.0.0.1")
	w.dev.SetLink(simnet.LinkConfig{Delay: delay})
	return w, a
}

// world is a device and servers on a simulated network.
type world struct {
	n   *simnet.Network
	dev *simnet.Host
}

func newWorld(seed uint64) world {
	n := simnet.New(seed)
	return world{n: n, dev: n.AddHost("device", "10.0.0.2")}
}

func (w world) name(name string, addrs ...string) {
	var as []netip.Addr
	for _, a := range addrs {
		as = append(as, netip.MustParseAddr(a))
	}
	w.n.DNS().Set(name, as...)
}

// socket is the download's socket factory on the device.
func (w world) socket(network string) (sock.Socket, error) {
	return w.dev.NewSocket(network, nil)
}

//go:build linux

package netsock_test

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/netsock"
	"golang.org/x/sys/unix"
)

// wait is how long a test waits for something that must happen: long
// enough for a loaded machine under -race, never part of what passes.
const wait = 10 * time.Second

// counter is a notify function that counts its calls and signals each on
// a channel without blocking, as the contract asks of f.
type counter struct {
	calls atomic.Int32
	ch    chan struct{}
}

func newCounter() *counter { return &counter{ch: make(chan struct{}, 1)} }

func (c *counter) f() {
	c.calls.Add(1)
	select {
	case c.ch <- struct{}{}:
	default:
	}
}

// await waits for a call not yet awaited.
func (c *counter) await(t testing.TB, what string) {
	t.Helper()
	select {
	case <-c.ch:
	case <-time.After(wait):
		t.Fatalf("no notification in %v: %s", wait, what)
	}
}

// udpPeer is a plain UDP socket on loopback that sends to the socket under
// test.
func udpPeer(t testing.TB, network string) *net.UDPConn {
	t.Helper()
	host := "127.0.0.1"
	if network == "udp6" {
		host = "::1"
	}
	pc, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(host), 0)))
	if err != nil {
		t.Skipf("no %s loopback here: %v", network, err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

func connectTo(t testing.TB, s *netsock.Socket, pc *net.UDPConn) {
	t.Helper()
	a := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	if err := s.Connect(ctx(t), a.Addr().String(), strconv.Itoa(int(a.Port()))); err != nil {
		t.Fatal(err)
	}
}

// sendTo sends k datagrams from pc to the socket's local address.
func sendTo(t testing.TB, pc *net.UDPConn, s *netsock.Socket, k int) {
	t.Helper()
	to := s.Association().Local
	if to.Addr().IsUnspecified() {
		to = netip.AddrPortFrom(pc.LocalAddr().(*net.UDPAddr).AddrPort().Addr(), to.Port())
	}
	for range k {
		if _, err := pc.WriteToUDPAddrPort([]byte("x"), to); err != nil {
			t.Fatal(err)
		}
	}
}

// drain receives with a zero timeout until the queue is empty, as an owner
// told of data does, and returns how many datagrams it read.
func drain(t testing.TB, s *netsock.Socket) int {
	t.Helper()
	s.SetReceiveTimeout(0)
	buf := make([]byte, 64)
	for k := 0; ; k++ {
		if _, err := s.Receive(buf); err != nil {
			if !sock.IsTimeout(err) {
				t.Fatal(err)
			}
			return k
		}
	}
}

// waitReadable waits, with poll(2) and without reading, until the socket
// has data queued, so a test knows a datagram arrived without timing.
func waitReadable(t testing.TB, s *netsock.Socket) {
	t.Helper()
	rc, err := s.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var (
		n    int
		perr error
	)
	if err := rc.Control(func(fd uintptr) {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			if n, perr = unix.Poll(pfd, int(wait/time.Millisecond)); perr != unix.EINTR {
				return
			}
		}
	}); err != nil || perr != nil || n != 1 {
		t.Fatalf("socket not readable in %v: %v %v", wait, err, perr)
	}
}

// fence returns once the poller has delivered an event that happened after
// everything before the call: a second socket's datagram.
func fence(t testing.TB) {
	t.Helper()
	pc := udpPeer(t, "udp4")
	s := newSocket(t, "udp4", nil)
	connectTo(t, s, pc)
	c := newCounter()
	s.NotifyRead(c.f)
	sendTo(t, pc, s, 1)
	c.await(t, "the fence's datagram")
	s.Close()
}

// TestNotifyRead follows simnet's TestNotifyRead over real sockets: one call
// for a burst drained whole, a call at once when data waits, none after
// NotifyRead(nil), and calls again on the new descriptor after Shutdown and
// Connect, and after Bind and a connect in place.
func TestNotifyRead(t *testing.T) {
	for _, network := range []string{"udp4", "udp6"} {
		t.Run(network, func(t *testing.T) {
			pc := udpPeer(t, network)
			s := newSocket(t, network, nil)
			c := newCounter()
			s.NotifyRead(c.f) // set before Connect: it stays set
			connectTo(t, s, pc)

			// A burst: one call, and none more until the owner has seen
			// the queue empty (the registration is one-shot).
			sendTo(t, pc, s, 3)
			c.await(t, "a burst of 3")
			if got := c.calls.Load(); got != 1 {
				t.Errorf("%d calls before the first drain, want 1", got)
			}
			got, drains := drain(t, s), 1
			for got < 3 { // the rest of the burst came after the drain began
				c.await(t, "the rest of the burst")
				got += drain(t, s)
				drains++
			}
			if got != 3 {
				t.Errorf("drained %d, want 3", got)
			}
			if calls := int(c.calls.Load()); calls > drains {
				t.Errorf("%d calls for %d drains: a call came while the queue was not seen empty", calls, drains)
			}

			// Data waits when a function is set: it is called at once.
			s.NotifyRead(nil)
			sendTo(t, pc, s, 1)
			waitReadable(t, s)
			fence(t)
			before := c.calls.Load()
			c2 := newCounter()
			s.NotifyRead(c2.f)
			c2.await(t, "data that waited when NotifyRead was called")
			if got := drain(t, s); got != 1 {
				t.Errorf("drained %d, want 1", got)
			}
			if c.calls.Load() != before {
				t.Error("the replaced function was called")
			}

			// NotifyRead(nil): no call, though data arrives.
			s.NotifyRead(nil)
			sendTo(t, pc, s, 1)
			waitReadable(t, s)
			fence(t)
			if got := c2.calls.Load(); got != 1 {
				t.Errorf("%d calls, want 1: called after NotifyRead(nil)", got)
			}
			drain(t, s)

			// Shutdown, then Connect: a new descriptor (quite likely with
			// the old number), watched with the function set before.
			c3 := newCounter()
			s.NotifyRead(c3.f)
			oldPort := s.Association().Local.Port()
			if err := s.Shutdown(); err != nil {
				t.Fatal(err)
			}
			connectTo(t, s, pc)
			if s.Association().Local.Port() == oldPort {
				t.Fatal("Connect after Shutdown kept the port: not a new OS socket")
			}
			sendTo(t, pc, s, 1)
			c3.await(t, "a datagram after Shutdown and Connect")
			if got := drain(t, s); got != 1 {
				t.Errorf("drained %d, want 1", got)
			}

			// Bind, then connect in place (same descriptor, Linux).
			if err := s.Bind(ctx(t), "", "0"); err != nil {
				t.Fatal(err)
			}
			sendTo(t, pc, s, 1)
			c3.await(t, "a datagram to the bound socket")
			drain(t, s)
			connectTo(t, s, pc)
			sendTo(t, pc, s, 1)
			c3.await(t, "a datagram after a connect in place")
			drain(t, s)

			// Close, then Connect: the function is still set.
			s.Close()
			connectTo(t, s, pc)
			sendTo(t, pc, s, 1)
			c3.await(t, "a datagram after Close and Connect")
			drain(t, s)
			if got := c2.calls.Load(); got != 1 {
				t.Errorf("an earlier function was called again (%d calls)", got)
			}
		})
	}
}

// TestNotifyReadKeepsReceiveWorking: the socket is in the poller's epoll
// set as well as in the runtime's; Receive with a timeout still waits for
// data and still times out.
func TestNotifyReadKeepsReceiveWorking(t *testing.T) {
	pc := udpPeer(t, "udp4")
	s := newSocket(t, "udp4", nil)
	connectTo(t, s, pc)
	c := newCounter()
	s.NotifyRead(c.f)
	buf := make([]byte, 16)

	s.SetReceiveTimeout(wait)
	sent := make(chan error, 1)
	go func() { // while Receive waits
		_, err := pc.WriteToUDPAddrPort([]byte("x"), s.Association().Local)
		sent <- err
	}()
	if n, err := s.Receive(buf); err != nil || n != 1 {
		t.Fatalf("Receive with a timeout, notify set: %d, %v", n, err)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	s.SetReceiveTimeout(10 * time.Millisecond)
	if _, err := s.Receive(buf); !sock.IsTimeout(err) {
		t.Fatalf("Receive with nothing to read: %v, want a timeout", err)
	}
	s.SetReceiveTimeout(-1)
	sendTo(t, pc, s, 1)
	if n, err := s.Receive(buf); err != nil || n != 1 {
		t.Fatalf("blocking Receive, notify set: %d, %v", n, err)
	}
	// Those Receives may have taken the datagrams before the poller
	// looked (it checks readiness again and reports nothing then) or
	// after (one call, which may come after the Receive with a timeout:
	// an owner drains after each call, so the test drains once more
	// after it). Then the next datagram is told of.
	drain(t, s)
	fence(t) // a call for the datagrams above, if any, is over
	drain(t, s)
	before := c.calls.Load()
	sendTo(t, pc, s, 1)
	deadline := time.Now().Add(wait)
	for c.calls.Load() == before {
		if time.Now().After(deadline) {
			t.Fatalf("no notification in %v after a drain", wait)
		}
		select {
		case <-c.ch:
		case <-time.After(time.Millisecond):
		}
	}
}

// TestNotifyReadTCPIgnored: a TCP socket keeps the function and never
// calls it.
func TestNotifyReadTCPIgnored(t *testing.T) {
	peer := echoPeer(t, "tcp4")
	s := newSocket(t, "tcp4", nil)
	c := newCounter()
	s.NotifyRead(c.f)
	if err := s.Connect(ctx(t), peer.Addr().String(), strconv.Itoa(int(peer.Port()))); err != nil {
		t.Fatal(err)
	}
	if err := s.Send([]byte("echo")); err != nil {
		t.Fatal(err)
	}
	s.SetReceiveTimeout(wait)
	if _, err := s.Receive(make([]byte, 8)); err != nil {
		t.Fatal(err)
	}
	fence(t)
	if got := c.calls.Load(); got != 0 {
		t.Fatalf("%d calls on a TCP socket", got)
	}
}

// idleSockets opens n UDP sockets connected to a loopback peer, each with
// a notify function, and returns them.
func idleSockets(tb testing.TB, n int, pc *net.UDPConn) []*netsock.Socket {
	tb.Helper()
	f := func() {}
	ss := make([]*netsock.Socket, 0, n)
	tb.Cleanup(func() {
		for _, s := range ss {
			s.Close()
		}
	})
	for range n {
		s, err := netsock.New("udp4", nil)
		if err != nil {
			tb.Fatal(err)
		}
		ss = append(ss, s)
		s.NotifyRead(f)
		connectTo(tb, s, pc)
	}
	return ss
}

// settledGoroutines waits until no more than want goroutines run, for
// goroutines that are ending (the poller after its last socket, a
// previous test's peers), and returns the count.
func settledGoroutines(want int) int {
	deadline := time.Now().Add(wait)
	for {
		n := runtime.NumGoroutine()
		if n <= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(time.Millisecond)
	}
}

// TestIdleSocketsHoldNoGoroutine: a thousand idle sockets with a notify
// function add one goroutine, the poller, which ends with the last of them.
func TestIdleSocketsHoldNoGoroutine(t *testing.T) {
	pc := udpPeer(t, "udp4")
	before := runtime.NumGoroutine()
	ss := idleSockets(t, 1000, pc)
	if after := runtime.NumGoroutine(); after > before+1 {
		t.Fatalf("%d goroutines with 1000 idle sockets, %d before: want at most one more (the poller)", after, before)
	}
	// They all still work: each told of a datagram.
	var calls atomic.Int32
	all := make(chan struct{})
	for _, s := range ss {
		s.NotifyRead(func() {
			if calls.Add(1) == int32(len(ss)) {
				close(all)
			}
		})
		sendTo(t, pc, s, 1)
	}
	select {
	case <-all:
	case <-time.After(wait):
		t.Fatalf("%d of %d sockets told of their datagram in %v", calls.Load(), len(ss), wait)
	}
	for _, s := range ss {
		s.NotifyRead(nil) // returns once the call for s is over
		s.Close()
	}
	if n := settledGoroutines(before); n > before {
		t.Fatalf("%d goroutines after closing the sockets, %d before: the poller did not end", n, before)
	}
}

// TestNotifyReadRace sets and clears the function while the socket
// connects, binds, shuts down and closes and datagrams arrive, for -race;
// a function is never called after the NotifyRead(nil) that removed it
// returned.
func TestNotifyReadRace(t *testing.T) {
	pc := udpPeer(t, "udp4")
	s := newSocket(t, "udp4", nil)
	connectTo(t, s, pc)
	const rounds = 300
	var (
		bounded, wg sync.WaitGroup // rounds; until told
		late        atomic.Int32
		calls       atomic.Int32
		stop        = make(chan struct{})
		kick        = make(chan struct{}, 1)
	)
	bounded.Add(2)
	wg.Add(2)
	go func() { // the owner's function, set and cleared
		defer bounded.Done()
		for range rounds {
			var live atomic.Bool
			live.Store(true)
			called := make(chan struct{}, 1)
			s.NotifyRead(func() {
				if !live.Load() {
					late.Add(1)
				}
				calls.Add(1)
				for _, ch := range []chan struct{}{kick, called} {
					select {
					case ch <- struct{}{}:
					default:
					}
				}
			})
			select { // let a datagram be told of, mostly (how many is no part of the test)
			case <-called:
			case <-time.After(time.Millisecond):
			}
			s.NotifyRead(nil)
			live.Store(false)
		}
	}()
	go func() { // the owner's reader, on each call
		defer wg.Done()
		buf := make([]byte, 64)
		for {
			select {
			case <-stop:
				return
			case <-kick:
			}
			s.SetReceiveTimeout(0)
			for {
				if _, err := s.Receive(buf); err != nil {
					break
				}
			}
		}
	}()
	go func() { // the OS socket replaced under it
		defer bounded.Done()
		a := pc.LocalAddr().(*net.UDPAddr).AddrPort()
		host, port := a.Addr().String(), strconv.Itoa(int(a.Port()))
		for i := range rounds {
			var err error
			switch i % 4 {
			case 0:
				err = s.Shutdown()
			case 1:
				err = s.Close()
			case 2:
				err = s.Bind(ctx(t), "127.0.0.1", "0")
			}
			if err != nil && !errors.Is(err, net.ErrClosed) {
				t.Error(err)
			}
			if err := s.Connect(ctx(t), host, port); err != nil {
				t.Error(err)
			}
		}
	}()
	go func() { // traffic to wherever the socket is
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if to := s.Association().Local; to.IsValid() {
				_, _ = pc.WriteToUDPAddrPort([]byte("x"), to)
			}
			runtime.Gosched()
		}
	}()
	bounded.Wait() // the toggler and the replacer end on their own
	close(stop)
	wg.Wait()
	if n := late.Load(); n > 0 {
		t.Fatalf("%d calls after NotifyRead(nil) returned (of %d)", n, calls.Load())
	}
	t.Logf("%d calls", calls.Load())
}

// BenchmarkNotifyRead measures a datagram's way from the peer's send to
// the owner's Receive: told by the poller and drained with a zero timeout
// (a second Receive finds the queue empty and re-arms), or waited for in a
// blocking Receive.
//
//	go test -run '^$' -bench NotifyRead -count 8 ./sock/netsock
func BenchmarkNotifyRead(b *testing.B) {
	msg, buf := make([]byte, 64), make([]byte, 2048)
	b.Run("wait=notify", func(b *testing.B) {
		pc := udpPeer(b, "udp4")
		s := newSocket(b, "udp4", nil)
		connectTo(b, s, pc)
		to := s.Association().Local
		ready := make(chan struct{}, 1)
		s.NotifyRead(func() {
			select {
			case ready <- struct{}{}:
			default:
			}
		})
		s.SetReceiveTimeout(0)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := pc.WriteToUDPAddrPort(msg, to); err != nil {
				b.Fatal(err)
			}
			<-ready
			for k := 0; ; k++ {
				if _, err := s.Receive(buf); err != nil {
					if !sock.IsTimeout(err) || k == 0 {
						b.Fatal(k, err)
					}
					break
				}
			}
		}
	})
	b.Run("wait=receive", func(b *testing.B) {
		pc := udpPeer(b, "udp4")
		s := newSocket(b, "udp4", nil)
		connectTo(b, s, pc)
		to := s.Association().Local
		s.SetReceiveTimeout(-1)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := pc.WriteToUDPAddrPort(msg, to); err != nil {
				b.Fatal(err)
			}
			if _, err := s.Receive(buf); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkIdleSockets measures what an idle UDP socket connected to a
// loopback peer costs, in goroutines and heap, when its owner is told of
// data (wait=notify) and when a goroutine waits in Receive for it
// (wait=goroutine, what an owner does without sock.ReadNotifier).
// TETHER_IDLE_SOCKETS sets how many (default 10000); the descriptor limit
// is raised to what they need if the hard limit allows, else it skips.
//
//	go test -run '^$' -bench IdleSockets -benchtime 1x ./sock/netsock
func BenchmarkIdleSockets(b *testing.B) {
	n := 10000
	if v := os.Getenv("TETHER_IDLE_SOCKETS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			b.Fatalf("TETHER_IDLE_SOCKETS=%q: want a positive count", v)
		}
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatal(err)
	}
	if need := uint64(n) + 256; lim.Cur < need {
		if lim.Max < need {
			b.Skipf("%d sockets need %d descriptors; the hard limit is %d (raise it, or set TETHER_IDLE_SOCKETS lower)", n, need, lim.Max)
		}
		old := lim
		lim.Cur = need
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			b.Skipf("cannot raise the descriptor limit to %d: %v", need, err)
		}
		b.Cleanup(func() { _ = unix.Setrlimit(unix.RLIMIT_NOFILE, &old) })
	}
	for _, notify := range []bool{true, false} {
		name := "wait=goroutine"
		if notify {
			name = "wait=notify"
		}
		b.Run(name, func(b *testing.B) {
			pc := udpPeer(b, "udp4")
			for b.Loop() {
				g0, h0 := runtime.NumGoroutine(), heapInUse()
				var ss []*netsock.Socket
				var readers sync.WaitGroup
				if notify {
					ss = idleSockets(b, n, pc)
				} else {
					ss = idleSockets(b, n, pc)
					for _, s := range ss {
						s.NotifyRead(nil)
						s.SetReceiveTimeout(-1)
						readers.Add(1)
						go func() {
							defer readers.Done()
							buf := make([]byte, 1500) // as lwm2m's reader holds
							for {
								if _, err := s.Receive(buf); errors.Is(err, net.ErrClosed) {
									return
								}
							}
						}()
					}
					for runtime.NumGoroutine() < g0+n { // every reader started
						runtime.Gosched()
					}
				}
				g1, h1 := runtime.NumGoroutine(), heapInUse()
				b.ReportMetric(float64(g1-g0)/float64(n), "goroutines/socket")
				b.ReportMetric(float64(h1-h0)/float64(n), "heap-B/socket")
				for _, s := range ss {
					s.Close()
				}
				readers.Wait()
				runtime.KeepAlive(ss)
			}
		})
	}
}

// heapInUse is the heap in use after a collection, goroutine stacks
// included.
func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse + m.StackInuse)
}

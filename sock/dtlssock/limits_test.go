package dtlssock_test

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/internal/testrig/sockrig"
	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/dtlssock"
	"github.com/tether-iot/tether/sock/simnet"
)

// limitedEcho serves a DTLS echo peer with Listen on host srv, port 5684,
// with these limits, and returns the listener.
func limitedEcho(t *testing.T, srv *simnet.Host, lim dtlssock.Limits) net.Listener {
	t.Helper()
	pc, err := srv.ListenPacket("udp", ":5684")
	if err != nil {
		t.Fatal(err)
	}
	cfg := pskConfig()
	cfg.ConnectionIDs = true
	cfg.Limits = lim
	ln, err := dtlssock.Listen(pc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	sockrig.EchoStreams(t, ln)
	return ln
}

// captureHello returns a client's first ClientHello (cookie-less), as a
// flood would replay it: a real client connects to a port that records
// its first datagram and never answers.
func captureHello(t *testing.T, n *simnet.Network) []byte {
	t.Helper()
	pc, err := n.AddHost("capture", "10.9.0.1").ListenPacket("udp", ":5684")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	raw, err := n.AddHost("capturer", "10.9.0.2").NewSocket("udp", nil)
	if err != nil {
		t.Fatal(err)
	}
	s := dtlssock.New(raw, pskConfig())
	defer s.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); s.Connect(ctx, "10.9.0.1", "5684") }()
	buf := make([]byte, 2048)
	k, _, err := pc.ReadFrom(buf)
	cancel()
	<-done
	if err != nil {
		t.Fatal(err)
	}
	return buf[:k:k]
}

// flooder sends a cookie-less ClientHello every interval, each from a new
// port of one of its hosts' addresses (10.net.x.y), as a spoofer that never answers
// does, at most count of them, until stopped.
type flooder struct {
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	sent int
	most int // the most handshakes in progress seen after a send
}

func flood(t *testing.T, n *simnet.Network, ln net.Listener, net8 int, hosts int, hello []byte, interval time.Duration, count int) *flooder {
	t.Helper()
	hs := make([]*simnet.Host, hosts)
	for i := range hs {
		a := "10." + strconv.Itoa(net8) + "." + strconv.Itoa(i/250) + "." + strconv.Itoa(1+i%250)
		hs[i] = n.AddHost(a, a)
	}
	to := net.UDPAddrFromAddrPort(netip.MustParseAddrPort("10.0.0.1:5684"))
	f := &flooder{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(f.done)
		for i := range count {
			select {
			case <-f.stop:
				return
			default:
			}
			pc, err := hs[i%hosts].ListenPacket("udp", ":0")
			if err != nil {
				t.Error(err)
				return
			}
			pc.WriteTo(hello, to)
			pc.Close()
			st := dtlssock.Stats(ln)
			f.mu.Lock()
			f.sent++
			f.most = max(f.most, st.Handshakes)
			f.mu.Unlock()
			time.Sleep(interval)
		}
	}()
	t.Cleanup(f.end)
	return f
}

func (f *flooder) end() {
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
	<-f.done
}

func (f *flooder) figures() (sent, most int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sent, f.most
}

// connectEcho connects a DTLS client on host dev to the server, within
// ctx, and checks an echo.
func connectEcho(ctx context.Context, t *testing.T, dev *simnet.Host, msg string) (*dtlssock.Socket, error) {
	t.Helper()
	raw, err := dev.NewSocket("udp", nil)
	if err != nil {
		t.Fatal(err)
	}
	s := dtlssock.New(raw, pskConfig())
	if err := s.Connect(ctx, "10.0.0.1", "5684"); err != nil {
		s.Close()
		return nil, err
	}
	sockrig.EchoOnce(t, s, msg)
	return s, nil
}

// TestFloodDoesNotLockOut: while 1,000 cookie-less ClientHellos a second
// arrive from 64 addresses and new ports, each a handshake the server
// must start, legitimate clients (a 5 ms link) complete theirs within
// 2 s: a new ClientHello displaces the oldest unproven handshake, and a
// legitimate client proves its own (returns the cookie) long before 32
// newer ones displace it. The handshakes in progress never exceed the cap.
// (Before the caps, 16 such datagrams locked every client out for 30 s.)
func TestFloodDoesNotLockOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := simnet.New(5)
		ln := limitedEcho(t, n.AddHost("server", "10.0.0.1"), dtlssock.Limits{MaxHandshakes: 32})
		f := flood(t, n, ln, 100, 64, captureHello(t, n), time.Millisecond, 10_000)
		time.Sleep(500 * time.Millisecond) // the caps are full of junk
		dev := n.AddHost("device", "10.0.0.2")
		dev.SetLink(simnet.LinkConfig{Delay: 5 * time.Millisecond})
		for i := range 5 {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			s, err := connectEcho(ctx, t, dev, "through the flood "+strconv.Itoa(i))
			cancel()
			if err != nil {
				t.Fatalf("client %d during the flood: %v", i, err)
			}
			s.Close()
		}
		f.end()
		sent, most := f.figures()
		st := dtlssock.Stats(ln)
		t.Logf("%d junk ClientHellos: %d displaced, %d expired; at most %d handshakes in progress", sent, st.Displaced, st.Expired, most)
		if most > 32 {
			t.Errorf("%d handshakes in progress, over the cap of 32", most)
		}
		if st.Displaced < sent/2 {
			t.Errorf("%d of %d junk handshakes displaced, want most", st.Displaced, sent)
		}
	})
}

// TestFloodFromOneAddress: a flood from one IP address (any ports) holds
// at most MaxHandshakesPerIP handshakes, so others never need to displace
// anything.
func TestFloodFromOneAddress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := simnet.New(6)
		ln := limitedEcho(t, n.AddHost("server", "10.0.0.1"), dtlssock.Limits{MaxHandshakes: 32, MaxHandshakesPerIP: 4})
		f := flood(t, n, ln, 101, 1, captureHello(t, n), time.Millisecond, 2_000)
		time.Sleep(100 * time.Millisecond)
		dev := n.AddHost("device", "10.0.0.2")
		dev.SetLink(simnet.LinkConfig{Delay: 100 * time.Millisecond}) // slower than 32 junk hellos
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		s, err := connectEcho(ctx, t, dev, "beside the flood")
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		f.end()
		if _, most := f.figures(); most > 4+1 { // 4 junk, and the device's
			t.Errorf("%d handshakes in progress from one junk address and one device, want at most 5", most)
		}
	})
}

// TestProvenHandshakeNotDisplaced: a client on a long link (a 500 ms
// one-way delay) returns its cookie, and then a flood starts that
// displaces every unproven handshake within 16 ms, far less than the
// client's round trip: the proven handshake completes all the same.
func TestProvenHandshakeNotDisplaced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := simnet.New(7)
		ln := limitedEcho(t, n.AddHost("server", "10.0.0.1"), dtlssock.Limits{MaxHandshakes: 16})
		hello := captureHello(t, n)
		dev := n.AddHost("device", "10.0.0.2")
		dev.SetLink(simnet.LinkConfig{Delay: 500 * time.Millisecond})
		type result struct {
			s   *dtlssock.Socket
			err error
		}
		done := make(chan result, 1)
		start := time.Now()
		go func() {
			s, err := connectEcho(t.Context(), t, dev, "proven")
			done <- result{s, err}
		}()
		// The hello arrives at 0.5 s, the HelloVerifyRequest at the
		// client at 1 s, its ClientHello with the cookie at 1.5 s.
		time.Sleep(1600 * time.Millisecond)
		if st := dtlssock.Stats(ln); st.Handshakes != 1 || st.Unproven != 0 {
			t.Fatalf("before the flood: %d handshakes, %d unproven; want 1 proven", st.Handshakes, st.Unproven)
		}
		f := flood(t, n, ln, 100, 64, hello, time.Millisecond, 20_000)
		r := <-done
		if r.err != nil {
			t.Fatalf("the proven handshake: %v", r.err)
		}
		r.s.Close()
		f.end()
		st := dtlssock.Stats(ln)
		t.Logf("connected after %v; %d junk handshakes displaced", time.Since(start), st.Displaced)
		if st.Displaced == 0 {
			t.Fatal("the flood displaced nothing: the test tested nothing")
		}
	})
}

// TestUnprovenExpire: a ClientHello whose source never returns the cookie
// holds its handshake for UnprovenTimeout, then nothing is left of it.
func TestUnprovenExpire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := simnet.New(8)
		ln := limitedEcho(t, n.AddHost("server", "10.0.0.1"), dtlssock.Limits{UnprovenTimeout: 3 * time.Second})
		f := flood(t, n, ln, 100, 4, captureHello(t, n), 0, 10)
		<-f.done
		synctest.Wait()
		if st := dtlssock.Stats(ln); st.Handshakes != 10 || st.Unproven != 10 {
			t.Fatalf("after 10 junk ClientHellos: %+v", st)
		}
		time.Sleep(3*time.Second + time.Millisecond)
		synctest.Wait()
		if st := dtlssock.Stats(ln); st.Handshakes != 0 || st.Expired != 10 {
			t.Fatalf("after UnprovenTimeout: %+v, want none left, 10 expired", st)
		}
	})
}

// TestHeldRecordsBounded: sources that start a handshake and then send
// application records (which the listener holds until a handshake
// completes, none does here) hold at most HeldRecords each and HeldBytes
// in all; once their handshakes expire, nothing is held.
func TestHeldRecordsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := simnet.New(9)
		const perConn, budget = 8, 64 << 10
		ln := limitedEcho(t, n.AddHost("server", "10.0.0.1"), dtlssock.Limits{HeldRecords: perConn, HeldBytes: budget})
		hello := captureHello(t, n)
		to := net.UDPAddrFromAddrPort(netip.MustParseAddrPort("10.0.0.1:5684"))
		record := make([]byte, 1200)
		copy(record, []byte{23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1, 0x04, 0xa5}) // application data, epoch 1
		var most int64
		for h := range 4 {
			host := n.AddHost("hold"+strconv.Itoa(h), "10.50.0."+strconv.Itoa(h+1))
			for p := range 10 {
				pc, err := host.ListenPacket("udp", ":0")
				if err != nil {
					t.Fatal(err)
				}
				pc.WriteTo(hello, to)
				for range 50 {
					pc.WriteTo(record, to)
				}
				synctest.Wait()
				pc.Close()
				held := dtlssock.Stats(ln).Held
				most = max(most, held)
				if limit := int64((h*10 + p + 1) * perConn * (len(record) + len(hello))); held > limit {
					t.Fatalf("%d bytes held after %d connections, over %d records each", held, h*10+p+1, perConn)
				}
			}
		}
		if most > budget {
			t.Fatalf("%d bytes held, over the budget of %d", most, budget)
		}
		if most < budget/2 {
			t.Fatalf("at most %d bytes held: the test did not reach the budget", most)
		}
		time.Sleep(dtlssock.DefaultUnprovenTimeout + time.Second)
		synctest.Wait()
		if st := dtlssock.Stats(ln); st.Held != 0 || st.Handshakes != 0 {
			t.Fatalf("after the handshakes expired: %+v, want nothing held", st)
		}
	})
}

// TestIdleSessionResumes: a session idle for IdleTimeout leaves the
// listener (no live session, its secrets in the store); the client's
// restore by Connection ID then goes unanswered, and its next Connect
// resumes the session by ID in an abbreviated handshake, not a full one.
// Before the idle time, the restore works with no handshake.
func TestIdleSessionResumes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := simnet.New(10)
		ln := limitedEcho(t, n.AddHost("server", "10.0.0.1"), dtlssock.Limits{IdleTimeout: time.Minute})
		dev := n.AddHost("device", "10.0.0.2")
		s, err := connectEcho(t.Context(), t, dev, "first")
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		reconnect := func() {
			t.Helper()
			if err := s.Shutdown(); err != nil {
				t.Fatal(err)
			}
			if err := s.Connect(t.Context(), "10.0.0.1", "5684"); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(50 * time.Second)
		reconnect()
		if !s.StateRestored() {
			t.Fatal("within the idle time: not restored")
		}
		sockrig.EchoOnce(t, s, "restored")
		time.Sleep(61 * time.Second)
		synctest.Wait()
		if st := dtlssock.Stats(ln); st.Live != 0 || st.Idled != 1 || st.Stored != 1 {
			t.Fatalf("after the idle time: %+v, want no live session, 1 idled, 1 stored", st)
		}
		reconnect()
		s.SetReceiveTimeout(2 * time.Second)
		if err := s.Send([]byte("forgotten?")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Receive(make([]byte, 64)); !sock.IsTimeout(err) {
			t.Fatalf("a restored session the server let go answered: %v", err)
		}
		if err := s.Connect(t.Context(), "10.0.0.1", "5684"); err != nil {
			t.Fatal(err)
		}
		if !s.SessionResumed() || s.StateRestored() || s.FullHandshakes() != 1 {
			t.Fatalf("after the idle time: resumed %v, restored %v, %d full handshakes; want resumed by ID, 1",
				s.SessionResumed(), s.StateRestored(), s.FullHandshakes())
		}
		sockrig.EchoOnce(t, s, "resumed")
	})
}

// TestMaxSessions: with MaxSessions live sessions, a new one closes the
// least recently heard from; the others keep working.
func TestMaxSessions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := simnet.New(11)
		ln := limitedEcho(t, n.AddHost("server", "10.0.0.1"), dtlssock.Limits{MaxSessions: 2})
		dev := n.AddHost("device", "10.0.0.2")
		var ss []*dtlssock.Socket
		for i := range 3 {
			s, err := connectEcho(t.Context(), t, dev, "hello "+strconv.Itoa(i))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ss = append(ss, s)
			if i == 1 {
				sockrig.EchoOnce(t, ss[0], "0 is heard from after 1")
			}
		}
		synctest.Wait()
		if st := dtlssock.Stats(ln); st.Live != 2 || st.Evicted != 1 {
			t.Fatalf("3 sessions under MaxSessions 2: %+v", st)
		}
		sockrig.EchoOnce(t, ss[0], "0 is live")
		sockrig.EchoOnce(t, ss[2], "2 is live")
		ss[1].SetReceiveTimeout(time.Second)
		ss[1].Send([]byte("1 was evicted"))
		if _, err := ss[1].Receive(make([]byte, 64)); err == nil {
			t.Fatal("the least recently heard from session still answers")
		}
	})
}

// bufferedConn records the receive buffer Listen asks for.
type bufferedConn struct {
	net.PacketConn
	asked atomic.Int64
}

func (c *bufferedConn) SetReadBuffer(n int) error { c.asked.Store(int64(n)); return nil }

// TestListenSetsReadBuffer: Listen asks a packet conn that can for
// Limits.ReadBuffer bytes of receive buffer (the default unless set), and
// leaves it alone when told to.
func TestListenSetsReadBuffer(t *testing.T) {
	for _, tc := range []struct {
		set, want int
	}{{0, dtlssock.DefaultReadBuffer}, {4 << 20, 4 << 20}, {-1, 0}} {
		synctest.Test(t, func(t *testing.T) {
			pc, err := simnet.New(1).AddHost("server", "10.0.0.1").ListenPacket("udp", ":5684")
			if err != nil {
				t.Fatal(err)
			}
			bc := &bufferedConn{PacketConn: pc}
			cfg := pskConfig()
			cfg.Limits.ReadBuffer = tc.set
			ln, err := dtlssock.Listen(bc, cfg)
			if err != nil {
				t.Fatal(err)
			}
			ln.Close()
			if got := bc.asked.Load(); got != int64(tc.want) {
				t.Errorf("ReadBuffer %d: Listen asked for %d bytes, want %d", tc.set, got, tc.want)
			}
		})
	}
}

// TestFloodOutpacesLongRoundTrips shows the limit that remains without
// stateless cookies: a flood displaces an unproven handshake MaxHandshakes
// ClientHellos after it began (here 32 at 1,000 a second: 32 ms), so a
// client whose round trip is shorter proves its handshake in time and one
// whose round trip is longer never does while the flood lasts.
func TestFloodOutpacesLongRoundTrips(t *testing.T) {
	for _, tc := range []struct {
		oneWay time.Duration // the client's link; the round trip is twice it
		ok     bool
	}{{10 * time.Millisecond, true}, {25 * time.Millisecond, false}} {
		t.Run("rtt="+(2*tc.oneWay).String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := simnet.New(13)
				ln := limitedEcho(t, n.AddHost("server", "10.0.0.1"), dtlssock.Limits{MaxHandshakes: 32})
				f := flood(t, n, ln, 100, 64, captureHello(t, n), time.Millisecond, 10_000)
				time.Sleep(100 * time.Millisecond)
				dev := n.AddHost("device", "10.0.0.2")
				dev.SetLink(simnet.LinkConfig{Delay: tc.oneWay})
				ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
				defer cancel()
				s, err := connectEcho(ctx, t, dev, "round trip")
				if s != nil {
					s.Close()
				}
				f.end()
				if (err == nil) != tc.ok {
					t.Fatalf("a %v round trip under a flood displacing every 32 ms: %v", 2*tc.oneWay, err)
				}
			})
		})
	}
}

// TestCounts: what an operator's metrics read, after a flood displaced
// unproven handshakes and a session was resumed by ID.
func TestCounts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := simnet.New(7)
		ln := limitedEcho(t, n.AddHost("server", "10.0.0.1"), dtlssock.Limits{MaxHandshakes: 8, IdleTimeout: time.Minute})
		f := flood(t, n, ln, 20, 16, captureHello(t, n), time.Millisecond, 200)
		time.Sleep(300 * time.Millisecond)
		f.end()
		dev := n.AddHost("device", "10.0.0.2")
		s, err := connectEcho(t.Context(), t, dev, "first")
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		time.Sleep(2 * time.Minute) // idle: the session leaves memory, its secrets stay
		if err := s.Shutdown(); err != nil {
			t.Fatal(err)
		}
		s.SetReceiveTimeout(2 * time.Second)
		if err := s.Connect(t.Context(), "10.0.0.1", "5684"); err != nil {
			t.Fatal(err)
		}
		s.Send([]byte("x")) // a restored session the server let go: unanswered
		s.Receive(make([]byte, 16))
		if err := s.Connect(t.Context(), "10.0.0.1", "5684"); err != nil {
			t.Fatal(err)
		}
		sockrig.EchoOnce(t, s, "resumed")
		c, ok := dtlssock.Counts(ln)
		if !ok || c.Displaced == 0 || c.Resumed == 0 || c.Idled == 0 || c.Live != 1 {
			t.Errorf("Counts %+v (%v): want displaced, resumed and idled counted, one live", c, ok)
		}
		if _, ok := dtlssock.Counts(nil); ok {
			t.Error("Counts of another listener reported ok")
		}
	})
}

// Package socktest is the conformance suite of the sock contract. Any
// implementation of sock.Socket, tether's own or a third party's (a socket
// over a cellular modem's AT commands, say), runs it against itself:
//
//	func TestConformance(t *testing.T) {
//		socktest.Run(t, func(t *testing.T) socktest.Env {
//			peer := startEchoPeer(t) // echoes every datagram
//			return socktest.Env{
//				NewSocket: func(t *testing.T) sock.Socket { return mymodem.NewSocket() },
//				Datagram:  true,
//				Host:      peer.Host,
//				Port:      peer.Port,
//			}
//		})
//	}
//
// Run calls the make function once per subtest, so each subtest gets a fresh
// peer and fresh sockets; register their clean-up with t.Cleanup. The peer
// must send back every datagram it receives (for a stream, every byte):
// Echo and EchoStream serve any net.PacketConn or net.Listener that way.
//
// The suite checks the required methods always, and each optional capability
// (sock.Binder, sock.Shutdowner, sock.Associator, ...) when sock.As finds it;
// when it does not, it checks that the helpers (sock.Bind, sock.Shutdown,
// sock.AssociationOf) report sock.ErrNotSupported. It also checks that a
// type assertion on the socket never finds a capability whose call answers
// sock.ErrNotSupported: a layer passes on what its raw socket may lack
// (see sock.As) instead of claiming it. Subtests are named after the property they check
// (States, Shutdown/KeepsAssociation, Receive/Timeout, ...), so
// `go test -run 'Conformance/Shutdown'` runs one group.
//
// A layer (a socket decorating another, such as a TLS layer; see sock.As)
// also runs Layer, which builds it over raw sockets with and without each
// optional capability and checks that it claims none it cannot honour:
//
//	socktest.Layer(t, func(raw sock.Socket) sock.Socket { return mylayer.New(raw) })
//
// socktest depends on package sock and the standard library only.
package socktest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tether-iot/tether/sock"
)

// Env is what the suite needs from the implementation under test.
type Env struct {
	// NewSocket returns a new socket, in the closed state.
	NewSocket func(t *testing.T) sock.Socket
	// Datagram is true for datagram sockets: one Send is one message, and
	// a message longer than the receive buffer reports sock.ErrMsgSize.
	Datagram bool
	// Host and Port address the echo peer; Host may be a name or a literal
	// and is what RemoteHostname must return.
	Host, Port string
	// Unresolvable, when set, is a name the socket cannot resolve; Connect
	// to it must fail with sock.ErrAddrNotAvail. Leave it empty if the only
	// way to find out would be a query off this machine.
	Unresolvable string
	// CountsOverhead is set when the byte counters include bytes of a layer
	// below the payload (records, handshakes), so they grow by at least the
	// payload rather than exactly by it.
	CountsOverhead bool
	// Prompt bounds how long a blocked Receive may take to return after
	// Shutdown or Close; zero means 50ms.
	Prompt time.Duration
}

// Run runs the conformance suite, one subtest per property.
func Run(t *testing.T, mk func(t *testing.T) Env) {
	tests := []struct {
		name string
		fn   func(*testing.T, Env)
	}{
		{"States", testStates},
		{"Echo", testEcho},
		{"Addresses", testAddresses},
		{"Connect/Errors", testConnectErrors},
		{"Connect/Canceled", testConnectCanceled},
		{"Connect/Again", testConnectAgain},
		{"Receive/Timeout", testReceiveTimeout},
		{"Receive/Poll", testReceivePoll},
		{"Receive/Forever", testReceiveForever},
		{"Receive/MessageTooLong", testMessageTooLong},
		{"Close/Unblocks", testCloseUnblocks},
		{"Close/ForgetsAndReconnects", testCloseForgets},
		{"Shutdown/KeepsAssociation", testShutdownKeeps},
		{"Shutdown/Unblocks", testShutdownUnblocks},
		{"Shutdown/Closed", testShutdownClosed},
		{"Bind", testBind},
		{"Bind/ReconnectKeepsPort", testReconnectKeepsPort},
		{"ByteCounters", testByteCounters},
		{"InnerMTU", testInnerMTU},
		{"SyscallConn", testSyscallConn},
		{"BufferedData", testBufferedData},
		{"PreferredEndpoint", testPreferredEndpoint},
		{"Unsupported", testUnsupported},
		{"Concurrent", testConcurrent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := mk(t)
			if env.Prompt == 0 {
				env.Prompt = 50 * time.Millisecond
			}
			tt.fn(t, env)
		})
	}
}

func (e Env) connected(t *testing.T) sock.Socket {
	t.Helper()
	s := e.NewSocket(t)
	t.Cleanup(func() { s.Close() })
	if err := s.Connect(ctx(t), e.Host, e.Port); err != nil {
		t.Fatalf("Connect(%q, %q): %v", e.Host, e.Port, err)
	}
	return s
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// roundTrip sends msg and reads the echo back, whole.
func roundTrip(t *testing.T, s sock.Socket, e Env, msg []byte) {
	t.Helper()
	if err := s.Send(msg); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := receiveN(t, s, e, len(msg))
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo = %q, want %q", got, msg)
	}
}

// receiveN reads n bytes: one datagram, or as many stream reads as needed.
func receiveN(t *testing.T, s sock.Socket, e Env, n int) []byte {
	t.Helper()
	buf := make([]byte, n+64)
	got := 0
	for got < n {
		m, err := s.Receive(buf[got:])
		if err != nil {
			t.Fatalf("Receive after %d of %d bytes: %v", got, n, err)
		}
		if m == 0 && !e.Datagram {
			t.Fatalf("peer closed after %d of %d bytes", got, n)
		}
		got += m
		if e.Datagram {
			break
		}
	}
	return buf[:got]
}

func wantState(t *testing.T, s sock.Socket, want sock.State) {
	t.Helper()
	if got := s.State(); got != want {
		t.Fatalf("State() = %v, want %v", got, want)
	}
}

func wantIs(t *testing.T, what string, err error, targets ...error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want %v", what, targets[0])
	}
	for _, target := range targets {
		if !errors.Is(err, target) {
			t.Fatalf("%s: %v (%T) does not match %v", what, err, err, target)
		}
	}
}

func testStates(t *testing.T, e Env) {
	s := e.NewSocket(t)
	defer s.Close()
	wantState(t, s, sock.StateClosed)
	if err := s.Connect(ctx(t), e.Host, e.Port); err != nil {
		t.Fatal(err)
	}
	wantState(t, s, sock.StateConnected)
	if _, ok := sock.As[sock.Shutdowner](s); ok {
		if err := sock.Shutdown(s); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		wantState(t, s, sock.StateShutdown)
		if err := s.Close(); err != nil {
			t.Fatalf("Close after Shutdown: %v", err)
		}
		wantState(t, s, sock.StateClosed) // Close leaves shutdown
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	wantState(t, s, sock.StateClosed)
	if _, ok := sock.As[sock.Binder](s); ok {
		if err := sock.Bind(ctx(t), s, "", "0"); err != nil {
			t.Fatalf("Bind: %v", err)
		}
		wantState(t, s, sock.StateBound)
	}
}

func testEcho(t *testing.T, e Env) {
	s := e.connected(t)
	for _, msg := range [][]byte{[]byte("hello, tether"), bytes.Repeat([]byte{0xA5}, 1024), {0}} {
		roundTrip(t, s, e, msg)
	}
}

func testAddresses(t *testing.T, e Env) {
	s := e.connected(t)
	if _, ok := sock.As[sock.Associator](s); !ok {
		t.Skip("socket has no association (checked by Unsupported)")
	}
	a := sock.AssociationOf(s)
	if name, err := a.RemoteHostname(); err != nil || name != e.Host {
		t.Errorf("RemoteHostname() = %q, %v; want %q exactly", name, err, e.Host)
	}
	if host, err := a.RemoteHost(); err != nil || net.ParseIP(stripZone(host)) == nil {
		t.Errorf("RemoteHost() = %q, %v; want a numeric address", host, err)
	}
	if port, err := a.RemotePort(); err != nil || port != e.Port {
		t.Errorf("RemotePort() = %q, %v; want %q", port, err, e.Port)
	}
	if host, err := a.LocalHost(); err != nil || net.ParseIP(stripZone(host)) == nil {
		t.Errorf("LocalHost() = %q, %v; want a numeric address", host, err)
	}
	if port, err := a.LocalPort(); err != nil || port == "0" || port == "" {
		t.Errorf("LocalPort() = %q, %v; want a non-zero port", port, err)
	}
}

func stripZone(h string) string {
	if i := strings.IndexByte(h, '%'); i >= 0 {
		return h[:i]
	}
	return h
}

func testConnectErrors(t *testing.T, e Env) {
	label := strings.Repeat("a", 63)
	long := label + "." + label + "." + label + "." + label + ".example" // 263 characters
	tests := []struct {
		name, host, port string
		want             error
	}{
		{"port not a number", e.Host, "coap", sock.ErrInvalidPort},
		{"port zero", e.Host, "0", sock.ErrInvalidPort},
		{"port too large", e.Host, "65536", sock.ErrInvalidPort},
		{"empty host", "", e.Port, sock.ErrInvalidHost},
		{"host longer than DNS allows", long, e.Port, sock.ErrInvalidHost},
		{"label longer than 63", strings.Repeat("x", 64) + ".example", e.Port, sock.ErrInvalidHost},
	}
	if e.Unresolvable != "" {
		tests = append(tests, struct {
			name, host, port string
			want             error
		}{"unresolvable", e.Unresolvable, e.Port, sock.ErrAddrNotAvail})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := e.NewSocket(t)
			defer s.Close()
			err := s.Connect(ctx(t), tt.host, tt.port)
			wantIs(t, "Connect", err, tt.want)
			var oe *net.OpError
			if !errors.As(err, &oe) || oe.Op == "" {
				t.Errorf("Connect error %v (%T) is not a *net.OpError naming the operation", err, err)
			}
			wantState(t, s, sock.StateClosed)
			if name, err := sock.AssociationOf(s).RemoteHostname(); err == nil {
				t.Errorf("RemoteHostname() after failed Connect = %q, want an error", name)
			}
		})
	}
}

func testConnectCanceled(t *testing.T, e Env) {
	s := e.NewSocket(t)
	defer s.Close()
	c, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Connect(c, e.Host, e.Port)
	wantIs(t, "Connect with a canceled context", err, context.Canceled)
	if s.State() == sock.StateConnected {
		t.Fatal("Connect with a canceled context connected")
	}
}

func testConnectAgain(t *testing.T, e Env) {
	s := e.connected(t)
	roundTrip(t, s, e, []byte("first"))
	if err := s.Connect(ctx(t), e.Host, e.Port); err != nil {
		t.Fatalf("Connect on a connected socket: %v", err)
	}
	wantState(t, s, sock.StateConnected)
	roundTrip(t, s, e, []byte("second"))
}

// wantTimeout checks every convention a timeout must meet.
func wantTimeout(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("no error, want a timeout")
	}
	ne, ok := err.(net.Error) // a direct assertion, as nettest does
	if !ok || !ne.Timeout() {
		t.Fatalf("%v (%T) is not a net.Error with Timeout() true", err, err)
	}
	wantIs(t, "timeout", err, sock.ErrTimeout, os.ErrDeadlineExceeded, context.DeadlineExceeded)
}

func testReceiveTimeout(t *testing.T, e Env) {
	s := e.connected(t)
	if got := s.ReceiveTimeout(); got == 0 {
		t.Errorf("a new socket polls (ReceiveTimeout() = 0); want a positive default")
	}
	const d = 30 * time.Millisecond
	s.SetReceiveTimeout(d)
	if got := s.ReceiveTimeout(); got != d {
		t.Fatalf("ReceiveTimeout() = %v after SetReceiveTimeout(%v)", got, d)
	}
	start := time.Now()
	_, err := s.Receive(make([]byte, 64))
	wantTimeout(t, err)
	if el := time.Since(start); el < d {
		t.Errorf("Receive timed out after %v, before the %v timeout", el, d)
	}
	wantState(t, s, sock.StateConnected)
	roundTrip(t, s, e, []byte("after a timeout")) // a timeout breaks nothing
}

func testReceivePoll(t *testing.T, e Env) {
	s := e.connected(t)
	s.SetReceiveTimeout(0)
	start := time.Now()
	_, err := s.Receive(make([]byte, 64))
	wantTimeout(t, err)
	if el := time.Since(start); el > time.Second {
		t.Errorf("a poll with nothing queued took %v", el)
	}
	msg := []byte("polled")
	if err := s.Send(msg); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	deadline := time.Now().Add(5 * time.Second)
	got := 0
	for got < len(msg) && time.Now().Before(deadline) {
		n, err := s.Receive(buf[got:])
		if err != nil && !sock.IsTimeout(err) {
			t.Fatalf("poll: %v", err)
		}
		got += n
		if n == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	if !bytes.Equal(buf[:got], msg) {
		t.Fatalf("polled %q, want %q", buf[:got], msg)
	}
}

func testReceiveForever(t *testing.T, e Env) {
	s := e.connected(t)
	s.SetReceiveTimeout(-1)
	msg := []byte("late")
	go func() {
		time.Sleep(30 * time.Millisecond)
		s.Send(msg)
	}()
	if got := receiveN(t, s, e, len(msg)); !bytes.Equal(got, msg) {
		t.Fatalf("got %q, want %q", got, msg)
	}
}

func testMessageTooLong(t *testing.T, e Env) {
	if !e.Datagram {
		t.Skip("stream sockets have no message boundaries")
	}
	s := e.connected(t)
	msg := bytes.Repeat([]byte("0123456789abcdef"), 4)
	if err := s.Send(msg); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, err := s.Receive(buf)
	wantIs(t, "Receive of 64 bytes into 16", err, sock.ErrMsgSize)
	if n != len(buf) || !bytes.Equal(buf, msg[:16]) {
		t.Fatalf("Receive = %d bytes %q, want the first 16 bytes delivered", n, buf[:n])
	}
	roundTrip(t, s, e, []byte("next one fits")) // the truncated datagram is gone
}

// blockedReceive starts a Receive that waits forever and returns its result
// channel once the call has had time to block.
func blockedReceive(s sock.Socket) <-chan error {
	s.SetReceiveTimeout(-1)
	done := make(chan error, 1)
	go func() {
		_, err := s.Receive(make([]byte, 64))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	return done
}

func waitPrompt(t *testing.T, e Env, what string, start time.Time, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		if el := time.Since(start); el > e.Prompt {
			t.Errorf("blocked Receive returned %v after %s, want under %v", el, what, e.Prompt)
		} else {
			t.Logf("blocked Receive returned %v after %s", el, what)
		}
		return err
	case <-time.After(5 * time.Second):
		t.Fatalf("blocked Receive still blocked 5s after %s", what)
	}
	return nil
}

func testCloseUnblocks(t *testing.T, e Env) {
	s := e.connected(t)
	done := blockedReceive(s)
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	err := waitPrompt(t, e, "Close", start, done)
	wantIs(t, "Receive interrupted by Close", err, net.ErrClosed)
}

func testCloseForgets(t *testing.T, e Env) {
	s := e.connected(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wantState(t, s, sock.StateClosed)
	wantIs(t, "Send after Close", s.Send([]byte("x")), net.ErrClosed)
	_, err := s.Receive(make([]byte, 8))
	wantIs(t, "Receive after Close", err, net.ErrClosed)
	if name, err := sock.AssociationOf(s).RemoteHostname(); err == nil {
		t.Errorf("RemoteHostname() after Close = %q, want an error", name)
	}
	if _, err := s.InnerMTU(); err == nil && e.Datagram {
		t.Errorf("InnerMTU() after Close: no error")
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close of a closed socket: %v", err)
	}
	if err := s.Connect(ctx(t), e.Host, e.Port); err != nil {
		t.Fatalf("Connect after Close: %v", err)
	}
	wantState(t, s, sock.StateConnected)
	roundTrip(t, s, e, []byte("again"))
}

// association reads every getter of the socket's association, if it has
// one.
func association(s sock.Socket) map[string]string {
	m := map[string]string{}
	if _, ok := sock.As[sock.Associator](s); !ok {
		return m
	}
	a := sock.AssociationOf(s)
	for name, get := range map[string]func() (string, error){
		"RemoteHost": a.RemoteHost, "RemoteHostname": a.RemoteHostname,
		"RemotePort": a.RemotePort, "LocalHost": a.LocalHost, "LocalPort": a.LocalPort,
	} {
		v, err := get()
		if err != nil {
			v = "error: " + err.Error()
		}
		m[name] = v
	}
	return m
}

func needShutdown(t *testing.T, s sock.Socket) {
	t.Helper()
	if _, ok := sock.As[sock.Shutdowner](s); !ok {
		t.Skip("socket has no Shutdown (checked by Unsupported)")
	}
}

func testShutdownKeeps(t *testing.T, e Env) {
	s := e.connected(t)
	needShutdown(t, s)
	roundTrip(t, s, e, []byte("before"))
	before := association(s)
	if err := sock.Shutdown(s); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	wantState(t, s, sock.StateShutdown)
	after := association(s)
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s: %q before Shutdown, %q after", k, v, after[k])
		}
	}
	s.SetReceiveTimeout(sock.DefaultReceiveTimeout)
	start := time.Now()
	wantIs(t, "Send after Shutdown", s.Send([]byte("x")), sock.ErrShutdown)
	_, err := s.Receive(make([]byte, 8))
	wantIs(t, "Receive after Shutdown", err, sock.ErrShutdown)
	if el := time.Since(start); el > e.Prompt {
		t.Errorf("Send and Receive after Shutdown took %v, want them to fail at once", el)
	}
	wantState(t, s, sock.StateShutdown)
	if err := s.Connect(ctx(t), e.Host, e.Port); err != nil {
		t.Fatalf("Connect after Shutdown: %v", err)
	}
	wantState(t, s, sock.StateConnected)
	roundTrip(t, s, e, []byte("after"))
	if name, err := sock.AssociationOf(s).RemoteHostname(); err == nil && name != e.Host {
		t.Errorf("RemoteHostname() after reconnect = %q, want %q", name, e.Host)
	}
}

func testShutdownUnblocks(t *testing.T, e Env) {
	s := e.connected(t)
	needShutdown(t, s)
	done := blockedReceive(s)
	start := time.Now()
	if err := sock.Shutdown(s); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	err := waitPrompt(t, e, "Shutdown", start, done)
	wantIs(t, "Receive interrupted by Shutdown", err, sock.ErrShutdown)
}

func testShutdownClosed(t *testing.T, e Env) {
	s := e.NewSocket(t)
	defer s.Close()
	needShutdown(t, s)
	wantIs(t, "Shutdown of a closed socket", sock.Shutdown(s), net.ErrClosed)
	wantState(t, s, sock.StateClosed)
}

func needBind(t *testing.T, s sock.Socket) {
	t.Helper()
	if _, ok := sock.As[sock.Binder](s); !ok {
		t.Skip("socket has no Bind (checked by Unsupported)")
	}
}

func testBind(t *testing.T, e Env) {
	s := e.NewSocket(t)
	defer s.Close()
	needBind(t, s)
	if err := sock.Bind(ctx(t), s, "", "0"); err != nil {
		t.Fatalf("Bind: %v", err)
	}
	wantState(t, s, sock.StateBound)
	port, err := sock.AssociationOf(s).LocalPort()
	if err != nil && !errors.Is(err, sock.ErrNotSupported) {
		t.Fatalf("LocalPort after Bind: %v", err)
	}
	if port == "0" {
		t.Fatalf("LocalPort after Bind to port 0 = 0, want the port chosen")
	}
	if e.Datagram {
		wantIs(t, "Send on a bound datagram socket", s.Send([]byte("x")), sock.ErrNotConnected)
	}
	if err := sock.Bind(ctx(t), s, "", "not-a-port"); !errors.Is(err, sock.ErrInvalidPort) {
		t.Errorf("Bind to port %q: %v, want ErrInvalidPort", "not-a-port", err)
	}
	if err := sock.Bind(ctx(t), s, "", "0"); err != nil {
		t.Fatalf("Bind again: %v", err)
	}
	port, _ = sock.AssociationOf(s).LocalPort()
	if err := s.Connect(ctx(t), e.Host, e.Port); err != nil {
		t.Fatalf("Connect from a bound socket: %v", err)
	}
	wantState(t, s, sock.StateConnected)
	if got, _ := sock.AssociationOf(s).LocalPort(); got != port {
		t.Errorf("LocalPort after Connect = %q, want the bound port %q", got, port)
	}
	roundTrip(t, s, e, []byte("bound"))
}

func testReconnectKeepsPort(t *testing.T, e Env) {
	if !e.Datagram {
		// TCP would reconnect the same four-tuple, still in TIME_WAIT.
		t.Skip("a stream reconnect from the same port to the same peer is not portable")
	}
	s := e.connected(t)
	needBind(t, s)
	needShutdown(t, s)
	port, err := sock.AssociationOf(s).LocalPort()
	if err != nil {
		t.Skipf("LocalPort: %v", err)
	}
	if err := sock.Shutdown(s); err != nil {
		t.Fatal(err)
	}
	if err := sock.Bind(ctx(t), s, "", port); err != nil {
		t.Fatalf("Bind to the previous local port %s: %v", port, err)
	}
	if err := s.Connect(ctx(t), e.Host, e.Port); err != nil {
		t.Fatal(err)
	}
	if got, _ := sock.AssociationOf(s).LocalPort(); got != port {
		t.Fatalf("LocalPort after reconnect = %q, want %q", got, port)
	}
	roundTrip(t, s, e, []byte("same port"))
}

func testByteCounters(t *testing.T, e Env) {
	s := e.connected(t)
	bc, ok := sock.As[sock.ByteCounter](s)
	if !ok {
		t.Skip("socket has no byte counters (checked by Unsupported)")
	}
	sent0, recv0 := bc.BytesSent(), bc.BytesReceived()
	msg := bytes.Repeat([]byte("c"), 300)
	roundTrip(t, s, e, msg)
	sent, recv := bc.BytesSent(), bc.BytesReceived()
	ds, dr := sent-sent0, recv-recv0
	if e.CountsOverhead {
		if ds < uint64(len(msg)) || dr < uint64(len(msg)) {
			t.Errorf("counters grew by %d sent, %d received; want at least %d each", ds, dr, len(msg))
		}
	} else if ds != uint64(len(msg)) || dr != uint64(len(msg)) {
		t.Errorf("counters grew by %d sent, %d received; want %d each", ds, dr, len(msg))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Close never resets the counters; a layer that says goodbye on Close
	// (TLS's close_notify) may add to them.
	s2, r2 := bc.BytesSent(), bc.BytesReceived()
	if s2 < sent || r2 < recv || (!e.CountsOverhead && (s2 != sent || r2 != recv)) {
		t.Errorf("counters after Close: %d sent, %d received; before: %d, %d (Close does not reset)", s2, r2, sent, recv)
	}
}

func testInnerMTU(t *testing.T, e Env) {
	s := e.connected(t)
	mtu, err := s.InnerMTU()
	if !e.Datagram {
		if err != nil && !errors.Is(err, sock.ErrNotSupported) {
			t.Fatalf("InnerMTU on a stream: %v, want a value or ErrNotSupported", err)
		}
		return
	}
	if err != nil {
		t.Fatalf("InnerMTU: %v", err)
	}
	if mtu < 100 || mtu > 65535 {
		t.Fatalf("InnerMTU() = %d, want a datagram payload size", mtu)
	}
	t.Logf("InnerMTU() = %d", mtu)
	msg := bytes.Repeat([]byte("m"), min(mtu, 1400))
	roundTrip(t, s, e, msg) // a payload of the inner MTU goes through
}

func testSyscallConn(t *testing.T, e Env) {
	s := e.connected(t)
	sc, ok := sock.As[sock.SyscallConner](s)
	if !ok {
		t.Skip("socket has no OS handle (checked by Unsupported)")
	}
	rc, err := sc.SyscallConn()
	if err != nil || rc == nil {
		t.Fatalf("SyscallConn() = %v, %v", rc, err)
	}
	called := false
	if err := rc.Control(func(uintptr) { called = true }); err != nil || !called {
		t.Fatalf("RawConn.Control: called=%v, %v", called, err)
	}
	s.Close()
	if _, err := sc.SyscallConn(); err == nil {
		t.Errorf("SyscallConn() on a closed socket: no error")
	}
}

func testBufferedData(t *testing.T, e Env) {
	s := e.connected(t)
	br, ok := sock.As[sock.BufferedDataReporter](s)
	if !ok {
		t.Skip("socket reports no buffered data (checked by Unsupported)")
	}
	roundTrip(t, s, e, []byte("drained"))
	if br.HasBufferedData() {
		t.Errorf("HasBufferedData() after reading everything = true, want false")
	}
}

func testPreferredEndpoint(t *testing.T, e Env) {
	s := e.NewSocket(t)
	defer s.Close()
	ep, ok := sock.As[sock.EndpointPreferrer](s)
	if !ok {
		t.Skip("socket has no stickiness (checked by Unsupported)")
	}
	var pe sock.PreferredEndpoint
	ep.SetPreferredEndpoint(&pe)
	if err := s.Connect(ctx(t), e.Host, e.Port); err != nil {
		t.Fatal(err)
	}
	ap, ok := pe.Load()
	if !ok {
		t.Fatal("Connect did not store the endpoint it connected to")
	}
	if host, err := sock.AssociationOf(s).RemoteHost(); err == nil && host != ap.Addr().String() {
		t.Errorf("stored %v, but RemoteHost() = %q", ap, host)
	}
	if port := ap.Port(); e.Port != "" && strconv.Itoa(int(port)) != e.Port {
		t.Errorf("stored port %d, want %s", port, e.Port)
	}
}

// testUnsupported checks what each capability's absence and presence
// mean: the helpers of a capability that As does not find report
// ErrNotSupported, and a capability that a type assertion on the socket
// itself finds answers its call (a layer must not claim what its raw
// socket lacks).
func testUnsupported(t *testing.T, e Env) {
	s := e.connected(t)
	notSupported := func(name string, err error) {
		t.Helper()
		if !errors.Is(err, sock.ErrNotSupported) {
			t.Errorf("%s is missing, but its helper returned %v, want ErrNotSupported", name, err)
		}
	}
	claimed := func(name string, err error) {
		t.Helper()
		if errors.Is(err, sock.ErrNotSupported) {
			t.Errorf("the socket has a method of %s, and its call says %v", name, err)
		}
	}
	var have []string
	note := func(name string, found bool) bool {
		if found {
			have = append(have, name)
		}
		return found
	}

	// What does not change the socket first; Shutdown and Bind last.
	a := sock.AssociationOf(s)
	if as, ok := s.(sock.Associator); note("Associator", is[sock.Associator](s)) {
		if ok {
			_, err := as.Association().LocalPort()
			claimed("Associator", err)
		}
	} else {
		for _, get := range []func() (string, error){a.RemoteHost, a.RemoteHostname, a.RemotePort, a.LocalHost, a.LocalPort} {
			_, err := get()
			notSupported("Associator", err)
		}
	}
	note("ByteCounter", is[sock.ByteCounter](s))
	note("BufferedDataReporter", is[sock.BufferedDataReporter](s))
	if c, ok := s.(sock.SyscallConner); note("SyscallConner", is[sock.SyscallConner](s)) && ok {
		_, err := c.SyscallConn()
		claimed("SyscallConner", err)
	}
	note("EndpointPreferrer", is[sock.EndpointPreferrer](s))
	note("SessionResumer", is[sock.SessionResumer](s))
	if sd, ok := s.(sock.Shutdowner); note("Shutdowner", is[sock.Shutdowner](s)) {
		if ok {
			claimed("Shutdowner", sd.Shutdown())
		}
	} else {
		notSupported("Shutdowner", sock.Shutdown(s))
	}
	if b, ok := s.(sock.Binder); note("Binder", is[sock.Binder](s)) {
		if ok {
			claimed("Binder", b.Bind(ctx(t), "", "0"))
		}
	} else {
		notSupported("Binder", sock.Bind(ctx(t), s, "", "0"))
	}
	t.Logf("capabilities: %s", strings.Join(have, ", "))
}

// is reports whether As finds capability T of s.
func is[T any](s sock.Socket) bool {
	_, ok := sock.As[T](s)
	return ok
}

func testConcurrent(t *testing.T, e Env) {
	s := e.connected(t)
	const n, size = 100, 32
	var wg sync.WaitGroup
	wg.Add(1)
	sendErr := make(chan error, 1)
	go func() {
		defer wg.Done()
		msg := bytes.Repeat([]byte("s"), size)
		for i := 0; i < n; i++ {
			if err := s.Send(msg); err != nil {
				sendErr <- err
				return
			}
			if i%10 == 9 {
				time.Sleep(time.Millisecond) // stay within any receive buffer
			}
		}
	}()
	s.SetReceiveTimeout(5 * time.Second)
	buf := make([]byte, 4096)
	total := 0
	for total < n*size {
		m, err := s.Receive(buf)
		if err != nil {
			t.Fatalf("Receive after %d of %d bytes: %v", total, n*size, err)
		}
		if m == 0 && !e.Datagram {
			t.Fatalf("peer closed after %d bytes", total)
		}
		total += m
	}
	wg.Wait()
	select {
	case err := <-sendErr:
		t.Fatalf("Send: %v", err)
	default:
	}
}

// Echo serves pc as an echo peer for the suite: every datagram is sent back
// to where it came from. It returns when pc is closed.
func Echo(pc net.PacketConn) {
	buf := make([]byte, 65536)
	if ap, ok := pc.(addrPortConn); ok {
		// No allocation per datagram, so a benchmark or an allocation
		// count in the same process measures the socket alone.
		for {
			n, from, err := ap.ReadFromUDPAddrPort(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			ap.WriteToUDPAddrPort(buf[:n], from)
		}
	}
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // a refused send may surface here on some stacks
		}
		pc.WriteTo(buf[:n], from)
	}
}

// addrPortConn is the allocation-free side of *net.UDPConn.
type addrPortConn interface {
	ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error)
	WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error)
}

// EchoStream serves ln as an echo peer for the suite: every connection gets
// its bytes back. It returns when ln is closed, closing what it accepted.
func EchoStream(ln net.Listener) {
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	defer func() {
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		go func() {
			defer c.Close()
			io.Copy(c, c)
		}()
	}
}

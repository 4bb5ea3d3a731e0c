package simnet_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/simnet"
)

// rig is a device and a server with an echo peer on port 7.
type rig struct {
	n        *simnet.Network
	dev, srv *simnet.Host
}

func newRig(t *testing.T, seed uint64, network string) rig {
	n := simnet.New(seed)
	r := rig{n: n, srv: n.AddHost("server", "10.0.0.1"), dev: n.AddHost("device", "10.0.0.2")}
	n.DNS().Set("server.sim", netip.MustParseAddr("10.0.0.1"))
	startEcho(t, r.srv, network, ":7")
	return r
}

func (r rig) connect(t *testing.T, network string) *simnet.Socket {
	t.Helper()
	s, err := r.dev.NewSocket(network, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Connect(context.Background(), "server.sim", "7"); err != nil {
		t.Fatal(err)
	}
	return s
}

// pingUntilEchoed sends seq until its echo comes back, resending after each
// timeout, and returns how many sends it took.
func pingUntilEchoed(t *testing.T, s sock.Socket, seq uint32) int {
	t.Helper()
	msg := binary.BigEndian.AppendUint32(nil, seq)
	buf := make([]byte, 16)
	for tries := 1; tries < 1000; tries++ {
		if err := s.Send(msg); err != nil && !errors.Is(err, syscall.ENETUNREACH) {
			t.Fatalf("Send: %v", err)
		}
		for {
			n, err := s.Receive(buf)
			if sock.IsTimeout(err) {
				break
			}
			if err != nil {
				t.Fatalf("Receive: %v", err)
			}
			if n == 4 && binary.BigEndian.Uint32(buf) == seq {
				return tries
			}
			// a late or duplicated echo of an earlier ping: read on
		}
	}
	t.Fatalf("ping %d never echoed", seq)
	return 0
}

func TestOutageTakesNoRealTime(t *testing.T) {
	realStart := time.Now()
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, 1, "udp")
		r.dev.SetLink(simnet.LinkConfig{Delay: 10 * time.Millisecond})
		s := r.connect(t, "udp")
		s.SetReceiveTimeout(time.Second)
		start := time.Now()
		for seq := range uint32(100) {
			if seq == 50 {
				r.dev.SetDown(true)
				time.AfterFunc(10*time.Second, func() { r.dev.SetDown(false) })
			}
			pingUntilEchoed(t, s, seq)
		}
		if el := time.Since(start); el < 10*time.Second {
			t.Errorf("100 pings across a 10s outage took %v of simulated time", el)
		}
		if r.dev.IsDown() {
			t.Error("link still down")
		}
	})
	if el := time.Since(realStart); el > 5*time.Second {
		t.Errorf("a 10s simulated outage took %v of real time", el)
	}
}

// lossyRun returns which sends of 200 pings were needed over a lossy link,
// and the network's counters.
func lossyRun(t *testing.T, seed uint64) ([]int, simnet.Stats) {
	var (
		tries []int
		stats simnet.Stats
	)
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, seed, "udp")
		r.dev.SetLink(simnet.LinkConfig{Delay: 5 * time.Millisecond, Jitter: 3 * time.Millisecond, Loss: 0.3, Duplicate: 0.05, Reorder: 0.1})
		s := r.connect(t, "udp")
		s.SetReceiveTimeout(100 * time.Millisecond)
		for seq := range uint32(200) {
			tries = append(tries, pingUntilEchoed(t, s, seq))
		}
		stats = r.n.Stats()
	})
	return tries, stats
}

func TestSameSeedSameFaults(t *testing.T) {
	a, sa := lossyRun(t, 42)
	b, sb := lossyRun(t, 42)
	if !slices.Equal(a, b) || sa != sb {
		t.Fatalf("seed 42 twice gave different runs:\n%v %+v\n%v %+v", a, sa, b, sb)
	}
	c, sc := lossyRun(t, 43)
	if slices.Equal(a, c) && sa == sc {
		t.Fatalf("seeds 42 and 43 gave the same run")
	}
	t.Logf("seed 42: %+v", sa)
}

func TestFaultRates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := simnet.New(7)
		srv := n.AddHost("server", "10.0.0.1")
		dev := n.AddHost("device", "10.0.0.2")
		dev.SetLink(simnet.LinkConfig{Loss: 0.3, Duplicate: 0.1, Reorder: 0.2, Delay: time.Millisecond})
		pc, err := srv.ListenPacket("udp", ":9")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		s, _ := dev.NewSocket("udp", nil)
		defer s.Close()
		if err := s.Connect(context.Background(), "10.0.0.1", "9"); err != nil {
			t.Fatal(err)
		}
		const total = 20000
		got := make([]uint32, 0, total)
		buf := make([]byte, 8)
		for i := range uint32(total) {
			s.Send(binary.BigEndian.AppendUint32(nil, i))
			if i%100 == 99 {
				time.Sleep(50 * time.Millisecond)
				pc.SetReadDeadline(time.Now())
				for {
					k, _, err := pc.ReadFrom(buf)
					if err != nil {
						break
					}
					got = append(got, binary.BigEndian.Uint32(buf[:k]))
				}
				pc.SetReadDeadline(time.Time{})
			}
		}
		st := n.Stats()
		lossRate := float64(st.Lost) / total
		dupRate := float64(st.Duplicated) / float64(total-st.Lost)
		if lossRate < 0.27 || lossRate > 0.33 {
			t.Errorf("lost %.3f of datagrams, configured 0.3", lossRate)
		}
		if dupRate < 0.08 || dupRate > 0.12 {
			t.Errorf("duplicated %.3f of datagrams that got through, configured 0.1", dupRate)
		}
		if int(st.Delivered) != len(got) {
			t.Errorf("stats say %d delivered, server read %d", st.Delivered, len(got))
		}
		inversions := 0
		for i := 1; i < len(got); i++ {
			if got[i] < got[i-1] {
				inversions++
			}
		}
		if inversions == 0 {
			t.Error("Reorder 0.2 delivered everything in order")
		}
		t.Logf("%+v, %d inversions", st, inversions)
	})
}

func TestLinkDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, 1, "udp")
		s := r.connect(t, "udp")
		r.dev.SetDown(true)
		if err := s.Send([]byte("x")); !errors.Is(err, syscall.ENETUNREACH) {
			t.Fatalf("Send over a link that is down: %v, want ENETUNREACH", err)
		}
		r.dev.SetDown(false)
		r.srv.SetDown(true) // a black hole seen from the device
		s.SetReceiveTimeout(time.Second)
		if err := s.Send([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Receive(make([]byte, 8)); !sock.IsTimeout(err) {
			t.Fatalf("Receive from a host that is down: %v, want a timeout", err)
		}
	})
}

func TestStreamSurvivesOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, 1, "tcp")
		r.dev.SetLink(simnet.LinkConfig{Delay: 20 * time.Millisecond, Loss: 0.1})
		s := r.connect(t, "tcp")
		s.SetReceiveTimeout(time.Minute)
		r.srv.SetDown(true) // the device's sends go out, but are lost on arrival
		msg := bytes.Repeat([]byte("stream"), 10000)
		if err := s.Send(msg); err != nil {
			t.Fatal(err)
		}
		time.AfterFunc(10*time.Second, func() { r.srv.SetDown(false) })
		start := time.Now()
		got := make([]byte, 0, len(msg))
		buf := make([]byte, 4096)
		for len(got) < len(msg) {
			n, err := s.Receive(buf)
			if err != nil || n == 0 {
				t.Fatalf("Receive after %d bytes: %d, %v", len(got), n, err)
			}
			got = append(got, buf[:n]...)
		}
		if !bytes.Equal(got, msg) {
			t.Fatal("echo differs from what was sent")
		}
		if el := time.Since(start); el < 10*time.Second || el > 20*time.Second {
			t.Errorf("echo came back after %v; the outage was 10s and the RTO caps at 4s", el)
		}
	})
}

func TestUDPRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, 1, "udp")
		s, _ := r.dev.NewSocket("udp", nil)
		defer s.Close()
		if err := s.Connect(context.Background(), "server.sim", "9999"); err != nil {
			t.Fatal(err)
		}
		if err := s.Send([]byte("anyone?")); err != nil {
			t.Fatal(err)
		}
		_, err := s.Receive(make([]byte, 8))
		if !errors.Is(err, sock.ErrConnRefused) || !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("Receive after a send to a closed port: %v, want ErrConnRefused", err)
		}
	})
}

func TestTCPRefusedTriesNextAddress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := simnet.New(1)
		a := n.AddHost("a", "10.0.0.1") // nothing listens here
		b := n.AddHost("b", "10.0.0.3")
		dev := n.AddHost("device", "10.0.0.2")
		_ = a
		startEcho(t, b, "tcp", ":7")
		n.DNS().Set("server.sim", netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.3"))
		var pe sock.PreferredEndpoint
		s, _ := dev.NewSocket("tcp", &sock.Config{Preferred: &pe})
		defer s.Close()
		if err := s.Connect(context.Background(), "server.sim", "7"); err != nil {
			t.Fatal(err)
		}
		if host, _ := s.Association().RemoteHost(); host != "10.0.0.3" {
			t.Fatalf("connected to %s, want 10.0.0.3 after 10.0.0.1 refused", host)
		}
		if got, _ := pe.Load(); got != netip.MustParseAddrPort("10.0.0.3:7") {
			t.Fatalf("preferred endpoint = %v, want 10.0.0.3:7", got)
		}
	})
}

func TestStreamEOF(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := simnet.New(1)
		srv := n.AddHost("server", "10.0.0.1")
		dev := n.AddHost("device", "10.0.0.2")
		ln, err := srv.Listen("tcp", ":80")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("bye"))
			c.Close()
		}()
		s, _ := dev.NewSocket("tcp", nil)
		defer s.Close()
		if err := s.Connect(context.Background(), "10.0.0.1", "80"); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(io.LimitReader(readerOf{s}, 100))
		if err != nil || string(got) != "bye" {
			t.Fatalf("read %q, %v; want \"bye\" then the peer's close", got, err)
		}
	})
}

// readerOf adapts a stream socket to io.Reader: the peer's close, which a
// socket reads as 0 bytes, becomes io.EOF.
type readerOf struct{ s sock.Socket }

func (r readerOf) Read(b []byte) (int, error) {
	n, err := r.s.Receive(b)
	if n == 0 && err == nil {
		return 0, io.EOF
	}
	return n, err
}

// TestNotifyRead: the function is called when data arrives on an empty
// queue (once for a burst read out whole), at once when data waits as it
// is installed, never after NotifyRead(nil), and again on a new endpoint
// after a reconnect.
func TestNotifyRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := simnet.New(1)
		a, b := n.AddHost("a", "10.0.0.1"), n.AddHost("b", "10.0.0.2")
		pc, err := b.ListenPacket("udp", ":9")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		s, err := a.NewSocket("udp", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var calls atomic.Int32
		s.NotifyRead(func() { calls.Add(1) })
		ctx := context.Background()
		if err := s.Connect(ctx, "10.0.0.2", "9"); err != nil {
			t.Fatal(err)
		}
		if err := s.Send([]byte("hi")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 16)
		_, from, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		send := func(k int) {
			for range k {
				if _, err := pc.WriteTo([]byte("x"), from); err != nil {
					t.Fatal(err)
				}
			}
			synctest.Wait()
		}
		drain := func() (k int) {
			s.SetReceiveTimeout(0)
			for {
				if _, err := s.Receive(buf); err != nil {
					if !sock.IsTimeout(err) {
						t.Fatal(err)
					}
					return k
				}
				k++
			}
		}
		send(3) // one burst: one call
		if got := calls.Load(); got != 1 {
			t.Errorf("%d calls for a burst of 3, want 1", got)
		}
		if got := drain(); got != 3 {
			t.Errorf("drained %d, want 3", got)
		}
		send(1)
		if got := calls.Load(); got != 2 {
			t.Errorf("%d calls after a second datagram, want 2", got)
		}
		s.NotifyRead(func() { calls.Add(10) }) // data waits: called at once
		if got := calls.Load(); got != 12 {
			t.Errorf("calls %d, want 12: a new function sees waiting data", got)
		}
		drain()
		s.NotifyRead(nil)
		send(1)
		if got := calls.Load(); got != 12 {
			t.Errorf("calls %d after NotifyRead(nil)", got)
		}
		drain()
		s.NotifyRead(func() { calls.Add(100) })
		if err := s.Connect(ctx, "10.0.0.2", "9"); err != nil { // a new endpoint
			t.Fatal(err)
		}
		if err := s.Send([]byte("again")); err != nil {
			t.Fatal(err)
		}
		if _, from, err = pc.ReadFrom(buf); err != nil {
			t.Fatal(err)
		}
		send(1)
		if got := calls.Load(); got != 112 {
			t.Errorf("calls %d after a reconnect, want 112", got)
		}
	})
}

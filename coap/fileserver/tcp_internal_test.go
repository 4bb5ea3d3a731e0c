package fileserver

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/coap"
)

// pipeListener hands out one end of a net.Pipe per dial: inside a
// synctest bubble, a connection whose time is the bubble's.
type pipeListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{} }

// pipeClient is the client's end of a connection, in CoAP over TCP.
type pipeClient struct {
	t      *testing.T
	c      net.Conn
	framer *coap.Framer
	m      coap.Message
}

// dial connects to the server, reads its CSM and sends one offering BERT.
func (l *pipeListener) dial(t *testing.T) *pipeClient {
	a, b := net.Pipe()
	l.ch <- a
	pc := &pipeClient{t: t, c: b, framer: coap.NewFramer(1 << 20)}
	t.Cleanup(func() { b.Close() })
	if m, err := pc.read(); err != nil || m.Code != coap.CSM {
		t.Fatalf("the server's first frame: %v", err)
	}
	csm := &coap.Message{Code: coap.CSM}
	csm.Options, _ = coap.AppendUint(csm.Options, nil, coap.MaxMessageSize, 1<<20)
	csm.Options = csm.Options.Add(coap.Option{ID: coap.BlockWiseTransfer})
	pc.send(csm)
	return pc
}

func (pc *pipeClient) send(m *coap.Message) {
	pc.t.Helper()
	b, err := coap.AppendTCP(nil, m)
	if err != nil {
		pc.t.Fatal(err)
	}
	pc.write(b)
}

func (pc *pipeClient) write(b []byte) {
	pc.t.Helper()
	if _, err := pc.c.Write(b); err != nil {
		pc.t.Fatal(err)
	}
}

// read returns the next frame, or the error that ended the connection.
func (pc *pipeClient) read() (*coap.Message, error) {
	for {
		ok, err := pc.framer.Next(&pc.m)
		if err != nil || ok {
			return &pc.m, err
		}
		n, err := pc.c.Read(pc.framer.Space())
		if n == 0 && err != nil {
			return nil, err
		}
		pc.framer.Advance(n)
	}
}

// serveTCPPipes runs a server of dir over a pipeListener until the test
// ends.
func serveTCPPipes(t *testing.T, dir string, opts *Options) (*Server, *pipeListener) {
	opts.Logger = slog.New(slog.DiscardHandler)
	s, err := New(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	ln := newPipeListener()
	done := make(chan error)
	go func() { done <- s.ServeTCP(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("ServeTCP = %v", err)
		}
	})
	return s, ln
}

func getBERT(path string, num uint32) *coap.Message {
	m := &coap.Message{Code: coap.GET, Token: []byte{byte(num)}}
	m.Options = m.Options.Add(coap.Option{ID: coap.URIPath, Value: []byte(path)})
	m.Options, _ = coap.AppendUint(m.Options, nil, coap.Block2, coap.Block{Num: num, SZX: coap.BERT}.Value())
	return m
}

// TestTCPIdleTimeout: a connection kept with CoAP Pings stays open past
// many idle timeouts; once they stop it is closed exactly IdleTimeout
// after the last. Time is synctest's: no wall clock in the outcome.
func TestTCPIdleTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const idle = time.Minute
		_, ln := serveTCPPipes(t, t.TempDir(), &Options{IdleTimeout: idle})
		c := ln.dial(t)
		for range 10 {
			time.Sleep(idle * 9 / 10)
			c.send(&coap.Message{Code: coap.Ping})
			if m, err := c.read(); err != nil || m.Code != coap.Pong {
				t.Fatalf("a Ping after %v idle: %v", idle*9/10, err)
			}
		}
		start := time.Now()
		if _, err := c.read(); !errors.Is(err, io.EOF) {
			t.Fatalf("after the Pings: %v, want the connection closed", err)
		}
		if d := time.Since(start); d != idle {
			t.Errorf("closed %v after the last Ping, want %v", d, idle)
		}
	})
}

// TestTCPFrameTimeout: a frame whose first byte came must be whole within
// FrameTimeout, however long the idle timeout; one that is, slowly, is
// answered.
func TestTCPFrameTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const frame = 5 * time.Second
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "f"), []byte("hello"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, ln := serveTCPPipes(t, dir, &Options{IdleTimeout: time.Hour, FrameTimeout: frame})
		req, _ := coap.AppendTCP(nil, getBERT("f", 0))
		c := ln.dial(t)
		c.write(req[:1])
		time.Sleep(frame - time.Millisecond)
		c.write(req[1:])
		if m, err := c.read(); err != nil || string(m.Payload) != "hello" {
			t.Fatalf("a frame whole just in time: %v", err)
		}
		time.Sleep(time.Minute)
		c.write(req[:3])
		start := time.Now()
		if _, err := c.read(); !errors.Is(err, io.EOF) {
			t.Fatalf("a frame never finished: %v, want the connection closed", err)
		}
		if d := time.Since(start); d != frame {
			t.Errorf("closed %v after the frame began, want %v", d, frame)
		}
	})
}

// TestTCPIdleConnectionHoldsNoBuffers: a connection that served a BERT
// block gives its buffers back bufferLinger after, and takes them again
// for its next request; closing a busy one gives them back too.
func TestTCPIdleConnectionHoldsNoBuffers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		data := bytes.Repeat([]byte("0123456789abcdef"), 16<<10) // 256 KiB
		if err := os.WriteFile(filepath.Join(dir, "fw.bin"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		s, ln := serveTCPPipes(t, dir, &Options{})
		clients := []*pipeClient{ln.dial(t), ln.dial(t), ln.dial(t)}
		for i, c := range clients {
			c.send(getBERT("fw.bin", uint32(i)))
			if m, err := c.read(); err != nil || m.Code != coap.Content || len(m.Payload) != 64<<10 {
				t.Fatalf("a BERT block: %v", err)
			}
		}
		synctest.Wait()
		if n := s.tcp.bufs.Load(); n != 3 {
			t.Errorf("%d connections hold buffers right after a block, want 3 (they linger)", n)
		}
		time.Sleep(bufferLinger)
		synctest.Wait()
		if n := s.tcp.bufs.Load(); n != 0 {
			t.Fatalf("%d idle connections hold buffers", n)
		}
		c := clients[0]
		c.send(getBERT("fw.bin", 3))
		if m, err := c.read(); err != nil || !bytes.Equal(m.Payload, data[3*64<<10:]) {
			t.Fatalf("a block after the connection was idle: %v", err)
		}
		synctest.Wait()
		if n := s.tcp.bufs.Load(); n != 1 {
			t.Errorf("%d connections hold buffers, want the busy one", n)
		}
		c.c.Close()
		synctest.Wait()
		if n := s.tcp.bufs.Load(); n != 0 {
			t.Errorf("%d connections hold buffers after the busy one closed", n)
		}
	})
}

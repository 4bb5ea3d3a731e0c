package fileserver_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/client"
	"github.com/tether-iot/tether/coap/fileserver"
	"github.com/tether-iot/tether/internal/testrig/coaprig"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// logSink records the server's log lines.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, string(p))
	return len(p), nil
}

func (l *logSink) has(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			return true
		}
	}
	return false
}

// serve starts a file server for dir on loopback UDP and TCP
// (coaprig.Loopback), logging into log if it is not nil, and returns the
// port of each.
func serve(t testing.TB, dir string, log *logSink) (udpPort, tcpPort string) {
	t.Helper()
	opts := &fileserver.Options{}
	if log != nil {
		opts.Logger = slog.New(slog.NewTextHandler(log, nil))
	}
	return coaprig.Loopback(t, dir, opts)
}

func get(t testing.TB, c *client.Conn, path string, size int) ([]byte, []client.Chunk, error) {
	var body []byte
	var chunks []client.Chunk
	err := c.GetBlocks(context.Background(), client.BlockRequest{Path: path, BlockSize: size}, func(ch client.Chunk) error {
		body = append(body, ch.Payload...)
		ch.Payload, ch.ETag = nil, bytes.Clone(ch.ETag)
		chunks = append(chunks, ch)
		return nil
	})
	return body, chunks, err
}

func writeFile(t testing.TB, dir, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestBlockSizesAndOptions(t *testing.T) {
	dir := t.TempDir()
	data := bytes.Repeat([]byte("tether "), 3000) // 21000 bytes
	writeFile(t, dir, "fw.bin", data)
	writeFile(t, dir, "small.json", []byte(`{"v":1}`))
	udp, tcp := serve(t, dir, nil)
	for _, network := range []string{"udp", "tcp"} {
		c := coaprig.Dial(t, network, map[string]string{"udp": udp, "tcp": tcp}[network])
		for size := 16; size <= 1024; size *= 2 {
			body, chunks, err := get(t, c, "fw.bin", size)
			if err != nil || !bytes.Equal(body, data) {
				t.Fatalf("%s, block size %d: %v (%d bytes)", network, size, err, len(body))
			}
			if network == "udp" && chunks[0].Block.Size() != size {
				t.Fatalf("%s: asked for %d-byte blocks, got %v", network, size, chunks[0].Block)
			}
			if chunks[0].Size2 != int64(len(data)) {
				t.Fatalf("first block Size2 = %d", chunks[0].Size2)
			}
			sum := sha256.Sum256(data)
			if !bytes.Equal(chunks[0].ETag, sum[:8]) || !bytes.Equal(chunks[len(chunks)-1].ETag, sum[:8]) {
				t.Fatalf("ETag %x, want the content's SHA-256 prefix %x", chunks[0].ETag, sum[:8])
			}
		}
		s := &coap.Message{Code: coap.GET}
		s.Options = s.Options.Add(coap.Option{ID: coap.URIPath, Value: []byte("small.json")})
		resp, err := c.Do(context.Background(), s)
		if err != nil || string(resp.Payload) != `{"v":1}` {
			t.Fatalf("small file: %v", err)
		}
		if cf, _ := coap.Uint(resp.Options, coap.ContentFormat); cf != 50 {
			t.Errorf("Content-Format of a .json file = %d, want 50", cf)
		}
		if _, has := coap.Bytes(resp.Options, coap.Block2); has {
			t.Errorf("a file that fits one message came with Block2")
		}
	}
}

// TestMaxBlockSize: a server configured for smaller blocks answers every
// larger request (BERT included) with its own size, at the same offset.
func TestMaxBlockSize(t *testing.T) {
	dir := t.TempDir()
	data := bytes.Repeat([]byte("tether "), 3000)
	writeFile(t, dir, "fw.bin", data)
	udp, tcp := coaprig.Loopback(t, dir, &fileserver.Options{MaxBlockSize: 256})
	for _, network := range []string{"udp", "tcp"} {
		c := coaprig.Dial(t, network, map[string]string{"udp": udp, "tcp": tcp}[network])
		for _, size := range []int{64, 256, 1024} {
			body, chunks, err := get(t, c, "fw.bin", size)
			if err != nil || !bytes.Equal(body, data) {
				t.Fatalf("%s, asking %d: %v (%d bytes)", network, size, err, len(body))
			}
			for _, ch := range chunks {
				if ch.Block.Size() != min(size, 256) || ch.Block.SZX == coap.BERT {
					t.Fatalf("%s, asking %d: block %v", network, size, ch.Block)
				}
			}
		}
	}
	if _, err := fileserver.New(dir, &fileserver.Options{MaxBlockSize: 1000}); err == nil {
		t.Fatal("MaxBlockSize 1000 (not a power of two) was accepted")
	}
}

// TestServeAfterClose: a Serve call that comes after Close (a goroutine
// started late) closes what it was given, as net/http's does, so nothing
// is left open.
func TestServeAfterClose(t *testing.T) {
	srv, err := fileserver.New(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.ServeUDP(pc); !errors.Is(err, fileserver.ErrServerClosed) {
		t.Errorf("ServeUDP after Close: %v", err)
	}
	if err := srv.ServeTCP(ln); !errors.Is(err, fileserver.ErrServerClosed) {
		t.Errorf("ServeTCP after Close: %v", err)
	}
	if _, _, err := pc.ReadFrom(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("the PacketConn is still open: %v", err)
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("the listener is still open: %v", err)
	}
}

func TestETagFollowsContent(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "f", []byte("version one"))
	udp, _ := serve(t, dir, nil)
	c := coaprig.Dial(t, "udp", udp)
	_, a, _ := get(t, c, "f", 1024)
	_, b, _ := get(t, c, "f", 1024)
	time.Sleep(10 * time.Millisecond) // a new modification time
	writeFile(t, dir, "f", []byte("version two"))
	body, d, err := get(t, c, "f", 1024)
	if err != nil || string(body) != "version two" {
		t.Fatalf("after the change: %q, %v", body, err)
	}
	if !bytes.Equal(a[0].ETag, b[0].ETag) || bytes.Equal(a[0].ETag, d[0].ETag) {
		t.Fatalf("ETags %x, %x, then %x after the content changed", a[0].ETag, b[0].ETag, d[0].ETag)
	}
}

func TestRefusedPaths(t *testing.T) {
	outside := t.TempDir()
	writeFile(t, outside, "secret", []byte("secret"))
	dir := t.TempDir()
	writeFile(t, dir, "ok", []byte("ok"))
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(dir, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("ok", filepath.Join(dir, "inside")); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"loop1": "loop2", "loop2": "loop1"} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	log := &logSink{}
	udp, _ := serve(t, dir, log)
	c := coaprig.Dial(t, "udp", udp)
	for _, tc := range []struct {
		segs []string
		want coap.Code
		log  string
	}{
		{[]string{"ok"}, coap.Content, ""},
		{[]string{"inside"}, coap.Content, ""}, // a link within the root is fine
		{[]string{"missing"}, coap.NotFound, ""},
		{[]string{"sub"}, coap.NotFound, ""},
		{[]string{"ok", "x"}, coap.NotFound, ""},     // below a regular file: ENOTDIR
		{[]string{"inside", "x"}, coap.NotFound, ""}, // and through a link
		{[]string{"loop1"}, coap.NotFound, ""},       // ELOOP
		{nil, coap.NotFound, ""},
		{[]string{"..", filepath.Base(outside), "secret"}, coap.BadRequest, "path refused"},
		{[]string{"sub", "..", "ok"}, coap.BadRequest, "path refused"},
		{[]string{"", "etc", "passwd"}, coap.BadRequest, "path refused"},
		{[]string{"a/b"}, coap.BadRequest, "path refused"},
		{[]string{"escape"}, coap.NotFound, "escapes"},
	} {
		m := &coap.Message{Code: coap.GET}
		for _, s := range tc.segs {
			m.Options = m.Options.Add(coap.Option{ID: coap.URIPath, Value: []byte(s)})
		}
		resp, err := c.Do(context.Background(), m)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Code != tc.want || bytes.Contains(resp.Payload, []byte("secret")) {
			t.Errorf("GET %q = %v %q, want %v", tc.segs, resp.Code, resp.Payload, tc.want)
		}
		if tc.log != "" && !log.has(tc.log) {
			t.Errorf("GET %q was not logged (%q)", tc.segs, tc.log)
		}
	}
	post := &coap.Message{Code: coap.POST}
	post.Options = post.Options.Add(coap.Option{ID: coap.URIPath, Value: []byte("ok")})
	if resp, err := c.Do(context.Background(), post); err != nil || resp.Code != coap.MethodNotAllowed {
		t.Errorf("POST: %v %v", resp, err)
	}
}

// TestOversizedFrame: a TCP client announcing a 4 GiB frame is disconnected
// without the server buffering it.
func TestOversizedFrame(t *testing.T) {
	_, tcp := serve(t, t.TempDir(), nil)
	c, err := net.Dial("tcp4", "127.0.0.1:"+tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte{0xf0, 0xff, 0xff, 0xff, 0x00, 0x01})
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1024)
	for {
		if _, err := c.Read(buf); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatal("the server kept a connection that announced a 4 GiB frame")
			}
			return // closed by the server
		}
	}
}

func TestPingAndJunkUDP(t *testing.T) {
	udp, _ := serve(t, t.TempDir(), nil)
	c, err := net.Dial("udp4", "127.0.0.1:"+udp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("junk"))
	c.Write([]byte{0x40, 0x00, 0x12, 0x34}) // CON, empty: a ping
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil || n != 4 || buf[0] != 0x70 || buf[2] != 0x12 || buf[3] != 0x34 {
		t.Fatalf("answer to a ping: % x, %v; want an RST with MID 0x1234", buf[:n], err)
	}
}

// oneConnListener hands out one connection, then blocks until closed. With
// one end of a net.Pipe it is a message-oriented connection, as a DTLS one
// is: one Write, one Read.
type oneConnListener struct {
	conn   net.Conn
	once   sync.Once
	closed chan struct{}
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	var c net.Conn
	l.once.Do(func() { c = l.conn })
	if c != nil {
		return c, nil
	}
	<-l.closed
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error   { close(l.closed); return nil }
func (l *oneConnListener) Addr() net.Addr { return &net.UDPAddr{} }

// failingConn is a connection whose handshake failed: every Read fails.
type failingConn struct {
	net.Conn // nil: only Read, Close and RemoteAddr are called
	closed   chan struct{}
}

func (c *failingConn) Read([]byte) (int, error) { return 0, errors.New("handshake failed") }
func (c *failingConn) Close() error             { close(c.closed); return nil }
func (c *failingConn) RemoteAddr() net.Addr     { return &net.UDPAddr{} }

// TestDatagramListenerClosesFailedConns: a connection that fails (a DTLS
// client that gave up its handshake) is closed by the server. pion's
// listener keeps its UDP socket open until every connection it handed out
// is closed, so a forgotten one leaked the socket and its reader.
func TestDatagramListenerClosesFailedConns(t *testing.T) {
	srv, err := fileserver.New(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	conn := &failingConn{closed: make(chan struct{})}
	ln := &oneConnListener{conn: conn, closed: make(chan struct{})}
	done := make(chan error)
	go func() { done <- srv.ServeDatagramListener(ln) }()
	select {
	case <-conn.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the failed connection was never closed")
	}
	srv.Close()
	if err := <-done; !errors.Is(err, fileserver.ErrServerClosed) {
		t.Fatalf("ServeDatagramListener = %v, want ErrServerClosed", err)
	}
}

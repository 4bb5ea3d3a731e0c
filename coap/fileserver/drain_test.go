package fileserver_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/fileserver"
	"github.com/tether-iot/tether/internal/testrig"
)

// blockClient asks a UDP server for blocks, one confirmable GET at a time.
type blockClient struct {
	t   *testing.T
	pc  net.PacketConn
	srv net.Addr
	mid uint16
}

func newBlockClient(t *testing.T, srv net.Addr) *blockClient {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return &blockClient{t: t, pc: pc, srv: srv}
}

// get asks for block num (1024 bytes) of path and returns the response.
func (c *blockClient) get(path string, num uint32) *coap.Message {
	c.t.Helper()
	c.mid++
	m := coap.Message{Type: coap.Confirmable, Code: coap.GET, MessageID: int32(c.mid), Token: []byte{byte(c.mid)}}
	m.Options = m.Options.Add(coap.Option{ID: coap.URIPath, Value: []byte(path)})
	m.Options, _ = coap.AppendUint(m.Options, nil, coap.Block2, coap.Block{Num: num, SZX: 6}.Value())
	b, err := coap.AppendUDP(nil, &m)
	if err != nil {
		c.t.Fatal(err)
	}
	c.pc.WriteTo(b, c.srv)
	in := make([]byte, 2048)
	c.pc.SetReadDeadline(time.Now().Add(10 * time.Second)) // a bound on a failure, not a measure
	n, _, err := c.pc.ReadFrom(in)
	if err != nil {
		c.t.Fatalf("GET %s block %d: %v", path, num, err)
	}
	var resp coap.Message
	if err := coap.DecodeUDP(in[:n], &resp); err != nil {
		c.t.Fatal(err)
	}
	return &resp
}

func startDrainRig(t *testing.T) (*fileserver.Server, net.Addr, *lockedBuffer) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "fw.bin"), testrig.Bytes(4096, 2), 0o644) // 4 blocks
	var buf lockedBuffer
	srv, err := fileserver.New(dir, &fileserver.Options{Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.ServeUDP(pc) }()
	t.Cleanup(func() { srv.Close(); <-served })
	return srv, pc.LocalAddr(), &buf
}

func waitDraining(t *testing.T, srv *fileserver.Server) {
	t.Helper()
	for start := time.Now(); !fileserver.Draining(srv); time.Sleep(time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatal("Shutdown did not begin")
		}
	}
}

// TestShutdownDrains: Shutdown waits for the transfer in flight, whose
// blocks are still served, while a transfer that would start is answered
// 5.03 with a Max-Age; it returns once the last block is served, and
// says one transfer was in flight and none was cut off.
func TestShutdownDrains(t *testing.T) {
	srv, addr, buf := startDrainRig(t)
	old, late := newBlockClient(t, addr), newBlockClient(t, addr)
	if m := old.get("fw.bin", 0); m.Code != coap.Content {
		t.Fatalf("block 0: %s", coap.CodeString(m.Code))
	}
	type result struct {
		d   fileserver.Drain
		err error
	}
	done := make(chan result, 1)
	go func() {
		d, err := srv.Shutdown(context.Background())
		done <- result{d, err}
	}()
	waitDraining(t, srv)
	m := late.get("fw.bin", 0)
	if age, _ := coap.Uint(m.Options, coap.MaxAge); m.Code != coap.ServiceUnavailable || age == 0 {
		t.Fatalf("a new transfer while draining: %s, Max-Age %d; want 5.03 with a Max-Age", coap.CodeString(m.Code), age)
	}
	for num := uint32(1); num < 4; num++ {
		select {
		case r := <-done:
			t.Fatalf("Shutdown returned before the transfer in flight ended: %+v", r.d)
		default:
		}
		if m := old.get("fw.bin", num); m.Code != coap.Content {
			t.Fatalf("block %d of the transfer in flight: %s", num, coap.CodeString(m.Code))
		}
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown still waits after the last block")
	}
	if r.err != nil || r.d.InFlight != 1 || r.d.Left != 0 {
		t.Fatalf("Shutdown: %+v, %v; want 1 in flight, none left", r.d, r.err)
	}
	lines := logLines(t, buf)
	if len(lines) != 2 {
		t.Fatalf("%d access-log lines: %s", len(lines), buf.String())
	}
	fields(t, lines[0], map[string]any{"result": "5.03", "remote": late.pc.LocalAddr().String()})
	fields(t, lines[1], map[string]any{"result": "2.05", "blocks": float64(4), "bytes": float64(4096), "remote": old.pc.LocalAddr().String()})
}

// TestShutdownCutsOff: when its context ends first, Shutdown closes the
// server with the transfer still in flight, says so, and the access log
// has it incomplete.
func TestShutdownCutsOff(t *testing.T) {
	srv, addr, buf := startDrainRig(t)
	c := newBlockClient(t, addr)
	c.get("fw.bin", 0)
	c.get("fw.bin", 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for !fileserver.Draining(srv) {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	d, err := srv.Shutdown(ctx)
	if err != nil || d.InFlight != 1 || d.Left != 1 {
		t.Fatalf("Shutdown: %+v, %v; want 1 in flight and 1 left", d, err)
	}
	lines := logLines(t, buf)
	if len(lines) != 1 {
		t.Fatalf("%d access-log lines: %s", len(lines), buf.String())
	}
	fields(t, lines[0], map[string]any{"result": "incomplete", "blocks": float64(2), "bytes": float64(2048)})
}

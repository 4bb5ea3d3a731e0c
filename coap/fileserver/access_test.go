package fileserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/client"
	"github.com/tether-iot/tether/coap/fileserver"
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/internal/testrig/coaprig"
)

// recorder is an Observer that keeps what it is told.
type recorder struct {
	mu        sync.Mutex
	requests  map[coap.Code]int
	blocks    int
	bytes     int
	transfers []fileserver.Transfer
	conns     map[fileserver.Transport]int
	refused   map[string]int
	ended     chan fileserver.Transfer
}

func newRecorder() *recorder {
	return &recorder{requests: map[coap.Code]int{}, conns: map[fileserver.Transport]int{}, refused: map[string]int{},
		ended: make(chan fileserver.Transfer, 100)}
}

func (r *recorder) Request(_ fileserver.Transport, c coap.Code) {
	r.mu.Lock()
	r.requests[c]++
	r.mu.Unlock()
}

func (r *recorder) Block(_ fileserver.Transport, n int) {
	r.mu.Lock()
	r.blocks++
	r.bytes += n
	r.mu.Unlock()
}

func (r *recorder) Transfer(x fileserver.Transfer) {
	r.mu.Lock()
	r.transfers = append(r.transfers, x)
	r.mu.Unlock()
	r.ended <- x
}

func (r *recorder) Conn(t fileserver.Transport, _ net.Conn, open bool) {
	r.mu.Lock()
	if open {
		r.conns[t]++
	} else {
		r.conns[t]--
	}
	r.mu.Unlock()
}

func (r *recorder) Handshake(fileserver.Transport, net.Conn, error) {}

func (r *recorder) Refused(_ fileserver.Transport, reason string) {
	r.mu.Lock()
	r.refused[reason]++
	r.mu.Unlock()
}

// logLines returns the JSON records of the access log ("transfer").
func logLines(t *testing.T, buf *lockedBuffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec map[string]any
		if line == "" {
			continue
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["msg"] == "transfer" {
			out = append(out, rec)
		}
	}
	return out
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// fields checks an access-log record's fields, all but its duration.
func fields(t *testing.T, rec map[string]any, want map[string]any) {
	t.Helper()
	for k, v := range want {
		if got := rec[k]; got != v {
			t.Errorf("access log %s = %v (%T), want %v; the record: %v", k, got, got, v, rec)
		}
	}
	if _, ok := rec["duration"]; !ok {
		t.Errorf("access log without a duration: %v", rec)
	}
}

// TestAccessLogQBlock2: a Q-Block2 transfer over UDP, its first block
// confirmable and the rest in paced bursts, is one line once its last
// block was served and NON_TIMEOUT passed: the client, the path, every
// byte and block sent (block 0 twice), how long it took and 2.05; a
// request for a missing file is a line of its own, 4.04.
func TestAccessLogQBlock2(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf lockedBuffer
		rec := newRecorder()
		r := newQRig(t, map[string]int{"fw.bin": 40 * 1024}, &fileserver.Options{
			QBlock: coap.NonParams{AckRandomFactor: 1}, Observer: rec,
			Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
		r.answer("fw.bin")
		r.get(coap.NonConfirmable, 1, "fw.bin", "0/1/1024")
		time.Sleep(time.Minute)
		synctest.Wait()
		r.get(coap.Confirmable, 2, "nope")
		time.Sleep(time.Second)
		synctest.Wait()
		lines := logLines(t, &buf)
		if len(lines) != 2 {
			t.Fatalf("%d access-log lines, want 2: %s", len(lines), buf.String())
		}
		fields(t, lines[0], map[string]any{"transport": "udp", "remote": "10.0.0.2:40000", "path": "/fw.bin",
			"bytes": float64(41 * 1024), "blocks": float64(41), "result": "2.05"})
		if d := time.Duration(lines[0]["duration"].(float64)); d <= 0 || d >= time.Minute {
			t.Errorf("duration %v", d)
		}
		fields(t, lines[1], map[string]any{"transport": "udp", "path": "/nope", "bytes": float64(0), "blocks": float64(0), "result": "4.04"})
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if rec.blocks != 41 || rec.bytes != 41*1024 || rec.requests[coap.Content] != 2 || rec.requests[coap.NotFound] != 1 || len(rec.transfers) != 2 {
			t.Errorf("observed %d blocks, %d bytes, requests %v, %d transfers", rec.blocks, rec.bytes, rec.requests, len(rec.transfers))
		}
	})
}

// TestAccessLogTCP: over TCP a transfer's line comes as its last block
// is sent, and a connection is reported open and closed.
func TestAccessLogTCP(t *testing.T) {
	dir := t.TempDir()
	data := testrig.Bytes(5000, 1)
	os.WriteFile(filepath.Join(dir, "fw.bin"), data, 0o644)
	var buf lockedBuffer
	rec := newRecorder()
	srv, err := fileserver.New(dir, &fileserver.Options{Observer: rec, Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	_, port := coaprig.RunLoopback(t, srv)
	c := coaprig.Dial(t, "tcp", port)
	var got []byte
	if err := c.GetBlocks(context.Background(), client.BlockRequest{Path: "/fw.bin", BlockSize: 1024}, func(ch client.Chunk) error {
		got = append(got, ch.Payload...)
		return nil
	}); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("GET: %v, %d bytes", err, len(got))
	}
	select {
	case x := <-rec.ended:
		if x.Transport != fileserver.TCP || x.Path != "/fw.bin" || x.Bytes != 5000 || x.Blocks < 1 || x.Result != "2.05" ||
			!strings.HasPrefix(x.Remote, "127.0.0.1:") {
			t.Errorf("transfer %+v", x)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no access-log line after the transfer")
	}
	lines := logLines(t, &buf)
	if len(lines) != 1 {
		t.Fatalf("%d lines: %s", len(lines), buf.String())
	}
	fields(t, lines[0], map[string]any{"transport": "tcp", "path": "/fw.bin", "bytes": float64(5000), "result": "2.05"})
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.conns[fileserver.TCP] != 1 {
		t.Errorf("%d TCP connections open, want 1", rec.conns[fileserver.TCP])
	}
}

// TestNoMetricsLibrary: the Observer is how metrics get out, so that a
// program that serves files links no metrics library it did not choose.
func TestNoMetricsLibrary(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.Contains(dep, "prometheus") || strings.Contains(dep, "opentelemetry") {
			t.Errorf("fileserver depends on %s", dep)
		}
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/internal/testrig"
)

// serveProc is tether serve run in this process with --log-format json.
type serveProc struct {
	t      *testing.T
	mu     sync.Mutex
	stderr bytes.Buffer
	cancel context.CancelFunc
	code   chan int
}

func (p *serveProc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.Write(b)
}

// records returns the log records written so far.
func (p *serveProc) records() []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(p.stderr.Bytes()))
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) == nil {
			out = append(out, rec)
		}
	}
	return out
}

// await returns the first record for which ok holds, waiting for it.
func (p *serveProc) await(what string, ok func(map[string]any) bool) map[string]any {
	p.t.Helper()
	for start := time.Now(); time.Since(start) < 20*time.Second; time.Sleep(10 * time.Millisecond) {
		for _, rec := range p.records() {
			if ok(rec) {
				return rec
			}
		}
	}
	p.t.Fatalf("no log record %s in:\n%s", what, p.stderr.String())
	return nil
}

// startServe runs serve DIR ARGS --log-format json until stop or the
// test's end.
func startServe(t *testing.T, dir string, args ...string) *serveProc {
	p := &serveProc{t: t, code: make(chan int, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() {
		p.code <- run(ctx, append([]string{"serve", dir, "--log-format", "json"}, args...), io.Discard, p)
	}()
	t.Cleanup(func() { p.stop() })
	return p
}

// stop ends serve as a signal would, and returns its exit status.
func (p *serveProc) stop() int {
	p.cancel()
	select {
	case c := <-p.code:
		p.code <- c
		return c
	case <-time.After(30 * time.Second):
		p.t.Fatal("serve did not stop")
		return -1
	}
}

func (p *serveProc) addr(key string) string {
	p.t.Helper()
	rec := p.await(key+" address", func(r map[string]any) bool { _, ok := r[key].(string); return ok })
	return rec[key].(string)
}

// metricValue returns the value of one series in a Prometheus text
// exposition ("name{a=\"x\",b=\"y\"}"), and whether it is there.
func metricValue(text, series string) (float64, bool) {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServeMetricsAfterADownload: serve --metrics on loopback, port 0,
// serves the counters of a download over coap (Block2, a request a block)
// and one over coaps (Q-Block2, get's default there: a few requests, the
// blocks in bursts): the requests, body bytes and blocks, the transfers by result, the DTLS
// handshake; /healthz is ok. The access log names the DTLS client by its
// PSK identity, and Ctrl-C logs the drain.
func TestServeMetricsAfterADownload(t *testing.T) {
	dir := t.TempDir()
	data := testrig.Bytes(10<<10, 3)
	os.WriteFile(filepath.Join(dir, "fw.bin"), data, 0o644)
	p := startServe(t, dir, "--udp", "127.0.0.1:0", "--dtls", "127.0.0.1:0", "--psk-id", "device-1", "--psk-hex", "746574686572",
		"--metrics", "127.0.0.1:0")
	udp, dtlsAddr, metrics := p.addr("udp"), p.addr("dtls"), p.addr("addr")
	out := filepath.Join(t.TempDir(), "fw.bin")
	if code, _, stderr := runCmd("get", "coap://"+udp+"/fw.bin", "-o", out, "-q"); code != 0 {
		t.Fatalf("get coap: exit %d: %s", code, stderr)
	}
	if code, _, stderr := runCmd("get", "coaps://"+dtlsAddr+"/fw.bin", "-o", out+"2", "-q", "--psk-id", "device-1", "--psk", "tether"); code != 0 {
		t.Fatalf("get coaps: exit %d: %s", code, stderr)
	}
	// Over UDP and DTLS a transfer's line comes two seconds after its last
	// block (blocks asked for again meanwhile count with it).
	line := p.await("transfer over dtls", func(r map[string]any) bool { return r["msg"] == "transfer" && r["transport"] == "dtls" })
	for k, want := range map[string]any{"identity": "device-1", "path": "/fw.bin", "result": "2.05"} {
		if line[k] != want {
			t.Errorf("access log %s = %v, want %v: %v", k, line[k], want, line)
		}
	}
	// Every byte once at least: a block the client asked for again (a
	// loaded machine makes Q-Block2's timers fire) counts each time.
	if b, _ := line["bytes"].(float64); b < float64(len(data)) {
		t.Errorf("access log bytes = %v, want %d or more: %v", line["bytes"], len(data), line)
	}
	p.await("transfer over udp", func(r map[string]any) bool { return r["msg"] == "transfer" && r["transport"] == "udp" })

	code, text := httpGet(t, "http://"+metrics+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for series, min := range map[string]float64{
		`tether_serve_requests_total{code="2.05",transport="udp"}`:     10,
		`tether_serve_requests_total{code="2.05",transport="dtls"}`:    1,
		`tether_serve_body_bytes_total{transport="udp"}`:               float64(len(data)),
		`tether_serve_body_bytes_total{transport="dtls"}`:              float64(len(data)),
		`tether_serve_blocks_total{transport="udp"}`:                   10,
		`tether_serve_blocks_total{transport="dtls"}`:                  10,
		`tether_serve_transfers_total{result="2.05",transport="udp"}`:  1,
		`tether_serve_transfers_total{result="2.05",transport="dtls"}`: 1,
		`tether_serve_dtls_sessions_total{kind="full"}`:                1,
		`tether_serve_dtls_sessions_total{kind="resumed"}`:             0,
		`tether_serve_dtls_handshakes_displaced_total`:                 0,
		`tether_serve_dtls_live_sessions`:                              0,
		`tether_serve_connections{transport="tcp"}`:                    0,
	} {
		v, ok := metricValue(text, series)
		if !ok || v < min {
			t.Errorf("%s = %v (there: %v), want at least %v", series, v, ok, min)
		}
	}
	if code, body := httpGet(t, "http://"+metrics+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	p.stop()
	d := p.await("drained", func(r map[string]any) bool { return r["msg"] == "drained" })
	if d["in_flight"] != float64(0) || d["cut_off"] != float64(0) {
		t.Errorf("drained: %v", d)
	}
}

// rawGet sends a confirmable GET for block num (1024 bytes) of the path
// segments from pc to addr and returns the response's code.
func rawGet(t *testing.T, pc net.PacketConn, addr string, mid uint16, num uint32, path ...string) coap.Code {
	t.Helper()
	to, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	m := coap.Message{Type: coap.Confirmable, Code: coap.GET, MessageID: int32(mid), Token: []byte{byte(mid)}}
	for _, seg := range path {
		m.Options = m.Options.Add(coap.Option{ID: coap.URIPath, Value: []byte(seg)})
	}
	m.Options, _ = coap.AppendUint(m.Options, nil, coap.Block2, coap.Block{Num: num, SZX: 6}.Value())
	b, _ := coap.AppendUDP(nil, &m)
	pc.WriteTo(b, to)
	in := make([]byte, 2048)
	pc.SetReadDeadline(time.Now().Add(10 * time.Second)) // bounds a failure only
	n, _, err := pc.ReadFrom(in)
	if err != nil {
		t.Fatal(err)
	}
	var resp coap.Message
	if err := coap.DecodeUDP(in[:n], &resp); err != nil {
		t.Fatal(err)
	}
	return resp.Code
}

// TestServeDrainsOnSignal: Ctrl-C or SIGTERM with a transfer in flight
// (its first block served, the rest not asked for) drains for
// --drain-timeout, then closes, and says so: one in flight, cut off; the
// access log has the transfer, incomplete.
func TestServeDrainsOnSignal(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "fw.bin"), testrig.Bytes(4096, 4), 0o644)
	p := startServe(t, dir, "--udp", "127.0.0.1:0", "--drain-timeout", "100ms")
	udp := p.addr("udp")
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if code := rawGet(t, pc, udp, 1, 0, "fw.bin"); code != coap.Content {
		t.Fatalf("block 0: %s", coap.CodeString(code))
	}
	p.stop()
	d := p.await("drained", func(r map[string]any) bool { return r["msg"] == "drained" })
	if d["in_flight"] != float64(1) || d["cut_off"] != float64(1) {
		t.Errorf("drained: %v", d)
	}
	x := p.await("transfer", func(r map[string]any) bool { return r["msg"] == "transfer" })
	if x["result"] != "incomplete" || x["blocks"] != float64(1) || x["remote"] != pc.LocalAddr().String() {
		t.Errorf("access log: %v", x)
	}
}

// TestServeRateLimitsWarnings: 200 requests for a path that climbs out
// ("..") are 200 refusals, but not 200 warnings: 3, and the rest counted
// once the window ends (internal/ratelog tests the counting). Each is in
// the access log, which is never limited.
func TestServeRateLimitsWarnings(t *testing.T) {
	dir := t.TempDir()
	p := startServe(t, dir, "--udp", "127.0.0.1:0")
	udp := p.addr("udp")
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for i := range 200 {
		if code := rawGet(t, pc, udp, uint16(i+1), 0, ".."); code != coap.BadRequest {
			t.Fatalf("GET /..: %s", coap.CodeString(code))
		}
	}
	p.stop()
	warns, lines := 0, 0
	var report string
	for _, r := range p.records() {
		switch {
		case r["msg"] == "fileserver: path refused":
			warns++
		case r["msg"] == "transfer" && r["result"] == "4.00":
			lines++
		case r["similar"] == "fileserver: path refused":
			report, _ = r["msg"].(string)
		}
	}
	if warns >= 200 || warns < 3 || lines != 200 || !strings.Contains(report, "similar warnings suppressed") {
		t.Fatalf("%d warnings, %d access-log lines, report %q; want 3 or a few, 200, and a count of the rest", warns, lines, report)
	}
	t.Logf("%d warnings; %s", warns, report)
}

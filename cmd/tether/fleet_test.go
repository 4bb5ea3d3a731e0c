package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tether-iot/tether/internal/peertest"
	"github.com/tether-iot/tether/lwm2m/lwm2mtest"
)

// TestFleet: 30 devices against the test LwM2M server register, are
// summarised, and all deregister when the fleet is stopped.
func TestFleet(t *testing.T) {
	srv := lwm2mtest.Start(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut bytes.Buffer
	done := make(chan error, 1)
	mport := peertest.FreePort(t)
	f := &fleetFlags{devices: 30, endpoint: "fleet-%d", ramp: 1000, lifetime: time.Minute, interval: 50 * time.Millisecond, json: true, stopBound: 10 * time.Second,
		metrics: "127.0.0.1:" + strconv.Itoa(mport)}
	go func() { done <- runFleet(ctx, f, srv.URL(), &lockedWriter{w: &out}, &errOut) }()
	wctx, wcancel := context.WithTimeout(context.Background(), time.Minute)
	defer wcancel()
	for i := range 30 {
		if _, err := srv.WaitRegistered(wctx, fmt.Sprintf("fleet-%d", i), 0); err != nil {
			t.Fatalf("device %d: %v", i, err)
		}
	}
	// The metrics count the 30 Registers (the summary, every 50 ms, sets
	// the gauges).
	var body string
	for range 100 {
		resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(mport) + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			if strings.Contains(body, `tether_fleet_exchanges_total{op="register"} 30`) && strings.Contains(body, "tether_fleet_devices_registered 30") {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(body, `tether_fleet_exchanges_total{op="register"} 30`) || !strings.Contains(body, "tether_fleet_exchange_seconds_count") {
		t.Errorf("metrics:\n%s", body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		if err := srv.WaitDeregistered(wctx, fmt.Sprintf("fleet-%d", i)); err != nil {
			t.Errorf("device %d did not deregister: %v", i, err)
		}
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var last summary
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
		t.Fatalf("the last line %q: %v", lines[len(lines)-1], err)
	}
	if last.Event != "stopped" || last.Started != 30 || last.Registered != 0 {
		t.Errorf("last summary %+v, want stopped with 30 started and none registered", last)
	}
}

func TestFleetUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"fleet"}, "fleet takes one SERVER-URL"},
		{[]string{"fleet", "coap://127.0.0.1", "--devices", "0"}, "--devices must be positive"},
		{[]string{"fleet", "coap://127.0.0.1", "--endpoint", "same"}, "--endpoint needs %d"},
		{[]string{"fleet", "coap://127.0.0.1", "--psk-id", "a-%d"}, "go together"},
	} {
		code, _, stderr := runCmd(tc.args...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, %q; want %d with %q", tc.args, code, stderr, exitUsage, tc.want)
		}
	}
}

// TestFleetAgainstWakaama: 1,000 devices register with Eclipse Wakaama's
// lwm2mserver, whose `list` then shows every one; runs when
// $TETHER_WAKAAMA_SERVER names it.
func TestFleetAgainstWakaama(t *testing.T) {
	bin := os.Getenv("TETHER_WAKAAMA_SERVER")
	if bin == "" {
		t.Skip("$TETHER_WAKAAMA_SERVER is not set: build Wakaama's examples/server and point it at lwm2mserver to run this test")
	}
	port := fmt.Sprint(freeWildcardPort(t))
	srv := exec.Command(bin, "-4", "-l", port)
	stdin, err := srv.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var console lockedBuffer
	srv.Stdout = &console
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Write([]byte("q\n")); srv.Process.Kill(); srv.Wait() }()
	const n = 1000
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	done := make(chan error, 1)
	f := &fleetFlags{devices: n, endpoint: "wk-fleet-%d", ramp: 500, lifetime: 5 * time.Minute, interval: time.Second, stopBound: 20 * time.Second}
	go func() { done <- runFleet(ctx, f, "coap://127.0.0.1:"+port, &lockedWriter{w: &out}, &out) }()
	registered := regexp.MustCompile(`New client #\d+ registered`)
	deadline := time.Now().Add(2 * time.Minute)
	for len(registered.FindAllString(console.String(), -1)) < n && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	mark := len(console.String())
	stdin.Write([]byte("list\n"))
	time.Sleep(2 * time.Second)
	listed := len(regexp.MustCompile(`name: "wk-fleet-\d+"`).FindAllString(console.String()[mark:], -1))
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Logf("Wakaama's list shows %d of %d devices; the fleet said:\n%s", listed, n, out.String())
	if listed != n {
		t.Errorf("Wakaama's list shows %d devices, want %d", listed, n)
	}
}

// lockedBuffer is a buffer a process writes and the test reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// freeWildcardPort is a UDP port free on every IPv4 address a moment ago,
// for a server that binds the wildcard address and never says which port
// it took.
func freeWildcardPort(t *testing.T) int {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

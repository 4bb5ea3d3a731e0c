package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tether-iot/tether/internal/delayrelay"
	"go.uber.org/goleak"
)

// TestMain checks for leaked goroutines, and is the command itself when
// DELAYRELAY_MAIN=1, so that the tests run it as a process (signals and
// exit statuses included) without building it.
func TestMain(m *testing.M) {
	if os.Getenv("DELAYRELAY_MAIN") == "1" {
		main()
		return
	}
	goleak.VerifyTestMain(m)
}

const wait = 20 * time.Second

// command is the command as a process, with these arguments.
func command(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "DELAYRELAY_MAIN=1")
	return cmd
}

// syncBuffer is a bytes.Buffer that a process writes while a test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for %s", wait, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// exitStatus waits (bounded) for cmd and returns its exit status.
func exitStatus(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(wait):
		cmd.Process.Kill()
		<-done
		t.Fatalf("the command did not end within %v", wait)
		return -1
	}
}

// TestRelayAsAProcess runs the command between a client and an echo
// server at 20 ms each way: the first line on stdout is the address to
// use, round trips take at least 40 ms, SIGUSR1 prints the statistics and
// SIGTERM ends the relay with them and exit status 0.
func TestRelayAsAProcess(t *testing.T) {
	if sigStats == nil {
		t.Skip("no statistics signal on this platform")
	}
	srv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 2048)
		for {
			n, from, err := srv.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			srv.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	defer wg.Wait()
	defer srv.Close()

	cmd := command("-server", srv.LocalAddr().String(), "-delay", "20ms", "-jitter", "2ms", "-seed", "5")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- s
		io.Copy(io.Discard, stdout)
	}()
	var addr string
	select {
	case addr = <-line:
	case <-time.After(wait):
		t.Fatalf("no address on stdout within %v; stderr: %s", wait, stderr.String())
	}
	addr = strings.TrimSpace(addr)
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatalf("first line %q: %v", addr, err)
	}
	defer c.Close()
	buf := make([]byte, 64)
	for i := range 5 {
		began := time.Now()
		if _, err := c.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(wait))
		if _, err := c.Read(buf); err != nil {
			t.Fatalf("round trip %d: %v", i, err)
		}
		if rtt := time.Since(began); rtt < 40*time.Millisecond {
			t.Errorf("round trip %d took %v, less than twice the 20ms one-way delay", i, rtt)
		}
	}
	const want = "up (client to server): 5 received, 5 forwarded, 0 dropped by loss"
	cmd.Process.Signal(sigStats)
	waitFor(t, "statistics after SIGUSR1", func() bool { return strings.Contains(stderr.String(), want) })
	cmd.Process.Signal(syscall.SIGTERM)
	if code := exitStatus(t, cmd); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0; stderr:\n%s", code, stderr.String())
	}
	out := stderr.String()
	if strings.Count(out, want) != 2 || !strings.Contains(out, "down (server to client): 5 received, 5 forwarded") ||
		!strings.Contains(out, "clients: 0 mapped now, 1 in all") {
		t.Errorf("stderr, want the statistics twice:\n%s", out)
	}
}

// TestExitStatuses: a command line the relay refuses ends with 2 and says
// why, before anything is opened; a port already taken ends with 1.
func TestExitStatuses(t *testing.T) {
	taken, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, tc := range []struct {
		args []string
		code int
		say  string
	}{
		{[]string{"-server", "192.0.2.1:5683"}, 2, `server address "192.0.2.1:5683": not a loopback address`},
		{[]string{"-server", "127.0.0.1:5683", "-listen", "0.0.0.0:0"}, 2, `listen address "0.0.0.0:0": not a loopback address`},
		{[]string{"-server", "127.0.0.1:5683", "-listen", ":7000"}, 2, "not a loopback address"},
		{[]string{}, 2, "-server is required"},
		{[]string{"-server", "127.0.0.1:5683", "-loss", "1.5"}, 2, "not a probability"},
		{[]string{"-server", "127.0.0.1:5683", "-delay", "fast"}, 2, "invalid value"},
		{[]string{"-server", "127.0.0.1:5683", "-max-queue", "0"}, 2, "-max-queue must be above 0"},
		{[]string{"-server", "127.0.0.1:5683", "now"}, 2, `unexpected argument "now"`},
		{[]string{"-server", "127.0.0.1:5683", "-listen", taken.LocalAddr().String()}, 1, "address already in use"},
		{[]string{"-server", "127.0.0.1:5683", "-rate", "fast"}, 2, "bits per second"},
		{[]string{"-server", "127.0.0.1:5683", "-rate", "-64k"}, 2, "bits per second"},
		{[]string{"-server", "127.0.0.1:5683", "-rate", "64kbit"}, 2, "bits per second"},
		{[]string{"-server", "127.0.0.1:5683", "-rate", "64k", "-queue", "16KB"}, 2, "bytes: 16384, 16KiB"},
		{[]string{"-server", "127.0.0.1:5683", "-queue", "16KiB"}, 2, "without a rate"},
		{[]string{"-h"}, 0, "ONE WAY"},
	} {
		var stdout, stderr syncBuffer
		cmd := command(tc.args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		code := exitStatus(t, cmd)
		if code != tc.code || !strings.Contains(stderr.String(), tc.say) {
			t.Errorf("%q: exit status %d, stderr:\n%s\nwant %d and %q", tc.args, code, stderr.String(), tc.code, tc.say)
		}
		if stdout.String() != "" {
			t.Errorf("%q: stdout %q, want nothing", tc.args, stdout.String())
		}
	}
}

// TestDirectionFlags: -delay, -jitter and -loss set both directions, and
// -up-* and -down-* win over them, even when set to 0.
func TestDirectionFlags(t *testing.T) {
	cfg, err := parse([]string{"-server", "127.0.0.1:5683", "-delay", "50ms", "-jitter", "5ms", "-loss", "0.1",
		"-up-delay", "10ms", "-down-loss", "0", "-down-jitter", "1ms", "-reorder", "-seed", "9"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	wantUp := delayrelay.Link{Delay: 10 * time.Millisecond, Jitter: 5 * time.Millisecond, Loss: 0.1}
	wantDown := delayrelay.Link{Delay: 50 * time.Millisecond, Jitter: time.Millisecond, Loss: 0}
	if cfg.Up != wantUp || cfg.Down != wantDown || !cfg.Reorder || cfg.Seed != 9 {
		t.Errorf("got %+v, want up %+v, down %+v, reorder, seed 9", cfg, wantUp, wantDown)
	}
	cfg, err = parse([]string{"-server", "127.0.0.1:5683"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Seed != 1 || cfg.Reorder || cfg.Listen != "127.0.0.1:0" || cfg.MaxQueued != delayrelay.DefaultMaxQueued || cfg.Idle != delayrelay.DefaultIdle {
		t.Errorf("defaults: %+v", cfg)
	}
}

// TestRateFlags: -rate, -queue and -overhead set both directions, -up-*
// and -down-* win over them (even when 0), with decimal prefixes for rates
// and binary ones for sizes.
func TestRateFlags(t *testing.T) {
	for _, tc := range []struct {
		args           []string
		wantUp, wantDn delayrelay.Link
	}{
		{[]string{"-rate", "64k", "-queue", "16KiB", "-overhead", "28"},
			delayrelay.Link{Rate: 64000, Queue: 16384, Overhead: 28}, delayrelay.Link{Rate: 64000, Queue: 16384, Overhead: 28}},
		{[]string{"-rate", "1.5M", "-queue", "4096", "-down-rate", "64000", "-down-queue", "1MiB"},
			delayrelay.Link{Rate: 1500000, Queue: 4096}, delayrelay.Link{Rate: 64000, Queue: 1 << 20}},
		{[]string{"-rate", "2G", "-up-rate", "0", "-queue", "1KiB", "-up-queue", "0"},
			delayrelay.Link{}, delayrelay.Link{Rate: 2e9, Queue: 1024}},
		{[]string{}, delayrelay.Link{}, delayrelay.Link{}},
	} {
		cfg, err := parse(append([]string{"-server", "127.0.0.1:5683"}, tc.args...), io.Discard)
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if cfg.Up != tc.wantUp || cfg.Down != tc.wantDn {
			t.Errorf("%q: up %+v, down %+v; want %+v, %+v", tc.args, cfg.Up, cfg.Down, tc.wantUp, tc.wantDn)
		}
	}
}

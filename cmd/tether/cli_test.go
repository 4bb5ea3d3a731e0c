package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/download"
	"github.com/tether-iot/tether/internal/peertest"
	"github.com/tether-iot/tether/internal/testpki"
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/internal/testrig/coaprig"
)

// runBin runs the built command and returns its exit status and output.
func runBin(t *testing.T, bin string, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, o.String(), e.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), o.String(), e.String()
	}
	t.Fatalf("%s %q: %v", bin, args, err)
	return -1, "", ""
}

// tlsFileServer serves dir over CoAP over TLS on loopback with the test
// PKI's server certificate, and returns its port.
func tlsFileServer(t *testing.T, dir string) string {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	coaprig.Serve(t, dir, nil, nil, tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{testpki.Get().Server}}))
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// TestExitCodes runs the built command into every exit status it
// documents, each from a real situation on loopback.
func TestExitCodes(t *testing.T) {
	bin := buildTether(t)
	data := testrig.Bytes(20<<10, 20)
	sum := sha256.Sum256(data)
	url, held := serveFile(t, data, 0)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "fw.bin"), data, 0o644)
	tlsPort := tlsFileServer(t, dir)
	stranger := filepath.Join(dir, "stranger.pem")
	os.WriteFile(stranger, testpki.Get().StrangerPEM, 0o600)
	hole, err := net.ListenPacket("udp4", "127.0.0.1:0") // reads, answers nothing
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	closed := strconv.Itoa(peertest.FreePort(t))   // nothing listens: TCP refuses
	mute, err := net.Listen("tcp4", "127.0.0.1:0") // never accepted: no TLS handshake ever answered
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	out := func(name string) string { return filepath.Join(t.TempDir(), name) }
	tests := []struct {
		code int
		args []string
		want string // in the error line
	}{
		{exitOK, []string{"get", url, "-o", out("ok"), "--sha256", hex.EncodeToString(sum[:])}, ""},
		{exitUsage, []string{"get"}, "get takes one URL"},
		{exitBadURL, []string{"get", "ftp://127.0.0.1/x"}, `scheme "ftp"`},
		{exitConnect, []string{"get", "coap+tcp://127.0.0.1:" + closed + "/fw.bin", "-o", out("c"), "--give-up", "1s"}, "connection refused"},
		{exitVerify, []string{"get", url, "-o", out("v"), "--sha256", strings.Repeat("ab", 32)}, "verification failed"},
		{exitServer, []string{"get", strings.Replace(url, "fw.bin", "nothing.bin", 1), "-o", out("n")}, "4.04 Not Found"},
		{exitFile, []string{"get", url, "-o", filepath.Join(dir, "no", "such", "dir", "f")}, "no such file or directory"},
		{exitGaveUp, []string{"get", "coap://" + hole.LocalAddr().String() + "/fw.bin", "-o", out("g"), "--give-up", "1s"}, "gave up after 1s"},
		{exitGaveUp, []string{"get", "https://" + mute.Addr().String() + "/fw.bin", "-o", out("t"), "--connect-timeout", "100ms", "--give-up", "2s"}, "connect timed out after 100ms"},
		{exitTooLarge, []string{"get", url, "-o", out("l"), "--max-size", "1K"}, "over the limit"},
		{exitAuth, []string{"get", "coaps+tcp://127.0.0.1:" + tlsPort + "/fw.bin", "-o", out("a"), "--ca", stranger}, "certificate signed by unknown authority"},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.code), func(t *testing.T) {
			code, stdout, stderr := runBin(t, bin, nil, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.want) {
				t.Fatalf("tether %q: exit %d, stderr %q; want %d and %q", tt.args, code, stderr, tt.code, tt.want)
			}
			if code != exitOK && stdout != "" {
				t.Fatalf("stdout carries %q on a failure", stdout)
			}
		})
	}
	t.Run("interrupted", func(t *testing.T) {
		held.Hold(8 << 10) // the run waits at 8 KiB until the signal
		defer held.Hold(0)
		cmd, stderr, o := startGet(t, bin, 1, url, "-o", out("i"))
		cmd.Process.Signal(syscall.SIGINT)
		err := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted || !strings.Contains(stderr.String(), "run the same command to resume") ||
			!strings.Contains(stderr.String(), o+download.PartSuffix+" kept: ") {
			t.Fatalf("after SIGINT: %v, %q", err, stderr.String())
		}
	})
	t.Run("resolve", func(t *testing.T) {
		ns := requireResolverless(t)
		code, _, stderr := runBin(t, "ip", nil, "netns", "exec", ns, bin, "get", "coap://fw.tether.invalid/fw.bin", "-o", out("r"), "--give-up", "1s")
		if code != exitResolve {
			t.Fatalf("an unresolvable name: exit %d, %q", code, stderr)
		}
	})
}

// requireResolverless makes a network namespace whose resolver is its own
// loopback, where nothing answers, so a name fails to resolve without a
// query leaving the machine; or skips (fails with TETHER_REQUIRE_PEERS=1).
func requireResolverless(t *testing.T) string {
	t.Helper()
	skip := rigSkipper(t, "a resolverless namespace", "ip")
	name := "tether-dns-" + strconv.Itoa(os.Getpid()%100000)
	etc := filepath.Join("/etc/netns", name) // ip netns exec mounts these over /etc
	if err := os.MkdirAll(etc, 0o755); err != nil {
		skip(err.Error())
	}
	t.Cleanup(func() { os.RemoveAll(etc) })
	os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte("nameserver 127.0.0.1\noptions attempts:1 timeout:1\n"), 0o644)
	os.WriteFile(filepath.Join(etc, "hosts"), []byte("127.0.0.1 localhost\n"), 0o644)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		skip("ip netns add: " + string(out))
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set lo up: %v %s", err, out)
	}
	return name
}

// TestHelpAndVersion: help for every command, by every spelling, exits 0
// and names every flag, with an example; --version names the build.
func TestHelpAndVersion(t *testing.T) {
	bin := buildTether(t)
	commands := map[string]func() *pflag.FlagSet{
		"get":   func() *pflag.FlagSet { return newGet(io.Discard, io.Discard).Flags() },
		"serve": func() *pflag.FlagSet { return newServe(io.Discard).Flags() },
		"device": func() *pflag.FlagSet {
			return newDevice(strings.NewReader(""), io.Discard, io.Discard).Flags()
		},
		"demo": func() *pflag.FlagSet { return newDemo(io.Discard).Flags() },
	}
	for name, flags := range commands {
		for _, args := range [][]string{{"help", name}, {name, "-h"}, {name, "--help"}} {
			code, stdout, stderr := runBin(t, bin, nil, args...)
			if code != 0 || !strings.Contains(stdout, "Examples:") {
				t.Errorf("tether %q: exit %d, %q %q", args, code, stdout, stderr)
			}
			flags().VisitAll(func(f *pflag.Flag) {
				if !strings.Contains(stdout, "--"+f.Name) {
					t.Errorf("tether %q does not name --%s", args, f.Name)
				}
				if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" && f.DefValue != "[]" && !strings.Contains(stdout, f.DefValue) {
					t.Errorf("tether %q does not give --%s's default %q", args, f.Name, f.DefValue)
				}
			})
		}
	}
	for _, args := range [][]string{{"help"}, {"--help"}, {"help", "exit-codes"}, {"help", "json"}} {
		if code, stdout, _ := runBin(t, bin, nil, args...); code != 0 || stdout == "" {
			t.Errorf("tether %q: exit %d", args, code)
		}
	}
	code, stdout, _ := runBin(t, bin, nil, "--version")
	if code != 0 || !strings.HasPrefix(stdout, "tether ") || !strings.Contains(stdout, "go1.") {
		t.Errorf("--version: exit %d, %q", code, stdout)
	}
	// Flags may follow the URL.
	data := testrig.Bytes(4<<10, 21)
	url, _ := serveFile(t, data, 0)
	if code, _, stderr := runBin(t, bin, nil, "get", "-q", url, "-o", filepath.Join(t.TempDir(), "f"), "--block-size", "256"); code != 0 {
		t.Errorf("flags around the URL: exit %d, %q", code, stderr)
	}
}

// event is every field the --json stream documents (tether help json).
type event struct {
	V           int      `json:"v"`
	Event       string   `json:"event"`
	URL         string   `json:"url"`
	File        string   `json:"file"`
	ResumedFrom *int64   `json:"resumed_from"`
	Written     *int64   `json:"written"`
	Total       *int64   `json:"total"`
	Rate        *int64   `json:"rate"`
	Error       string   `json:"error"`
	Next        string   `json:"next"`
	In          *float64 `json:"in"`
	SHA256      string   `json:"sha256"`
	Size        *int64   `json:"size"`
	Seconds     *float64 `json:"seconds"`
	Retries     *int     `json:"retries"`
	Exit        *int     `json:"exit"`
	Kept        *bool    `json:"kept"`
}

// TestJSONStream: a run that meets a server that is down, then up, then
// is taken offline and back, writes only documented events to stdout, each
// with its fields, in order.
func TestJSONStream(t *testing.T) {
	if sigOffline == nil {
		t.Skip("no offline signals on this platform")
	}
	bin := buildTether(t)
	data := testrig.Bytes(400<<10, 22)
	sum := sha256.Sum256(data)
	dir := testrig.File(t, "fw.bin", data)
	port := peertest.FreePort(t)
	url := "coap://127.0.0.1:" + strconv.Itoa(port) + "/fw.bin"
	cmd := exec.Command(bin, "get", url, "-o", filepath.Join(t.TempDir(), "fw.bin"), "--json")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var (
		events []event
		once   sync.Once
	)
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var e event
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		events = append(events, e)
		switch e.Event {
		case "retry": // the server is down (refused): start it
			once.Do(func() {
				pc, err := net.ListenPacket("udp4", "127.0.0.1:"+strconv.Itoa(port))
				if err != nil {
					t.Fatal(err)
				}
				coaprig.Serve(t, dir, nil, (&coaprig.Requests{Delay: 5 * time.Millisecond}).Conn(pc), nil)
			})
		case "progress":
			if !slices.ContainsFunc(events, func(e event) bool { return e.Event == "suspend" }) {
				cmd.Process.Signal(sigOffline) // offline...
			}
		case "suspend":
			cmd.Process.Signal(sigOnline) // ...and back
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v: %s", err, stderr.String())
	}
	var kinds []string
	for _, e := range events {
		kinds = append(kinds, e.Event)
		ok := e.V == 1
		switch e.Event {
		case "start":
			ok = ok && e.URL == url && e.File != "" && e.ResumedFrom != nil
		case "progress":
			ok = ok && e.Written != nil && e.Total != nil && e.Rate != nil
		case "retry":
			_, perr := time.Parse(time.RFC3339Nano, e.Next)
			ok = ok && e.Error != "" && perr == nil && e.In != nil
		case "suspend", "resume":
			ok = ok && e.Written != nil
		case "done":
			ok = ok && e.SHA256 == hex.EncodeToString(sum[:]) && *e.Size == int64(len(data)) && e.Seconds != nil && e.Retries != nil
		default:
			ok = false
		}
		if !ok {
			t.Errorf("event %+v does not carry its documented fields", e)
		}
	}
	want := []string{"start", "retry", "suspend", "resume", "done"}
	got := slices.DeleteFunc(slices.Clone(kinds), func(k string) bool { return k == "progress" })
	if !slices.Equal(slices.Compact(got), want) {
		t.Fatalf("events %v, want %v (with progress between)", kinds, want)
	}
}

// TestQueryReachesServer: a CoAP URL's query arrives as Uri-Query options,
// one per part, percent-decoded, and its host name as Uri-Host.
func TestQueryReachesServer(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	seen := make(chan []string, 1)
	go func() {
		buf := make([]byte, 2048)
		var m coap.Message
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if coap.DecodeUDP(buf[:n], &m) != nil {
				continue
			}
			var opts []string
			for _, o := range m.Options {
				if o.ID == coap.URIQuery || o.ID == coap.URIPath {
					opts = append(opts, string(o.Value))
				}
			}
			select {
			case seen <- opts:
			default:
			}
			resp := coap.Message{Type: coap.Acknowledgement, Code: coap.Content, MessageID: m.MessageID, Token: m.Token, Payload: []byte("hello")}
			b, _ := coap.AppendUDP(nil, &resp)
			pc.WriteTo(b, from)
		}
	}()
	url := "coap://" + pc.LocalAddr().String() + "/fw/a%20b.bin?v=2&x=a%26b&y=1+1"
	code, stdout, stderr := runBin(t, buildTether(t), nil, "get", url, "-o", "-", "-q")
	if code != 0 || stdout != "hello" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if got, want := <-seen, []string{"fw", "a b.bin", "v=2", "x=a&b", "y=1+1"}; !slices.Equal(got, want) {
		t.Fatalf("the server saw %q, want %q", got, want)
	}
}

// TestPerDeviceKeys: serve --psk-file holds one key per device; a device
// gets its file with its own key (from --psk-file or $TETHER_PSK); an
// identity the server does not know is refused at once (the server's
// alert), a known one with another device's key is refused too.
func TestPerDeviceKeys(t *testing.T) {
	dir := t.TempDir()
	data := testrig.Bytes(30<<10, 23)
	os.WriteFile(filepath.Join(dir, "fw.bin"), data, 0o644)
	keys := filepath.Join(t.TempDir(), "devices.psk")
	os.WriteFile(keys, []byte("# devices\ndevice-1 first key\ndevice-2 hex:7365636f6e64206b6579\n"), 0o600)
	port := strconv.Itoa(peertest.FreePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan int)
	go func() {
		served <- run(ctx, []string{"serve", dir, "--dtls", "127.0.0.1:" + port, "--psk-file", keys}, io.Discard, io.Discard)
	}()
	defer func() {
		cancel()
		if code := <-served; code != 0 {
			t.Errorf("serve exited %d", code)
		}
	}()
	url := "coaps://127.0.0.1:" + port + "/fw.bin"
	one := filepath.Join(t.TempDir(), "one.psk")
	os.WriteFile(one, []byte("device-2 hex:7365636f6e64206b6579\n"), 0o600)
	var code int
	var stderr string
	for range 50 { // the server may still be starting
		if code, _, stderr = runCmd("get", url, "-o", filepath.Join(t.TempDir(), "a"), "--psk-file", one, "--ack-timeout", "200ms"); code == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code != 0 {
		t.Fatalf("device-2 with its key from --psk-file: exit %d, %s", code, stderr)
	}
	t.Setenv(pskEnv, "device-1 first key")
	if code, _, stderr := runCmd("get", url, "-o", filepath.Join(t.TempDir(), "b")); code != 0 {
		t.Fatalf("device-1 with its key from $%s: exit %d, %s", pskEnv, code, stderr)
	}
	start := time.Now()
	t.Setenv(pskEnv, "stranger first key")
	code, _, stderr = runCmd("get", url, "-o", filepath.Join(t.TempDir(), "c"))
	if code != exitAuth || !strings.Contains(stderr, "alert") || time.Since(start) > 5*time.Second {
		t.Fatalf("an unknown identity: exit %d after %v, %q; want %d at once, from the server's alert", code, time.Since(start), stderr, exitAuth)
	}
}

// TestServeListensWhereTold: with one transport given, serve opens that
// one and nothing else (it used to open TCP on :5683 too); with none, it
// says what it defaults to. No global port is involved: what serve opens
// is read from this process's own sockets, and the default is moved to
// loopback port 0 for the test.
func TestServeListensWhereTold(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "fw.bin"), []byte("hello"), 0o644)
	port := strconv.Itoa(peertest.FreePort(t))
	before, canSee := tcpListeners(t)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan int)
	go func() {
		served <- run(ctx, []string{"serve", dir, "--udp", "127.0.0.1:" + port, "-q"}, io.Discard, io.Discard)
	}()
	var code int
	var stdout string
	for range 50 {
		if code, stdout, _ = runCmd("get", "coap://127.0.0.1:"+port+"/fw.bin", "-o", "-", "-q", "--ack-timeout", "200ms"); code == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code != 0 || stdout != "hello" {
		t.Fatalf("get from serve --udp: exit %d, %q", code, stdout)
	}
	if canSee {
		during, _ := tcpListeners(t)
		for l := range during {
			if !before[l] {
				t.Errorf("serve --udp also listens on TCP %s", l)
			}
		}
	} else {
		t.Log("this platform does not show a process's TCP listeners: only the default's message is checked")
	}
	cancel()
	<-served

	saved := defaultListen
	defaultListen = "127.0.0.1:0"
	defer func() { defaultListen = saved }()
	var buf bytes.Buffer
	stderr := &lockedWriter{w: &buf} // serve writes from its goroutine; read under the same lock
	said := func() string { stderr.mu.Lock(); defer stderr.mu.Unlock(); return buf.String() }
	ctx, cancel = context.WithCancel(context.Background())
	go func() { served <- run(ctx, []string{"serve", dir}, io.Discard, stderr) }()
	for !strings.Contains(said(), "serving") && !strings.Contains(said(), "tether: ") {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-served
	if !strings.Contains(said(), "no transport given: CoAP over UDP and TCP on 127.0.0.1:0") {
		t.Fatalf("serve with no transport: %q", said())
	}
}

// tcpListeners returns the local addresses of this process's listening TCP
// sockets, from /proc (Linux): the sockets in /proc/net/tcp{,6} in state
// LISTEN whose inode is one of this process's descriptors. It reports false
// where /proc does not show them.
func tcpListeners(t *testing.T) (map[string]bool, bool) {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil, false
	}
	ours := map[string]bool{}
	for _, fd := range fds {
		if l, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && strings.HasPrefix(l, "socket:[") {
			ours[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	out := map[string]bool{}
	for _, table := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			return nil, false
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) > 9 && f[3] == "0A" && ours[f[9]] { // 0A: LISTEN
				out[f[1]] = true
			}
		}
	}
	return out, true
}

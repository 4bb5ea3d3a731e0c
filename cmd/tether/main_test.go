package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
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

	"github.com/tether-iot/tether/download"
	"github.com/tether-iot/tether/internal/peertest"
	"github.com/tether-iot/tether/internal/testpki"
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/internal/testrig/coaprig"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// built is the command, built once for the tests that run it as a process.
var built struct {
	once sync.Once
	dir  string
	err  error
}

// serveFile serves data as /fw.bin on loopback UDP and returns its URL
// and the log of the blocks the server is asked for. Every datagram the
// server sends waits delay, so a download takes long enough to interrupt;
// Requests.Hold holds a download at a block, so a test interrupts a run
// where it wants, however fast the machine.
func serveFile(t *testing.T, data []byte, delay time.Duration) (string, *coaprig.Requests) {
	t.Helper()
	reqs := &coaprig.Requests{Delay: delay}
	reqs.SetSize(len(data))
	return coaprig.ServeFile(t, data, reqs.Conn), reqs
}

func runCmd(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(context.Background(), args, &o, &e)
	return code, o.String(), e.String()
}

// TestGetQBlock: get --qblock from the file server, which serves Q-Block2:
// the exact bytes, and the server saw a request for several blocks at a
// time, not one per block.
func TestGetQBlock(t *testing.T) {
	data := testrig.Bytes(200<<10, 2)
	url, srv := serveFile(t, data, 0)
	out := filepath.Join(t.TempDir(), "got.bin")
	sum := sha256.Sum256(data)
	code, _, stderr := runCmd("get", url, "-o", out, "--sha256", hex.EncodeToString(sum[:]), "--qblock", "-q")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if got, _ := os.ReadFile(out); sha256.Sum256(got) != sum {
		t.Fatal("SHA-256 differs")
	}
	if n := srv.GETs(); n == 0 || n > len(data)/1024/5 {
		t.Fatalf("the server read %d requests for %d blocks: not Q-Block2", n, len(data)/1024)
	}
}

func TestGet(t *testing.T) {
	data := testrig.Bytes(200<<10, 1)
	url, _ := serveFile(t, data, 0)
	out := filepath.Join(t.TempDir(), "got.bin")
	sum := sha256.Sum256(data)
	code, stdout, stderr := runCmd("get", url, "-o", out, "--sha256", hex.EncodeToString(sum[:]), "--json", "--block-size", "512")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	got, _ := os.ReadFile(out)
	if sha256.Sum256(got) != sum {
		t.Fatal("SHA-256 differs")
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	var last map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || last["event"] != "done" || last["sha256"] != hex.EncodeToString(sum[:]) {
		t.Fatalf("last JSON line %q: %v", lines[len(lines)-1], err)
	}
}

// TestUsageErrors: a mistake in the command line is exit 2, with one line
// that says what is wrong (and how to fix it, where that is clear).
func TestUsageErrors(t *testing.T) {
	url, _ := serveFile(t, []byte("x"), 0)
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{}, "a command is needed"},
		{[]string{"fly"}, `unknown command "fly"`},
		{[]string{"get"}, "get takes one URL"},
		{[]string{"get", url, "-o", filepath.Join(dir, "a"), "--block-size", "100"}, "power of two"},
		{[]string{"get", url, "--sha256", "zz"}, "64 hex digits"},
		{[]string{"get", url, "--give-up", "10"}, "--give-up needs a unit, e.g. 10s"},
		{[]string{"get", url, "-o", filepath.Join(dir, "w"), "--window", "65"}, "window 65"},
		{[]string{"get", url, "--no-such-flag"}, "unknown flag: --no-such-flag"},
		{[]string{"get", url, "--connect-timeout", "0s"}, "--connect-timeout takes a positive duration"},
		{[]string{"get", url, "-o", filepath.Join(dir, "q"), "--qblock", "--max-payloads", "0"}, "MAX_PAYLOADS 0 must be in 1..64"},
		{[]string{"get", url, "-o", filepath.Join(dir, "n"), "--qblock", "--no-qblock"}, "--qblock asks with Q-Block2 over coap too, --no-qblock never does: give one"},
		{[]string{"device", "coap://127.0.0.1", "--endpoint", "e", "--qblock", "--no-qblock"}, "--no-qblock never does: give one"},
		{[]string{"serve", dir, "--max-payloads", "65"}, "MAX_PAYLOADS 65 must be in 1..64"},
		{[]string{"serve", dir, "--non-timeout", "-1s"}, "negative NON_TIMEOUT"},
		{[]string{"get", "coap://x/", "-o", "y"}, "no path"},
		{[]string{"get", "coaps://x/y"}, "coaps:// needs credentials"},
		{[]string{"serve"}, "serve takes one directory"},
		{[]string{"serve", dir, "--dtls", ":0"}, "--dtls needs"},
		{[]string{"demo", "extra"}, "demo takes no arguments"},
		{[]string{"device"}, "device takes one SERVER-URL"},
		{[]string{"device", "coap://127.0.0.1"}, "device needs --endpoint NAME"},
		{[]string{"device", "http://127.0.0.1", "--endpoint", "e", "--state", dir}, "scheme must be coap, coaps, coap+tcp or coaps+tcp"},
		{[]string{"device", "coaps://127.0.0.1", "--endpoint", "e", "--state", dir}, "needs a PSK identity and key"},
		{[]string{"device", "coap://127.0.0.1/rd", "--endpoint", "e", "--state", dir}, "want coap[s][+tcp]://host[:port]"},
		{[]string{"device", "--bootstrap", "coaps://127.0.0.1", "--endpoint", "e", "--state", dir}, "bootstrap server"},
		{[]string{"device", "--bootstrap", "ftp://127.0.0.1", "--endpoint", "e", "--state", dir}, "scheme must be coap, coaps, coap+tcp or coaps+tcp"},
		{[]string{"device", "coap://127.0.0.1", "--endpoint", "e", "--device-info", filepath.Join(dir, "none")}, "--device-info"},
		{[]string{"device", "coap://127.0.0.1", "--endpoint", "e", "--device-info", "a", "--device-info-cmd", "b"}, "give one"},
		{[]string{"device", "coap://127.0.0.1", "--endpoint", "e", "--max-size", "lots"}, "--max-size"},
	} {
		code, stdout, stderr := runCmd(tc.args...)
		want := exitUsage
		if strings.Contains(tc.want, "no path") {
			want = exitBadURL
		}
		if code != want || !strings.Contains(stderr, tc.want) || stdout != "" {
			t.Errorf("tether %q: exit %d, stdout %q, stderr %q; want exit %d mentioning %q", tc.args, code, stdout, stderr, want, tc.want)
		}
		if !strings.HasPrefix(stderr, "tether: ") && !strings.Contains(stderr, "\ntether: ") {
			t.Errorf("tether %q: no 'tether: ' line in %q", tc.args, stderr)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) > 0 {
		t.Errorf("usage errors left files: %v", left)
	}
}

func TestDemo(t *testing.T) {
	code, stdout, stderr := runCmd("demo")
	if code != 0 || !strings.Contains(stdout, "verified") || !strings.Contains(stdout, "offline at") {
		t.Fatalf("demo: exit %d\n%s\n%s", code, stdout, stderr)
	}
	t.Log("\n" + stdout)
}

// buildTether builds the command for tests that run it as a process.
func buildTether(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "tether-bin-"); built.err != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", filepath.Join(built.dir, "tether"), ".").CombinedOutput()
		if err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return filepath.Join(built.dir, "tether")
}

// TestKillAndRerun kills `tether get` mid-download with SIGKILL and runs it
// again: it resumes, does not restart, and ends with the right SHA-256.
// Then the same with SIGINT, which must exit 130 and keep the .part file.
func TestKillAndRerun(t *testing.T) {
	bin := buildTether(t)
	data := testrig.Bytes(2<<20, 2)
	url, srv := serveFile(t, data, 500*time.Microsecond)
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "fw.bin")
			before := srv.Asked(0)
			srv.Hold(512 << 10) // held at 512 KiB until the signal
			cmd := exec.Command(bin, "get", url, "-o", out, "--json")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(20 * time.Second)
			for {
				if st, err := download.LoadState(out + download.StateSuffix); err == nil && st.Written > 256<<10 {
					break
				}
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					cmd.Wait()
					t.Fatalf("no state saved within 20 s: %s", stderr.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			cmd.Process.Signal(sig)
			err := cmd.Wait()
			srv.Hold(0)
			ee, _ := err.(*exec.ExitError)
			if sig == syscall.SIGINT && (ee == nil || ee.ExitCode() != exitInterrupted || !strings.Contains(stderr.String(), "run the same command to resume")) {
				t.Fatalf("after SIGINT: %v, stderr %q", err, stderr.String())
			}
			st, err := download.LoadState(out + download.StateSuffix)
			if err != nil {
				t.Fatalf("no state after %v: %v", sig, err)
			}
			if fi, err := os.Stat(out + download.PartSuffix); err != nil || fi.Size() < st.Written {
				t.Fatalf(".part after %v: %v (state says %d bytes)", sig, err, st.Written)
			}
			rerun := exec.Command(bin, "get", url, "-o", out, "--json")
			stdout, err := rerun.Output()
			if err != nil {
				t.Fatalf("second run: %v", err)
			}
			sc := bufio.NewScanner(bytes.NewReader(stdout))
			sc.Scan()
			var first map[string]any
			json.Unmarshal(sc.Bytes(), &first)
			if first["event"] != "start" || first["resumed_from"].(float64) < float64(st.Written) {
				t.Fatalf("second run did not resume: first line %s", sc.Bytes())
			}
			got, _ := os.ReadFile(out)
			if sha256.Sum256(got) != sha256.Sum256(data) {
				t.Fatal("SHA-256 differs")
			}
			if n := srv.Asked(0) - before; n != 1 {
				t.Fatalf("block 0 was requested %d times over both runs: the second run restarted", n)
			}
			t.Logf("%v at %d bytes; the second run resumed and finished", sig, st.Written)
		})
	}
}

// TestGetRestartAgainstLibcoap: `tether get --restart`, killed halfway and
// run again against libcoap's server (which cannot verify a resume), starts
// over and ends with the right SHA-256.
func TestGetRestartAgainstLibcoap(t *testing.T) {
	data := testrig.Bytes(16<<20, 3)
	port := peertest.LibcoapServer(t, "fw.bin", data)
	bin := buildTether(t)
	url := "coap://127.0.0.1:" + strconv.Itoa(port) + "/fw.bin"
	out := filepath.Join(t.TempDir(), "fw.bin")
	cmd := exec.Command(bin, "get", url, "-o", out, "--restart")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	var st *download.State
	for deadline := time.Now().Add(30 * time.Second); st == nil; time.Sleep(2 * time.Millisecond) {
		if s, err := download.LoadState(out + download.StateSuffix); err == nil && s.Written > 0 {
			st = s
		}
		select {
		case <-exited:
			t.Fatal("the first run ended before it saved any state")
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			t.Fatal("no state saved within 30 s")
		}
	}
	cmd.Process.Kill()
	<-exited
	t.Logf("killed after %d of %d bytes", st.Written, len(data))
	b, err := exec.Command(bin, "get", url, "-o", out, "--restart").CombinedOutput()
	if err != nil {
		t.Fatalf("second run: %v\n%s", err, b)
	}
	if !strings.Contains(string(b), "starting over") {
		t.Fatalf("the second run did not start over (libcoap cannot verify a resume):\n%s", b)
	}
	got, _ := os.ReadFile(out)
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatal("SHA-256 differs")
	}
}

// TestServeAndGetWithCertificates runs `tether serve --tls/--dtls` with a
// certificate and `tether get coaps+tcp:// or coaps:// --ca` in this
// process, with a throwaway CA; without the CA the server is not trusted.
func TestServeAndGetWithCertificates(t *testing.T) {
	for _, tc := range []struct{ flag, scheme string }{
		{"--tls", "coaps+tcp"},
		{"--dtls", "coaps"},
	} {
		t.Run(tc.scheme, func(t *testing.T) {
			dir, tmp := t.TempDir(), t.TempDir()
			data := testrig.Bytes(100<<10, 9)
			os.WriteFile(filepath.Join(dir, "fw.bin"), data, 0o644)
			pki := testpki.Get()
			for name, b := range map[string][]byte{"ca.pem": pki.CAPEM, "cert.pem": pki.CertPEM, "key.pem": pki.KeyPEM, "stranger.pem": pki.StrangerPEM} {
				os.WriteFile(filepath.Join(tmp, name), b, 0o600)
			}
			port := strconv.Itoa(peertest.FreePort(t))
			ctx, cancel := context.WithCancel(context.Background())
			served := make(chan int)
			go func() {
				var o, e bytes.Buffer
				served <- run(ctx, []string{"serve", dir, "--udp", "", "--tcp", "", tc.flag, "127.0.0.1:" + port,
					"--cert", filepath.Join(tmp, "cert.pem"), "--key", filepath.Join(tmp, "key.pem")}, &o, &e)
			}()
			defer func() {
				cancel()
				if code := <-served; code != 0 {
					t.Errorf("serve exited %d", code)
				}
			}()
			url := tc.scheme + "://127.0.0.1:" + port + "/fw.bin"
			out := filepath.Join(tmp, "got.bin")
			var code int
			var stderr string
			for range 50 { // the server may still be starting
				if code, _, stderr = runCmd("get", url, "-o", out, "--ca", filepath.Join(tmp, "ca.pem"), "--ack-timeout", "200ms"); code == 0 {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if code != 0 {
				t.Fatalf("get: exit %d: %s", code, stderr)
			}
			got, _ := os.ReadFile(out)
			if sha256.Sum256(got) != sha256.Sum256(data) {
				t.Fatal("SHA-256 differs")
			}
			// Trusting another CA, the server is not trusted: a clear
			// failure at once, no fall-back, no file.
			code, _, stderr = runCmd("get", url, "-o", filepath.Join(tmp, "x"), "--ca", filepath.Join(tmp, "stranger.pem"), "--ack-timeout", "100ms")
			if code != exitAuth || !strings.Contains(stderr, "certificate") {
				t.Fatalf("get with another CA: exit %d, %q", code, stderr)
			}
			for _, f := range []string{"x", "x" + download.PartSuffix, "x" + download.StateSuffix} {
				if _, err := os.Stat(filepath.Join(tmp, f)); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("a refused download left %s behind", f)
				}
			}
			// Without any: the system's CAs over TLS (which do not know
			// ours); coaps has no default credentials, a usage error.
			code, _, stderr = runCmd("get", url, "-o", filepath.Join(tmp, "x"), "--ack-timeout", "100ms")
			want, text := exitAuth, "certificate"
			if tc.scheme == "coaps" {
				want, text = 2, "needs credentials"
			}
			if code != want || !strings.Contains(stderr, text) {
				t.Fatalf("get without the CA: exit %d, %q; want %d and %q", code, stderr, want, text)
			}
		})
	}
}

// TestServeAndGetOverDTLS runs `tether serve --dtls` and `tether get
// coaps://` with a pre-shared key, in this process.
func TestServeAndGetOverDTLS(t *testing.T) {
	dir := t.TempDir()
	data := testrig.Bytes(100<<10, 10)
	os.WriteFile(filepath.Join(dir, "fw.bin"), data, 0o644)
	port := strconv.Itoa(peertest.FreePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan int)
	go func() {
		var o, e bytes.Buffer
		served <- run(ctx, []string{"serve", dir, "--udp", "", "--tcp", "", "--dtls", "127.0.0.1:" + port,
			"--psk-id", "device-1", "--psk-hex", "746574686572"}, &o, &e)
	}()
	defer func() {
		cancel()
		if code := <-served; code != 0 {
			t.Errorf("serve exited %d", code)
		}
	}()
	out := filepath.Join(t.TempDir(), "got.bin")
	var (
		code   int
		stderr string
	)
	for range 50 { // the server may still be starting
		if code, _, stderr = runCmd("get", "coaps://127.0.0.1:"+port+"/fw.bin", "-o", out, "--psk-id", "device-1", "--psk", "tether", "--ack-timeout", "200ms"); code == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code != 0 {
		t.Fatalf("get over DTLS: exit %d: %s", code, stderr)
	}
	got, _ := os.ReadFile(out)
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatal("SHA-256 differs")
	}
	// A wrong key is refused, not retried: DTLS servers answer it with
	// silence, which the client reads from the server's repeated hellos.
	start := time.Now()
	code, _, stderr = runCmd("get", "coaps://127.0.0.1:"+port+"/fw.bin", "-o", filepath.Join(t.TempDir(), "x"), "--psk-id", "device-1", "--psk", "wrong")
	if code != exitAuth || !strings.Contains(stderr, "wrong pre-shared key") {
		t.Fatalf("get with a wrong key: exit %d after %v: %q", code, time.Since(start), stderr)
	}
	t.Logf("wrong key refused after %v: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(stderr))
	for _, args := range [][]string{
		{"get", "coaps://127.0.0.1:" + port + "/fw.bin", "--psk", "x"},
		{"get", "coap://127.0.0.1:" + port + "/fw.bin", "--psk-id", "a", "--psk", "x"},
		{"serve", dir, "--dtls", ":0"},
	} {
		if code, _, stderr := runCmd(args...); code != 2 {
			t.Errorf("tether %q: exit %d (%q), want a usage error", args, code, stderr)
		}
	}
}

// startGet runs the built command as a process until its state claims
// more than n bytes; hold the server (Requests.Hold) past n, or the run
// may end first.
func startGet(t *testing.T, bin string, n int64, args ...string) (*exec.Cmd, *bytes.Buffer, string) {
	t.Helper()
	out := args[slices.Index(args, "-o")+1]
	cmd := exec.Command(bin, append([]string{"get"}, args...)...)
	stderr := new(bytes.Buffer)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if st, err := download.LoadState(out + download.StateSuffix); err == nil && st.Written > n {
			return cmd, stderr, out
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("no state saved within 30 s: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDamagedPartThenRerun: a run killed mid-download, its .part damaged
// (8 KiB, as a flash fault would), and the same command again: the second
// run notices, fetches the damaged part again and ends with the served
// bytes; it never prints a SHA-256 the file does not have.
func TestDamagedPartThenRerun(t *testing.T) {
	bin := buildTether(t)
	data := testrig.Bytes(3<<20, 11)
	sum := sha256.Sum256(data)
	url, srv := serveFile(t, data, 0)
	srv.Hold((2<<10 + 500) << 10) // held at 2.5 MiB until the kill
	cmd, _, out := startGet(t, bin, 2<<20+100<<10, url, "-o", filepath.Join(t.TempDir(), "fw.bin"))
	cmd.Process.Kill()
	cmd.Wait()
	srv.Hold(0)
	f, err := os.OpenFile(out+download.PartSuffix, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(make([]byte, 8<<10), 1<<20+4096)
	f.Close()
	b, err := exec.Command(bin, "get", url, "-o", out, "--sha256", hex.EncodeToString(sum[:])).CombinedOutput()
	got, _ := os.ReadFile(out)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("second run: %v, %d bytes\n%s", err, len(got), b)
	}
	if !strings.Contains(string(b), "does not hold what was written") || !strings.Contains(string(b), hex.EncodeToString(sum[:])) {
		t.Fatalf("second run's output does not say what it found and what it verified:\n%s", b)
	}
	t.Logf("%s", b)
}

// TestTwoRunsOnOneOutput: a second `tether get` on an output the first is
// writing is refused at once, naming the first; the first ends exact.
func TestTwoRunsOnOneOutput(t *testing.T) {
	bin := buildTether(t)
	data := testrig.Bytes(1<<20, 12)
	url, srv := serveFile(t, data, 0)
	srv.Hold(256 << 10) // the first run held at 256 KiB while the second tries
	first, stderr, out := startGet(t, bin, 64<<10, url, "-o", filepath.Join(t.TempDir(), "fw.bin"))
	b, err := exec.Command(bin, "get", url, "-o", out).CombinedOutput()
	srv.Hold(0)
	want := fmt.Sprintf("locked by process %d", first.Process.Pid)
	if err == nil || !strings.Contains(string(b), want) {
		t.Fatalf("second run on the same output: %v, %q; want a refusal naming %q", err, b, want)
	}
	if err := first.Wait(); err != nil {
		t.Fatalf("first run: %v\n%s", err, stderr)
	}
	got, _ := os.ReadFile(out)
	if !bytes.Equal(got, data) {
		t.Fatal("the first run's file differs from the served one")
	}
}

// TestGetToStandardOutput: -o - streams the body to stdout, and -o through
// a link to a pipe (/dev/stdout) writes the pipe and replaces nothing.
func TestGetToStandardOutput(t *testing.T) {
	data := testrig.Bytes(300<<10, 13)
	url, _ := serveFile(t, data, 0)
	code, stdout, stderr := runCmd("get", url, "-o", "-")
	if code != 0 || stdout != string(data) || !strings.Contains(stderr, "standard output") {
		t.Fatalf("-o -: exit %d, %d bytes on stdout, stderr %q", code, len(stdout), stderr)
	}
	bin := buildTether(t)
	link := filepath.Join(t.TempDir(), "stdout")
	if err := os.Symlink("/proc/self/fd/1", link); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "get", url, "-o", link)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e // a pipe
	if err := cmd.Run(); err != nil || !bytes.Equal(o.Bytes(), data) {
		t.Fatalf("-o a link to stdout: %v, %d bytes on stdout: %s", err, o.Len(), e.String())
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link was replaced: %v", err)
	}
	if left, _ := filepath.Glob(link + ".part*"); len(left) > 0 {
		t.Fatalf("files left beside the link: %v", left)
	}
}

// TestLimits: --max-size stops a body larger than allowed, and --max-time
// a run that takes too long, each with a message that says why.
func TestLimits(t *testing.T) {
	data := testrig.Bytes(20<<10, 14)
	url, _ := serveFile(t, data, 0)
	hole, err := net.ListenPacket("udp4", "127.0.0.1:0") // answers nothing
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{url, "--max-size", "1K"}, exitTooLarge, "over the limit of 1024"},
		{[]string{url, "--max-size", "1x"}, 2, "not a size"},
		{[]string{url, "--max-size", "9999999999G"}, 2, `"9999999999G" is not a size`},
		{[]string{"coap://" + hole.LocalAddr().String() + "/fw.bin", "--max-time", "500ms"}, exitGaveUp, "--max-time reached (500ms), while waiting for the block at byte 0"},
		{[]string{url, "--max-time", "-1s"}, 2, "positive"},
	} {
		out := filepath.Join(dir, "out")
		code, _, stderr := runCmd(append([]string{"get", "-o", out}, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("get %q: exit %d, %q; want %d and %q", tc.args, code, stderr, tc.code, tc.want)
		}
		if left, _ := filepath.Glob(out + "*"); len(left) > 0 {
			t.Errorf("get %q left %v", tc.args, left)
		}
	}
}

// Package peertest starts the CoAP peers tether's tests run against:
// libcoap's command-line tools. A test that needs one skips when it is
// missing, with a message that names the peer, how to install it and
// TETHER_REQUIRE_PEERS (go test -v shows it on the --- SKIP line), unless
// TETHER_REQUIRE_PEERS=1 (as in CI), which makes it fail instead.
package peertest

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// RequireEnv is the environment variable that turns a missing peer from a
// skip into a failure when it is "1".
const RequireEnv = "TETHER_REQUIRE_PEERS"

// Require returns the path of a peer's binary, or skips the test when it is
// missing (fails when TETHER_REQUIRE_PEERS=1).
func Require(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, name, "not found in $PATH; Debian's libcoap3-bin has it")
	}
	return p
}

// Missing ends a test that cannot run because a system peer is missing:
// peer names it (a binary, or a rig such as "the namespace rig"), why says
// what is wrong and how to get it. It skips the test, saying so and
// naming TETHER_REQUIRE_PEERS, or fails it when TETHER_REQUIRE_PEERS=1.
func Missing(t testing.TB, peer, why string) {
	t.Helper()
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("peer missing: %s: %s (%s=1 requires every peer)", peer, why, RequireEnv)
	}
	t.Skipf("peer test skipped: %s: %s (set %s=1 to make a missing peer fail)", peer, why, RequireEnv)
}

// FreePort returns a port free for UDP and TCP on 127.0.0.1, and the next
// one too (libcoap takes PORT+1 for DTLS and TLS).
func FreePort(t testing.TB) int {
	t.Helper()
	free := func(p int) bool {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			return false
		}
		pc.Close()
		ln, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			return false
		}
		ln.Close()
		return true
	}
	for range 50 {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if p < 65535 && free(p) && free(p+1) {
			return p
		}
	}
	t.Fatal("no free port pair")
	return 0
}

// LibcoapServer starts coap-server-notls on 127.0.0.1 serving data as
// /name, uploaded with one PUT over TCP (libcoap cannot serve a file from
// disk), and returns its port. The test's clean-up stops it.
func LibcoapServer(t testing.TB, name string, data []byte) int {
	t.Helper()
	return LibcoapServerWith(t, "coap-server-notls", name, data)
}

// LibcoapServerWith is LibcoapServer with another build of the server
// (coap-server-openssl, say) and extra arguments (-k KEY for PSK). It
// serves plain CoAP on the port it returns, (D)TLS on the next one.
func LibcoapServerWith(t testing.TB, binary, name string, data []byte, extra ...string) int {
	t.Helper()
	server := Require(t, binary)
	cli := Require(t, "coap-client-notls")
	port := FreePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	args := append([]string{"-A", "127.0.0.1", "-p", strconv.Itoa(port), "-d", "10"}, extra...)
	cmd := exec.CommandContext(ctx, server, args...)
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	src := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	base := "://127.0.0.1:" + strconv.Itoa(port) + "/" + name
	deadline := time.Now().Add(20 * time.Second)
	for {
		// coap-client exits 0 even when it fails: check with a GET.
		exec.Command(cli, "-m", "put", "-t", "42", "-f", src, "-B", "10", "coap+tcp"+base).Run()
		out := filepath.Join(t.TempDir(), "check")
		exec.Command(cli, "-b", "1024", "-o", out, "-B", "10", "coap"+base).Run()
		if st, err := os.Stat(out); err == nil && st.Size() == int64(len(data)) {
			return port
		}
		if time.Now().After(deadline) {
			t.Fatal("could not upload the file to libcoap's server")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

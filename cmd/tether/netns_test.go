package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tether-iot/tether/download"
	"github.com/tether-iot/tether/internal/peertest"
	"github.com/tether-iot/tether/internal/testrig"
)

// netns is a pair of network namespaces joined by a veth link, made by the
// test and removed by its clean-up: a device ("cli", 10.199.0.2) and a server
// ("srv", 10.199.0.1). No address outside them is ever used.
type netns struct {
	t        *testing.T
	cli, srv string // namespace names
	cliIf    string
}

func (n *netns) ip(args ...string) {
	n.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		n.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (n *netns) exec(ns string, args ...string) {
	n.t.Helper()
	n.ip(append([]string{"netns", "exec", ns}, args...)...)
}

// rigSkipper checks that this machine can build a rig of network
// namespaces (root, and the tools named), and returns what to call when a
// step of it fails: a skip, or a failure with TETHER_REQUIRE_PEERS=1.
func rigSkipper(t *testing.T, rig string, tools ...string) func(why string) {
	t.Helper()
	skip := func(why string) {
		t.Helper()
		peertest.Missing(t, rig, "cannot build it: "+why)
	}
	if os.Geteuid() != 0 {
		skip("not root")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			skip(tool + " not found (Debian: iproute2, nftables)")
		}
	}
	return skip
}

// requireNetns makes the namespaces, or skips (fails with
// TETHER_REQUIRE_PEERS=1) when this machine cannot.
func requireNetns(t *testing.T) *netns {
	t.Helper()
	skip := rigSkipper(t, "the namespace rig", "ip", "nft")
	id := strconv.Itoa(os.Getpid() % 100000)
	n := &netns{t: t, cli: "tether-cli-" + id, srv: "tether-srv-" + id, cliIf: "tc" + id}
	if err := exec.Command("ip", "netns", "add", n.cli).Run(); err != nil {
		skip("ip netns add: " + err.Error())
	}
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", n.cli).Run()
		exec.Command("ip", "netns", "del", n.srv).Run() // takes the veth pair with it
	})
	n.ip("netns", "add", n.srv)
	srvIf := "ts" + id
	n.ip("link", "add", n.cliIf, "type", "veth", "peer", "name", srvIf)
	n.ip("link", "set", n.cliIf, "netns", n.cli)
	n.ip("link", "set", srvIf, "netns", n.srv)
	n.ip("-n", n.cli, "addr", "add", "10.199.0.2/24", "dev", n.cliIf)
	n.ip("-n", n.srv, "addr", "add", "10.199.0.1/24", "dev", srvIf)
	for ns, dev := range map[string]string{n.cli: n.cliIf, n.srv: srvIf} {
		n.ip("-n", ns, "link", "set", "lo", "up")
		n.ip("-n", ns, "link", "set", dev, "up")
		// 5% loss on arrival, in each direction (input hook: an output drop
		// would make sendmsg fail, which is another fault).
		n.exec(ns, "nft", "add", "table", "inet", "tether")
		n.exec(ns, "nft", "add", "chain", "inet", "tether", "in", "{ type filter hook input priority 0; }")
		n.exec(ns, "nft", "add", "rule", "inet", "tether", "in", "iifname", dev, "numgen", "random", "mod", "1000", "<", "50", "drop")
	}
	return n
}

// TestRealNetwork: `tether get` in the device namespace downloads from
// `tether serve` in the server namespace over a link that loses 5% of the
// datagrams each way and goes down for 5 s in the middle.
func TestRealNetwork(t *testing.T) {
	n := requireNetns(t)
	bin := buildTether(t)
	dir := t.TempDir()
	data := testrig.Bytes(128<<10, 7)
	if err := os.WriteFile(filepath.Join(dir, "fw.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	srv := exec.CommandContext(ctx, "ip", "netns", "exec", n.srv, bin, "serve", dir, "--udp", "10.199.0.1:5683", "--tcp", "")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	time.Sleep(300 * time.Millisecond)

	out := filepath.Join(t.TempDir(), "fw.bin")
	sum := sha256.Sum256(data)
	get := exec.CommandContext(ctx, "ip", "netns", "exec", n.cli, bin, "get", "coap://10.199.0.1:5683/fw.bin",
		"-o", out, "--sha256", hex.EncodeToString(sum[:]), "--ack-timeout", "500ms")
	var stderr bytes.Buffer
	get.Stderr = &stderr
	start := time.Now()
	if err := get.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- get.Wait() }()

	// Take the device's link down once a third is written, for 5 s.
	var downAt time.Duration
	for downAt == 0 {
		if st, err := download.LoadState(out + download.StateSuffix); err == nil && st.Written >= int64(len(data)/3) {
			n.ip("-n", n.cli, "link", "set", n.cliIf, "down")
			downAt = time.Since(start)
			time.Sleep(5 * time.Second)
			n.ip("-n", n.cli, "link", "set", n.cliIf, "up")
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("tether get ended before the outage: %v\n%s", err, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := <-exited; err != nil {
		t.Fatalf("tether get: %v\n%s", err, stderr.String())
	}
	got, err := os.ReadFile(out)
	if err != nil || sha256.Sum256(got) != sum {
		t.Fatalf("SHA-256 differs (%v)", err)
	}
	t.Logf("128 KiB over 5%% loss each way with a 5 s outage at %v: done in %v", downAt.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tether-iot/tether/internal/peertest"
)

// TestSystemdUnit: the README's unit for tether serve passes systemd-analyze
// verify (with the binary where ExecStart says), so an operator can copy
// it.
func TestSystemdUnit(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		peertest.Missing(t, "systemd-analyze", "not found in $PATH; Debian's systemd has it")
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "<!-- systemd unit: TestSystemdUnit checks it -->\n```ini\n")
	unit, _, ok2 := strings.Cut(after, "```\n<!-- end -->")
	if !ok || !ok2 {
		t.Fatal("the README has lost its systemd unit, or its markers")
	}
	bin := buildTether(t)
	unit = strings.ReplaceAll(unit, "/usr/local/bin/tether", bin)
	path := filepath.Join(t.TempDir(), "tether-serve.service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	// verify also reports on units this one names (network-online.target)
	// when the machine runs no systemd; only what concerns ours counts.
	var ours []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "tether-serve.service") {
			ours = append(ours, line)
		}
	}
	if len(ours) > 0 || (err != nil && len(strings.TrimSpace(string(out))) == 0) {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	t.Logf("systemd-analyze verify: %s", strings.TrimSpace(string(out)))
}

package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/internal/testrig/coaprig"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestLoad: 50 devices, 10 at a time, against tether's file server on
// loopback, all exact; a wrong SHA-256 fails the run and says so.
func TestLoad(t *testing.T) {
	data := testrig.Bytes(20_000, 21)
	url := coaprig.ServeFile(t, data, nil)
	sum := sha256.Sum256(data)
	var out bytes.Buffer
	if err := run([]string{"-n", "50", "-c", "10", "-sha256", hex.EncodeToString(sum[:]), url}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "exact: 50, wrong bytes: 0, failed: 0") || !strings.Contains(out.String(), "per block") {
		t.Errorf("report:\n%s", out.String())
	}
	out.Reset()
	wrong := sha256.Sum256([]byte("another file"))
	err := run([]string{"-n", "3", "-sha256", hex.EncodeToString(wrong[:]), url}, &out)
	if err == nil || !strings.Contains(out.String(), "wrong bytes: 3") {
		t.Errorf("a wrong SHA-256: %v\n%s", err, out.String())
	}
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"-sha256", "00", "coap://127.0.0.1/x"},
		{"-n", "0", "-sha256", strings.Repeat("00", 32), "coap://127.0.0.1/x"},
		{"-sha256", strings.Repeat("00", 32), "coaps://127.0.0.1/x"},
	} {
		if _, err := parse(args); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}

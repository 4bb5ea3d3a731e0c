package main

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tether-iot/tether/coap/fileserver"
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/sock/dtlssock"
)

// qblockFileServer serves data as fw.bin on loopback over coap and over
// coaps (PSK identity device-1, key "tether"), with Q-Block2; it returns
// both URLs.
func qblockFileServer(t *testing.T, data []byte) (coapURL, coapsURL string) {
	t.Helper()
	srv, err := fileserver.New(testrig.File(t, "fw.bin", data), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeUDP(pc)
	dpc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	key := []byte("tether")
	ln, err := dtlssock.Listen(dpc, &dtlssock.Config{PSK: func([]byte) ([]byte, error) { return key, nil }, PSKIdentity: []byte("device-1")})
	if err != nil {
		dpc.Close()
		t.Fatal(err)
	}
	go srv.ServeDatagramListener(ln)
	return "coap://" + pc.LocalAddr().String() + "/fw.bin", "coaps://" + ln.Addr().String() + "/fw.bin"
}

// TestGetQBlockDefault: tether get asks with Q-Block2 over coaps by
// default and over coap only with --qblock (RFC 9177 section 11 does not
// recommend it without DTLS); --no-qblock never does. What it asked is
// read from its wire trace (-vv): a request with a Q-Block2 option.
func TestGetQBlockDefault(t *testing.T) {
	data := testrig.Bytes(64<<10, 23)
	sum := sha256.Sum256(data)
	coapURL, coapsURL := qblockFileServer(t, data)
	psk := []string{"--psk-id", "device-1", "--psk", "tether"}
	for _, tc := range []struct {
		name  string
		args  []string
		asked bool // some request carried Q-Block2
	}{
		{"coaps", append([]string{coapsURL}, psk...), true},
		{"coaps/no-qblock", append([]string{coapsURL, "--no-qblock"}, psk...), false},
		{"coaps/qblock", append([]string{coapsURL, "--qblock"}, psk...), true},
		{"coap", []string{coapURL}, false},
		{"coap/qblock", []string{coapURL, "--qblock"}, true},
		{"coap/no-qblock", []string{coapURL, "--no-qblock"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "got.bin")
			args := append([]string{"get", "-o", out, "--sha256", hex.EncodeToString(sum[:]), "-vv"}, tc.args...)
			code, _, stderr := runCmd(args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if got, _ := os.ReadFile(out); sha256.Sum256(got) != sum {
				t.Fatal("SHA-256 differs")
			}
			asked := false
			for line := range strings.Lines(stderr) {
				asked = asked || strings.Contains(line, `msg="coap send"`) && strings.Contains(line, "qblock2=")
			}
			if asked != tc.asked {
				t.Fatalf("asked with Q-Block2: %v, want %v", asked, tc.asked)
			}
		})
	}
}

// TestDeviceQBlockChoice: tether device's firmware downloads take
// --qblock and --no-qblock as tether get's do (the default, neither, is
// the download's: Q-Block2 over coaps, not over coap).
func TestDeviceQBlockChoice(t *testing.T) {
	for _, tc := range []struct {
		flags        qblockFlags
		qblock, noQB bool
	}{
		{qblockFlags{}, false, false},
		{qblockFlags{use: true}, true, false},
		{qblockFlags{off: true}, false, true},
	} {
		f := deviceFlags{maxSize: "1M", qblock: tc.flags}
		dl, err := f.firmwareDownloads()
		if err != nil || dl.QBlock != tc.qblock || dl.NoQBlock != tc.noQB || dl.MaxSize != 1<<20 {
			t.Errorf("%+v: QBlock %v, NoQBlock %v, MaxSize %d, %v; want %v, %v, %d", tc.flags, dl.QBlock, dl.NoQBlock, dl.MaxSize, err, tc.qblock, tc.noQB, 1<<20)
		}
	}
}

package interop_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/tether-iot/tether/coap/client"
	"github.com/tether-iot/tether/internal/delayrelay"
	"github.com/tether-iot/tether/internal/peertest"
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/internal/testrig/coaprig"
)

// Q-Block2 against libcoap 4.3.5, the one other implementation of RFC
// 9177 (Debian's 4.3.1 is built without it). These tests run when
// TETHER_LIBCOAP_QBLOCK names a folder holding its coap-client and
// coap-server, built with Q-Block (CMake -DENABLE_Q_BLOCK=ON, DTLS off,
// from the v4.3.5 tag, outside this repository), and skip otherwise; they
// do not follow TETHER_REQUIRE_PEERS. Each runs through the delay relay,
// 50 ms each way, with 0% and 1% loss, and checks the bytes by SHA-256
// (libcoap's client exits 0 when it fails).

// libcoapQBlockEnv names the folder of libcoap 4.3.5's tools.
const libcoapQBlockEnv = "TETHER_LIBCOAP_QBLOCK"

// libcoapQBlock returns the paths of libcoap 4.3.5's coap-client and
// coap-server, or skips the test.
func libcoapQBlock(t *testing.T) (cli, srv string) {
	t.Helper()
	dir := os.Getenv(libcoapQBlockEnv)
	if dir == "" {
		t.Skipf("libcoap Q-Block2 interop skipped: set %s to a folder holding coap-client and coap-server of libcoap 4.3.5 built with -DENABLE_Q_BLOCK=ON", libcoapQBlockEnv)
	}
	cli, srv = filepath.Join(dir, "coap-client"), filepath.Join(dir, "coap-server")
	for _, p := range []string{cli, srv} {
		if st, err := os.Stat(p); err != nil || st.IsDir() {
			t.Fatalf("%s=%s: no %s there", libcoapQBlockEnv, dir, filepath.Base(p))
		}
	}
	return cli, srv
}

// qblockLosses are the loss rates each direction of the relay runs with.
var qblockLosses = []float64{0, 0.01}

// oneWay is the relay's delay each way: a 100 ms round trip.
const oneWay = 50 * time.Millisecond

// viaRelay starts a relay to 127.0.0.1:port with oneWay and loss each way
// and returns its port.
func viaRelay(t *testing.T, port int, loss float64) int {
	t.Helper()
	r, err := delayrelay.Start(delayrelay.Config{
		Server: "127.0.0.1:" + strconv.Itoa(port),
		Up:     delayrelay.Link{Delay: oneWay, Loss: loss},
		Down:   delayrelay.Link{Delay: oneWay, Loss: loss},
		Seed:   23,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return int(r.Addr().Port())
}

// libcoapQServer starts libcoap 4.3.5's coap-server with Q-Block (-L 7:
// libcoap's block handling, single body, Q-Block) on 127.0.0.1 and puts
// data there as /name over TCP (it serves no files from disk); it returns
// the port.
func libcoapQServer(t *testing.T, cli, srv, name string, data []byte) int {
	t.Helper()
	port := peertest.FreePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, srv, "-A", "127.0.0.1", "-p", strconv.Itoa(port), "-L", "7", "-d", "10")
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
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		exec.Command(cli, "-m", "put", "-t", "42", "-f", src, "-B", "10", "coap+tcp"+base).Run()
		out := filepath.Join(t.TempDir(), "check")
		exec.Command(cli, "-b", "1024", "-o", out, "-B", "10", "coap"+base).Run()
		if got, err := os.ReadFile(out); err == nil && bytes.Equal(got, data) {
			return port
		}
		if time.Now().After(deadline) {
			t.Fatal("could not put the file on libcoap's server")
		}
	}
}

// TestOurQBlockFromLibcoapQBlockServer: tether's Q-Block2 client against
// libcoap 4.3.5's Q-Block2 server, through the relay: the exact bytes, in
// about a round trip per set (it crawled at 2.6-4 s per block before).
func TestOurQBlockFromLibcoapQBlockServer(t *testing.T) {
	cli, srv := libcoapQBlock(t)
	data := testrig.Bytes(256<<10, 23)
	port := libcoapQServer(t, cli, srv, "fw.bin", data)
	for _, loss := range qblockLosses {
		t.Run(strconv.FormatFloat(loss*100, 'g', -1, 64)+"%", func(t *testing.T) {
			relay := viaRelay(t, port, loss)
			ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
			defer cancel()
			c := coaprig.Dial(t, "udp", strconv.Itoa(relay))
			var out bytes.Buffer
			began := time.Now()
			err := c.GetBlocks(ctx, client.BlockRequest{Path: "/fw.bin", BlockSize: 1024, QBlock: true}, func(ch client.Chunk) error {
				if ch.Offset != int64(out.Len()) {
					t.Fatalf("chunk at %d after %d bytes", ch.Offset, out.Len())
				}
				out.Write(ch.Payload)
				return nil
			})
			if err != nil {
				t.Fatalf("after %d bytes: %v", out.Len(), err)
			}
			sameSHA(t, "tether Q-Block2 client <- libcoap 4.3.5 server", out.Bytes(), data)
			t.Logf("256 KiB in %v at a 100 ms round trip, %.0f%% loss each way", time.Since(began).Round(time.Millisecond), loss*100)
		})
	}
}

// TestLibcoapQBlockClientFromOurServer: libcoap 4.3.5's Q-Block2 client
// (-L 7) against tether's file server, through the relay, in CON mode and
// in NON mode (-N): the exact bytes. In CON mode its whole-body request
// meets a 4.01 with an Echo value first, which it repeats with the value.
func TestLibcoapQBlockClientFromOurServer(t *testing.T) {
	cli, _ := libcoapQBlock(t)
	data := testrig.Bytes(256<<10, 24)
	port := ourServer(t, testrig.File(t, "fw.bin", data))
	for _, mode := range []struct{ name, flag string }{{"CON", ""}, {"NON", "-N"}} {
		for _, loss := range qblockLosses {
			t.Run(mode.name+"/"+strconv.FormatFloat(loss*100, 'g', -1, 64)+"%", func(t *testing.T) {
				relay := viaRelay(t, port, loss)
				out := filepath.Join(t.TempDir(), "out")
				args := []string{"-L", "7", "-b", "1024", "-B", "90", "-o", out}
				if mode.flag != "" {
					args = append(args, mode.flag)
				}
				began := time.Now()
				b, err := exec.Command(cli, append(args, "coap://127.0.0.1:"+strconv.Itoa(relay)+"/fw.bin")...).CombinedOutput()
				took := time.Since(began)
				if err != nil {
					t.Fatalf("coap-client: %v\n%s", err, b)
				}
				got, err := os.ReadFile(out)
				if err != nil {
					t.Fatalf("coap-client wrote nothing: %v\n%s", err, b)
				}
				sameSHA(t, "libcoap 4.3.5 Q-Block2 client ("+mode.name+") <- tether server", got, data)
				t.Logf("256 KiB in %v at a 100 ms round trip, %.0f%% loss each way", took.Round(time.Millisecond), loss*100)
			})
		}
	}
}

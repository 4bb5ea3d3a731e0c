package interop_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/tether-iot/tether/coap/client"

	"github.com/tether-iot/tether/internal/peertest"
	"github.com/tether-iot/tether/internal/testrig"
)

const fiveMiB = 5 << 20

func TestOurClientFromLibcoapServer(t *testing.T) {
	data := testrig.Bytes(fiveMiB, 1)
	port := peertest.LibcoapServer(t, "fw.bin", data)
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			sameSHA(t, "tether client <- libcoap server over "+network, fetch(t, network, port, "/fw.bin"), data)
		})
	}
}

// TestOurWindowFromLibcoapServer: a window of 10 block requests against
// libcoap's server, which answers each on its own, gets the exact bytes.
// libcoap announces Size2, so the window is really used.
func TestOurWindowFromLibcoapServer(t *testing.T) {
	data := testrig.Bytes(1<<20, 3)
	port := peertest.LibcoapServer(t, "fw.bin", data)
	got, size2 := fetchWith(t, "udp", port, client.BlockRequest{Path: "/fw.bin", BlockSize: 1024, Window: 10})
	sameSHA(t, "tether client, window 10 <- libcoap server", got, data)
	if size2 != int64(len(data)) {
		t.Fatalf("libcoap announced Size2 %d: without it the transfer ran in lockstep", size2)
	}
}

// TestOurQBlockFromLibcoapServer: asked with Q-Block2, libcoap's server
// (Debian's build has no Q-Block) answers the first request 4.02 Bad
// Option, and the transfer goes on with Block2 to the exact bytes.
func TestOurQBlockFromLibcoapServer(t *testing.T) {
	data := testrig.Bytes(256<<10, 4)
	port := peertest.LibcoapServer(t, "fw.bin", data)
	got, _ := fetchWith(t, "udp", port, client.BlockRequest{Path: "/fw.bin", BlockSize: 1024, QBlock: true})
	sameSHA(t, "tether client, Q-Block2 <- libcoap server", got, data)
}

func TestLibcoapClientFromOurServer(t *testing.T) {
	cli := peertest.Require(t, "coap-client-notls")
	data := testrig.Bytes(fiveMiB, 2)
	port := ourServer(t, testrig.File(t, "fw.bin", data))
	for _, scheme := range []string{"coap", "coap+tcp"} {
		t.Run(scheme, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			cmd := exec.Command(cli, "-b", "1024", "-B", "60", "-o", out, scheme+"://127.0.0.1:"+strconv.Itoa(port)+"/fw.bin")
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("coap-client: %v\n%s", err, b)
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatalf("coap-client wrote nothing: %v", err)
			}
			sameSHA(t, "libcoap client <- tether server over "+scheme, got, data)
		})
	}
}

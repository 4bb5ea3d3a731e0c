package interop_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

const fiveMiB = 5 << 20

// libcoapServer starts coap-server-notls on 127.0.0.1 and uploads data as
// resource name with one PUT over TCP (libcoap cannot serve files from
// disk). It returns the port.
func libcoapServer(t *testing.T, name string, data []byte) int {
	t.Helper()
	server := requirePeer(t, "coap-server-notls")
	cli := requirePeer(t, "coap-client-notls")
	port := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, server, "-A", "127.0.0.1", "-p", strconv.Itoa(port), "-d", "10")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	src := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	uri := "coap+tcp://127.0.0.1:" + strconv.Itoa(port) + "/" + name
	deadline := time.Now().Add(20 * time.Second)
	for {
		// coap-client exits 0 even when it fails: check with a GET.
		exec.Command(cli, "-m", "put", "-t", "42", "-f", src, "-B", "10", uri).Run()
		out := filepath.Join(t.TempDir(), "check")
		exec.Command(cli, "-b", "1024", "-o", out, "-B", "10", "coap://127.0.0.1:"+strconv.Itoa(port)+"/"+name).Run()
		if st, err := os.Stat(out); err == nil && st.Size() == int64(len(data)) {
			return port
		}
		if time.Now().After(deadline) {
			t.Fatal("could not upload the file to libcoap's server")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestOurClientFromLibcoapServer(t *testing.T) {
	data := body(fiveMiB, 1)
	port := libcoapServer(t, "fw.bin", data)
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			sameSHA(t, "tether client <- libcoap server over "+network, fetch(t, network, port, "/fw.bin"), data)
		})
	}
}

func TestLibcoapClientFromOurServer(t *testing.T) {
	cli := requirePeer(t, "coap-client-notls")
	data := body(fiveMiB, 2)
	port := ourServer(t, writeTemp(t, "fw.bin", data))
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

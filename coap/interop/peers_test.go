package interop_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/tether-iot/tether/coap/client"
	"github.com/tether-iot/tether/internal/peertest"
	"github.com/tether-iot/tether/internal/testrig/coaprig"
)

// fetch downloads path from 127.0.0.1:port with tether's client over
// network and returns the body.
// hangGuard bounds a transfer that hangs; it is no speed requirement (5
// MiB take seconds, minutes under the race detector on a loaded machine).
const hangGuard = 10 * time.Minute

func fetch(t testing.TB, network string, port int, path string) []byte {
	t.Helper()
	body, _ := fetchWith(t, network, port, client.BlockRequest{Path: path, BlockSize: 1024})
	return body
}

// fetchWith is fetch with any block request; it also returns the Size2 the
// server announced (-1: none).
func fetchWith(t testing.TB, network string, port int, req client.BlockRequest) ([]byte, int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	c := coaprig.Dial(t, network, strconv.Itoa(port))
	var out bytes.Buffer
	size2 := int64(-1)
	err := c.GetBlocks(ctx, req, func(ch client.Chunk) error {
		if ch.Offset != int64(out.Len()) {
			t.Fatalf("chunk at %d after %d bytes", ch.Offset, out.Len())
		}
		out.Write(ch.Payload)
		size2 = ch.Size2
		return nil
	})
	if err != nil {
		t.Fatalf("download over %s: %v (after %d bytes)", network, err, out.Len())
	}
	return out.Bytes(), size2
}

func sameSHA(t testing.TB, what string, got, want []byte) {
	t.Helper()
	g, w := sha256.Sum256(got), sha256.Sum256(want)
	if g != w {
		t.Fatalf("%s: SHA-256 %x (%d bytes), want %x (%d bytes)", what, g[:8], len(got), w[:8], len(want))
	}
	t.Logf("%s: %d bytes, SHA-256 %x ok", what, len(got), g[:8])
}

// ourServer serves dir with tether's file server on one port, UDP and TCP.
func ourServer(t testing.TB, dir string) int {
	t.Helper()
	port := peertest.FreePort(t)
	pc, err := net.ListenPacket("udp4", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	coaprig.Serve(t, dir, nil, pc, ln)
	return port
}

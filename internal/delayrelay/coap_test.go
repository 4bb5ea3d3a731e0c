package delayrelay_test

import (
	"bytes"
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/tether-iot/tether/coap/client"
	"github.com/tether-iot/tether/internal/delayrelay"
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/internal/testrig/coaprig"
)

// TestBlockwiseGetThroughRelay downloads a file of 41 blocks (the last one
// short) from tether's file server through the relay at 20 ms each way:
// the bytes are exact, and the transfer took at least one 40 ms round trip
// per block, lockstep Block2's cost.
func TestBlockwiseGetThroughRelay(t *testing.T) {
	const size, blocks = 40<<10 + 123, 41
	const delay = 20 * time.Millisecond
	data := testrig.Bytes(size, 13)
	udpPort, _ := coaprig.Loopback(t, testrig.File(t, "fw.bin", data), nil)

	r := start(t, delayrelay.Config{
		Server: "127.0.0.1:" + udpPort,
		Up:     delayrelay.Link{Delay: delay},
		Down:   delayrelay.Link{Delay: delay},
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := coaprig.Dial(t, "udp", strconv.Itoa(int(r.Addr().Port())))
	began := time.Now()
	var got bytes.Buffer
	err := c.GetBlocks(ctx, client.BlockRequest{Path: "/fw.bin", BlockSize: 1024}, func(ch client.Chunk) error {
		if ch.Offset != int64(got.Len()) {
			t.Errorf("chunk at %d after %d bytes", ch.Offset, got.Len())
		}
		got.Write(ch.Payload)
		return nil
	})
	took := time.Since(began)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("got %d bytes, not the file's %d", got.Len(), len(data))
	}
	st := settled(t, r)
	t.Logf("%d bytes in %v (%d blocks, %d datagrams up, %d down)", size, took, blocks, st.Up.Forwarded, st.Down.Forwarded)
	if least := blocks * 2 * delay; took < least {
		t.Errorf("%d blocks took %v, less than one %v round trip each (%v)", blocks, took, 2*delay, least)
	}
	if st.Up.Forwarded < blocks || st.Down.Forwarded < blocks || st.Up.Lost+st.Down.Lost+st.Up.Overflow+st.Down.Overflow != 0 {
		t.Errorf("stats %+v, want at least %d datagrams each way and none dropped", st, blocks)
	}
}

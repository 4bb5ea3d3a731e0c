package client_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/tether-iot/tether/coap/client"
	"github.com/tether-iot/tether/coap/fileserver"
	"github.com/tether-iot/tether/sock/simnet"
)

// exampleServer serves body as coap://fw.example/fw.bin with tether's file
// server, on a simulated network; the examples run on it instead of a real
// one. It returns the device's host and a function that stops the server.
func exampleServer(body []byte, opts *fileserver.Options) (*simnet.Host, func()) {
	n := simnet.New(1)
	srv := n.AddHost("server", "10.0.0.1")
	dev := n.AddHost("device", "10.0.0.2")
	n.DNS().Set("fw.example", netip.MustParseAddr("10.0.0.1"))
	dir, _ := os.MkdirTemp("", "example")
	os.WriteFile(filepath.Join(dir, "fw.bin"), body, 0o644)
	fs, _ := fileserver.New(dir, opts)
	pc, _ := srv.ListenPacket("udp", ":5683")
	go fs.ServeUDP(pc)
	return dev, func() { fs.Close(); os.RemoveAll(dir) }
}

func ExampleConn_GetBlocks() {
	firmware := bytes.Repeat([]byte("firmware"), 8<<10) // 64 KiB
	dev, stop := exampleServer(firmware, nil)
	defer stop()

	s, _ := dev.NewSocket("udp", nil) // sock.New("udp", nil) on a real network
	defer s.Close()
	ctx := context.Background()
	if err := s.Connect(ctx, "fw.example", "5683"); err != nil {
		panic(err)
	}
	c, _ := client.NewUDP(s, nil)

	h := sha256.New()
	var n int64
	err := c.GetBlocks(ctx, client.BlockRequest{Path: "/fw.bin", BlockSize: 1024}, func(ch client.Chunk) error {
		h.Write(ch.Payload) // in order, each byte once; ch.Offset says where it belongs
		n += int64(len(ch.Payload))
		return nil
	})
	if err != nil {
		panic(err)
	}
	fmt.Printf("%d bytes, SHA-256 %x\n", n, h.Sum(nil))
	// Output:
	// 65536 bytes, SHA-256 6b5c9b97843146e11a1f517157047119e792dc3cba346ff723f28ba3518ac03a
}

// With QBlock, the first block is asked for with Q-Block2 (RFC 9177) in a
// confirmable request, whose answer tells whether the server does
// Q-Block2. tether's file server does: the rest comes in a burst of
// non-confirmable responses, asked for in one request. The wire trace
// (Config.Logger at LevelTrace) shows it.
func ExampleConn_GetBlocks_qBlock2() {
	dev, stop := exampleServer(bytes.Repeat([]byte("x"), 2500), nil)
	defer stop()

	s, _ := dev.NewSocket("udp", nil)
	defer s.Close()
	ctx := context.Background()
	if err := s.Connect(ctx, "fw.example", "5683"); err != nil {
		panic(err)
	}
	trace := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: client.LevelTrace, ReplaceAttr: protocolOnly}))
	c, _ := client.NewUDP(s, &client.Config{Logger: trace})

	var n int
	err := c.GetBlocks(ctx, client.BlockRequest{Path: "/fw.bin", QBlock: true}, func(ch client.Chunk) error {
		n += len(ch.Payload)
		return nil
	})
	fmt.Println(n, "bytes,", err)
	// Output:
	// msg="coap send" type=CON code="0.01 GET" qblock2=0/0/1024 payload=0
	// msg="coap recv" type=ACK code="2.05 Content" qblock2=0/1/1024 payload=1024
	// msg="coap send" type=NON code="0.01 GET" qblock2=1/1/1024 payload=0
	// msg="coap recv" type=NON code="2.05 Content" qblock2=1/1/1024 payload=1024
	// msg="coap recv" type=NON code="2.05 Content" qblock2=2/0/1024 payload=452
	// 2500 bytes, <nil>
}

// A server that does not do Q-Block2 answers the first, confirmable,
// request 4.02 Bad Option (here, tether's file server with NoQBlock), and
// the transfer goes on with Block2, as it would without QBlock.
func ExampleConn_GetBlocks_qBlock2Fallback() {
	dev, stop := exampleServer(bytes.Repeat([]byte("x"), 2500), &fileserver.Options{NoQBlock: true})
	defer stop()

	s, _ := dev.NewSocket("udp", nil)
	defer s.Close()
	ctx := context.Background()
	if err := s.Connect(ctx, "fw.example", "5683"); err != nil {
		panic(err)
	}
	trace := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: client.LevelTrace, ReplaceAttr: protocolOnly}))
	c, _ := client.NewUDP(s, &client.Config{Logger: trace})

	var n int
	err := c.GetBlocks(ctx, client.BlockRequest{Path: "/fw.bin", QBlock: true}, func(ch client.Chunk) error {
		n += len(ch.Payload)
		return nil
	})
	fmt.Println(n, "bytes,", err)
	// Output:
	// msg="coap send" type=CON code="0.01 GET" qblock2=0/0/1024 payload=0
	// msg="coap recv" type=ACK code="4.02 Bad Option" payload=26
	// msg="coap: no Q-Block2 at the server; Block2" path=/fw.bin
	// msg="coap send" type=CON code="0.01 GET" block2=0/0/1024 payload=0
	// msg="coap recv" type=ACK code="2.05 Content" block2=0/1/1024 payload=1024
	// msg="coap send" type=CON code="0.01 GET" block2=1/0/1024 payload=0
	// msg="coap recv" type=ACK code="2.05 Content" block2=1/1/1024 payload=1024
	// msg="coap send" type=CON code="0.01 GET" block2=2/0/1024 payload=0
	// msg="coap recv" type=ACK code="2.05 Content" block2=2/0/1024 payload=452
	// 2500 bytes, <nil>
}

// protocolOnly leaves out of a trace line its time and level, and the
// message ID, token and ETag, which vary from run to run or are long.
func protocolOnly(_ []string, a slog.Attr) slog.Attr {
	switch a.Key {
	case slog.TimeKey, slog.LevelKey, "mid", "token", "etag":
		return slog.Attr{}
	}
	return a
}

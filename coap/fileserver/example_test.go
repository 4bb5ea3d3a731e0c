package fileserver_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/tether-iot/tether/coap/client"
	"github.com/tether-iot/tether/coap/fileserver"
	"github.com/tether-iot/tether/sock/netsock"
)

// A directory served over CoAP on loopback UDP, and one of its files
// fetched by tether's client. The ETag is the first 8 bytes of the file's
// SHA-256: it changes when the content does.
func ExampleServer() {
	dir, _ := os.MkdirTemp("", "firmware")
	defer os.RemoveAll(dir)
	os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hello, device\n"), 0o644)

	srv, err := fileserver.New(dir, nil)
	if err != nil {
		panic(err)
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0") // ":5683" on a server
	if err != nil {
		panic(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.ServeUDP(pc) }()

	s, _ := netsock.New("udp4", nil)
	defer s.Close()
	ctx := context.Background()
	if err := s.Connect(ctx, "127.0.0.1", strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port)); err != nil {
		panic(err)
	}
	c, _ := client.NewUDP(s, nil)
	err = c.GetBlocks(ctx, client.BlockRequest{Path: "/hello.txt"}, func(ch client.Chunk) error {
		fmt.Printf("%q, Size2 %d, ETag %x\n", ch.Payload, ch.Size2, ch.ETag)
		return nil
	})
	if err != nil {
		panic(err)
	}

	srv.Close() // stops ServeUDP and closes pc
	fmt.Println(<-served)
	// Output:
	// "hello, device\n", Size2 14, ETag 8afea755fde3ee72
	// fileserver: server closed
}

package download_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/tether-iot/tether/coap/fileserver"
	"github.com/tether-iot/tether/download"
	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/simnet"
)

// exampleNetwork is a device and a CoAP file server serving firmware as
// coap://fw.example/fw.bin, on a simulated network; the examples run on it
// instead of a real one. It returns the device's socket factory and a stop
// function.
func exampleNetwork(firmware []byte) (*simnet.Host, func(string) (sock.Socket, error), func()) {
	n := simnet.New(1)
	srv := n.AddHost("server", "10.0.0.1")
	dev := n.AddHost("device", "10.0.0.2")
	n.DNS().Set("fw.example", netip.MustParseAddr("10.0.0.1"))
	dir, _ := os.MkdirTemp("", "example")
	os.WriteFile(filepath.Join(dir, "fw.bin"), firmware, 0o644)
	fs, _ := fileserver.New(dir, nil)
	pc, _ := srv.ListenPacket("udp", ":5683")
	go fs.ServeUDP(pc)
	return dev, func(network string) (sock.Socket, error) { return dev.NewSocket(network, nil) },
		func() { fs.Close(); os.RemoveAll(dir) }
}

func ExampleToFile() {
	firmware := bytes.Repeat([]byte("firmware"), 8<<10) // 64 KiB
	want := sha256.Sum256(firmware)
	_, socket, stop := exampleNetwork(firmware)
	defer stop()
	dir, _ := os.MkdirTemp("", "device")
	defer os.RemoveAll(dir)

	d, err := download.ToFile(context.Background(), "coap://fw.example/fw.bin", filepath.Join(dir, "fw.bin"), &download.Options{
		SHA256:      want[:],          // verified on the file as it is on disk
		GiveUpAfter: 10 * time.Minute, // online time without a block
		NewSocket:   socket,           // a simulated network here; sock.New by default
	})
	if err != nil {
		panic(err)
	}
	if err := d.Wait(); err != nil {
		panic(err) // a run after a crash continues from NAME.part
	}
	entries, _ := os.ReadDir(dir)
	fmt.Printf("%d bytes, verified: %v, files: %d\n", d.Written(), bytes.Equal(d.Sum(), want[:]), len(entries))
	// Output:
	// 65536 bytes, verified: true, files: 1
}

func ExampleController() {
	firmware := bytes.Repeat([]byte("firmware"), 8<<10)
	dev, socket, stop := exampleNetwork(firmware)
	defer stop()
	dir, _ := os.MkdirTemp("", "device")
	defer os.RemoveAll(dir)

	var ctl download.Controller
	lost := make(chan struct{})
	var once sync.Once
	d, err := ctl.ToFile(context.Background(), "coap://fw.example/fw.bin", filepath.Join(dir, "fw.bin"), &download.Options{
		NewSocket: socket,
		Progress: func(p download.Progress) {
			if p.Written >= int64(len(firmware)/2) {
				once.Do(func() {
					// Halfway, the modem says it lost its network.
					dev.SetDown(true)
					ctl.EnterOffline(download.UDP) // coap and coaps: suspended, sessions kept
					close(lost)
				})
			}
		},
	})
	if err != nil {
		panic(err)
	}
	<-lost
	fmt.Println("offline:", d.Phase())
	time.Sleep(50 * time.Millisecond)
	dev.SetDown(false)
	ctl.ExitOffline(download.UDP) // the same server, from the first missing byte, at once
	if err := d.Wait(); err != nil {
		panic(err)
	}
	fmt.Println("done:", d.Phase(), d.Written(), "bytes")
	// Output:
	// offline: suspended
	// done: ended 65536 bytes
}

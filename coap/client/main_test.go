package client_test

import (
	"fmt"
	"net"
	"os"
	"testing"

	"github.com/tether-iot/tether/coap/fileserver"
	"go.uber.org/goleak"
)

// TestMain checks for leaked goroutines, and doubles as the file server of
// the benchmarks: with TETHER_BENCH_SERVE=DIR the test binary serves DIR on
// loopback UDP and TCP, prints the two ports and runs until killed, so the
// benchmarks' allocation counts are the client's alone.
func TestMain(m *testing.M) {
	if dir := os.Getenv("TETHER_BENCH_SERVE"); dir != "" {
		serveForever(dir)
		return
	}
	goleak.VerifyTestMain(m)
}

func serveForever(dir string) {
	srv, err := fileserver.New(dir, nil)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println(pc.LocalAddr().(*net.UDPAddr).Port, ln.Addr().(*net.TCPAddr).Port)
	go srv.ServeTCP(ln)
	srv.ServeUDP(pc)
}

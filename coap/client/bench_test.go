package client_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"

	"github.com/tether-iot/tether/coap/client"
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/internal/testrig/coaprig"
	"github.com/tether-iot/tether/sock/netsock"
)

const benchSize = 4 << 20

// benchServer starts the file server in this process (as the ping-pong
// peer is), serving a 4 MiB file, and returns its UDP and TCP ports.
func benchServer(b *testing.B) (udp, tcp string) {
	b.Helper()
	dir, _ := testrig.RandomFile(b, "fw.bin", benchSize, 9)
	return coaprig.Loopback(b, dir, nil)
}

// BenchmarkTransfer compares, in one run, a 4 MiB lockstep Block2 download
// (1024-byte blocks) from tether's file server over UDP loopback, the same
// over TCP with BERT, and a bare *net.UDPConn ping-pong of the same sizes
// (a 30-byte request, a 1040-byte reply, 4096 times). MB/s is comparable
// across the three; allocs/op of the downloads are per 4 MiB, i.e. per 4096
// blocks, server included (the server runs in this process, as the
// ping-pong peer does). Compare with benchstat -col /kind:
//
//	go test -run '^$' -bench Transfer -count 10 ./coap/client > t.txt
//	benchstat -col /kind t.txt
func BenchmarkTransfer(b *testing.B) {
	udp, tcp := benchServer(b)
	b.Run("kind=pingpong", func(b *testing.B) {
		srv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			in, reply := make([]byte, 2048), make([]byte, 1040)
			for {
				_, from, err := srv.ReadFromUDPAddrPort(in)
				if err != nil {
					return
				}
				srv.WriteToUDPAddrPort(reply, from)
			}
		}()
		defer func() { srv.Close(); <-done }()
		c, err := net.DialUDP("udp4", nil, srv.LocalAddr().(*net.UDPAddr))
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		req, buf := make([]byte, 30), make([]byte, 2048)
		b.ReportAllocs()
		b.SetBytes(benchSize)
		for b.Loop() {
			for range benchSize / 1024 {
				c.Write(req)
				if _, err := c.Read(buf); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	for _, tc := range []struct{ name, network, port string }{
		{"kind=udp-lockstep", "udp", udp},
		{"kind=tcp-bert", "tcp", tcp},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c := coaprig.Dial(b, tc.network, tc.port)
			var n int64
			fn := func(ch client.Chunk) error { n += int64(len(ch.Payload)); return nil }
			b.ReportAllocs()
			b.SetBytes(benchSize)
			for b.Loop() {
				n = 0
				if err := c.GetBlocks(context.Background(), client.BlockRequest{Path: "fw.bin", BlockSize: 1024}, fn); err != nil {
					b.Fatal(err)
				}
				if n != benchSize {
					b.Fatalf("%d bytes", n)
				}
			}
		})
	}
}

// TestNoAllocationsPerBlock: in steady state a block costs the client no
// allocation. A 64-block and a 1-block download must allocate the same; the
// server runs in a child process, so only the client's allocations count.
func TestNoAllocationsPerBlock(t *testing.T) {
	dir, _ := testrig.RandomFile(t, "fw.bin", 64<<10, 5)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "TETHER_BENCH_SERVE="+dir)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var udp, tcp string
	line, _ := bufio.NewReader(out).ReadString('\n')
	fmt.Sscan(line, &udp, &tcp)
	for _, network := range []string{"udp", "tcp"} {
		port := map[string]string{"udp": udp, "tcp": tcp}[network]
		s, err := netsock.New(network+"4", nil)
		if err != nil {
			t.Fatal(err)
		}
		var cfg *client.Config
		if network == "tcp" {
			cfg = &client.Config{NoBERT: true}
		}
		c := coaprig.Connect(t, s, network, "127.0.0.1", port, cfg)
		fn := func(client.Chunk) error { return nil }
		last := int64(63 << 10)
		one := testing.AllocsPerRun(20, func() {
			if err := c.GetBlocks(context.Background(), client.BlockRequest{Path: "fw.bin", Offset: last, BlockSize: 1024}, fn); err != nil {
				t.Fatal(err)
			}
		})
		all := testing.AllocsPerRun(20, func() {
			if err := c.GetBlocks(context.Background(), client.BlockRequest{Path: "fw.bin", BlockSize: 1024}, fn); err != nil {
				t.Fatal(err)
			}
		})
		t.Logf("%s: %.0f allocations for 1 block, %.0f for 64", network, one, all)
		if all != one {
			t.Errorf("%s: %v allocations for 64 blocks, %v for 1: blocks allocate", network, all, one)
		}
	}
}

// Command coapbench is the helper of scripts/bench-peers: it serves a
// directory with tether's file server, or downloads a file with tether's
// client or with go-coap's, so that all of them can be timed as separate
// processes against the same server. It is a measuring tool, not part of
// tether's command.
//
//	coapbench serve DIR                  print the port, serve UDP and TCP on it
//	coapbench get udp|tcp PORT PATH      download with tether's client
//	coapbench gocoap udp|tcp PORT PATH   download with go-coap's client
//	coapbench echo                       print the port, answer every datagram with 1040 bytes
//	coapbench ping PORT N                send N 30-byte datagrams, each after the last answer
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/tcp"
	"github.com/plgd-dev/go-coap/v3/udp"

	"github.com/tether-iot/tether/coap/client"
	"github.com/tether-iot/tether/coap/fileserver"
	"github.com/tether-iot/tether/sock/netsock"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "coapbench:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	switch {
	case len(args) == 2 && args[0] == "serve":
		return serve(args[1])
	case len(args) == 4 && args[0] == "get":
		return report(get(args[1], args[2], args[3]))
	case len(args) == 4 && args[0] == "gocoap":
		return report(gocoapGet(args[1], args[2], args[3]))
	case len(args) == 1 && args[0] == "echo":
		return echo()
	case len(args) == 3 && args[0] == "ping":
		return ping(args[1], args[2])
	}
	return fmt.Errorf("usage: coapbench serve DIR | get udp|tcp PORT PATH | gocoap udp|tcp PORT PATH")
}

func report(body []byte, err error) error {
	if err != nil {
		return err
	}
	fmt.Printf("%d %x\n", len(body), sha256.Sum256(body))
	return nil
}

func serve(dir string) error {
	srv, err := fileserver.New(dir, nil)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	pc, err := net.ListenPacket("udp4", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return err
	}
	fmt.Println(port)
	go srv.ServeTCP(ln)
	return srv.ServeUDP(pc)
}

func get(network, port, path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := netsock.New(network+"4", nil)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if err := s.Connect(ctx, "127.0.0.1", port); err != nil {
		return nil, err
	}
	var c *client.Conn
	if network == "tcp" {
		c, err = client.NewTCP(ctx, s, &client.Config{NoBERT: true})
	} else {
		c, err = client.NewUDP(s, nil)
	}
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	err = c.GetBlocks(ctx, client.BlockRequest{Path: path, BlockSize: 1024}, func(ch client.Chunk) error {
		out.Write(ch.Payload)
		return nil
	})
	return out.Bytes(), err
}

func gocoapGet(network, port, path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	addr := "127.0.0.1:" + port
	bw := options.WithBlockwise(true, blockwise.SZX1024, time.Minute)
	size := options.WithMaxMessageSize(64 << 20)
	var (
		body io.ReadSeeker
		err  error
	)
	if network == "tcp" {
		cc, err := tcp.Dial(addr, bw, size, options.WithCSMExchangeTimeout(5*time.Second))
		if err != nil {
			return nil, err
		}
		defer cc.Close()
		resp, err := cc.Get(ctx, path)
		if err != nil {
			return nil, err
		}
		body = resp.Body()
	} else {
		cc, err := udp.Dial(addr, bw, size)
		if err != nil {
			return nil, err
		}
		defer cc.Close()
		resp, err := cc.Get(ctx, path)
		if err != nil {
			return nil, err
		}
		body = resp.Body()
	}
	if body == nil {
		return nil, fmt.Errorf("empty response")
	}
	b, err := io.ReadAll(body)
	return b, err
}

// echo is the far end of a bare UDP ping-pong: the ceiling for any lockstep
// client between two processes.
func echo() error {
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return err
	}
	fmt.Println(pc.LocalAddr().(*net.UDPAddr).Port)
	in, reply := make([]byte, 2048), make([]byte, 1040)
	for {
		_, from, err := pc.ReadFromUDPAddrPort(in)
		if err != nil {
			return err
		}
		pc.WriteToUDPAddrPort(reply, from)
	}
}

func ping(port, count string) error {
	n, err := strconv.Atoi(count)
	if err != nil {
		return err
	}
	c, err := net.Dial("udp4", "127.0.0.1:"+port)
	if err != nil {
		return err
	}
	defer c.Close()
	req, buf := make([]byte, 30), make([]byte, 2048)
	c.SetReadDeadline(time.Now().Add(time.Minute))
	for range n {
		c.Write(req)
		if _, err := c.Read(buf); err != nil {
			return err
		}
	}
	return nil
}

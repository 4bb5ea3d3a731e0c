package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/tether-iot/tether/coap/fileserver"
)

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	udpAddr := fs.String("udp", ":5683", "serve CoAP over UDP on `ADDR` (empty: not at all)")
	tcpAddr := fs.String("tcp", ":5683", "serve CoAP over TCP on `ADDR` (empty: not at all)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{errors.New("serve takes one directory")}
	}
	if *udpAddr == "" && *tcpAddr == "" {
		return usageError{errors.New("nothing to serve on: --udp and --tcp are both empty")}
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	srv, err := fileserver.New(pos[0], &fileserver.Options{Logger: log})
	if err != nil {
		return err
	}
	defer srv.Close()
	errs := make(chan error, 2)
	if *udpAddr != "" {
		pc, err := net.ListenPacket("udp", *udpAddr)
		if err != nil {
			return err
		}
		log.Info("serving", "dir", pos[0], "udp", pc.LocalAddr().String())
		go func() { errs <- srv.ServeUDP(pc) }()
	}
	if *tcpAddr != "" {
		ln, err := net.Listen("tcp", *tcpAddr)
		if err != nil {
			return err
		}
		log.Info("serving", "dir", pos[0], "tcp", ln.Addr().String())
		go func() { errs <- srv.ServeTCP(ln) }()
	}
	select {
	case <-ctx.Done():
		return nil // Ctrl-C is how a server stops
	case err := <-errs:
		return fmt.Errorf("serve: %w", err)
	}
}

package main

import (
	"context"
	"crypto/tls"
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
	tlsAddr := fs.String("tls", "", "serve CoAP over TLS (coaps+tcp) on `ADDR`; needs --cert and --key")
	certFile := fs.String("cert", "", "the server's certificate chain, PEM `FILE`")
	keyFile := fs.String("key", "", "the server's private key, PEM `FILE`")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{errors.New("serve takes one directory")}
	}
	if *udpAddr == "" && *tcpAddr == "" && *tlsAddr == "" {
		return usageError{errors.New("nothing to serve on: --udp, --tcp and --tls are all empty")}
	}
	var tlsCfg *tls.Config
	if *tlsAddr != "" {
		if *certFile == "" || *keyFile == "" {
			return usageError{errors.New("--tls needs --cert and --key")}
		}
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			return err
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	srv, err := fileserver.New(pos[0], &fileserver.Options{Logger: log})
	if err != nil {
		return err
	}
	defer srv.Close()
	errs := make(chan error, 3)
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
	if tlsCfg != nil {
		ln, err := net.Listen("tcp", *tlsAddr)
		if err != nil {
			return err
		}
		log.Info("serving", "dir", pos[0], "tls", ln.Addr().String())
		go func() { errs <- srv.ServeTCP(tls.NewListener(ln, tlsCfg)) }()
	}
	select {
	case <-ctx.Done():
		return nil // Ctrl-C is how a server stops
	case err := <-errs:
		return fmt.Errorf("serve: %w", err)
	}
}

package main

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/pion/dtls/v3"

	"github.com/tether-iot/tether/coap/fileserver"
	"github.com/tether-iot/tether/sock/dtlssock"
)

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	udpAddr := fs.String("udp", ":5683", "serve CoAP over UDP on `ADDR` (empty: not at all)")
	tcpAddr := fs.String("tcp", ":5683", "serve CoAP over TCP on `ADDR` (empty: not at all)")
	tlsAddr := fs.String("tls", "", "serve CoAP over TLS (coaps+tcp) on `ADDR`; needs --cert and --key")
	certFile := fs.String("cert", "", "the server's certificate chain, PEM `FILE`")
	keyFile := fs.String("key", "", "the server's private key, PEM `FILE`")
	dtlsAddr := fs.String("dtls", "", "serve CoAP over DTLS (coaps) on `ADDR`; needs --psk-id and --psk (or --psk-hex), or --cert and --key")
	pskID := fs.String("psk-id", "", "the pre-shared key's identity, for --dtls")
	pskText := fs.String("psk", "", "the pre-shared key, as text")
	pskHex := fs.String("psk-hex", "", "the pre-shared key, in hex")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{errors.New("serve takes one directory")}
	}
	if *udpAddr == "" && *tcpAddr == "" && *tlsAddr == "" && *dtlsAddr == "" {
		return usageError{errors.New("nothing to serve on: --udp, --tcp, --tls and --dtls are all empty")}
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
	errs := make(chan error, 4)
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
	if *dtlsAddr != "" {
		key, err := pskFlags(*pskID, *pskText, *pskHex)
		if err != nil {
			return err
		}
		cfg := &dtls.Config{ConnectionIDGenerator: dtls.RandomCIDGenerator(8)}
		switch {
		case key != nil:
			cfg.PSK = func([]byte) ([]byte, error) { return key, nil }
			cfg.PSKIdentityHint = []byte(*pskID)
			cfg.CipherSuites = pskSuites
		case *certFile != "" && *keyFile != "":
			cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
			if err != nil {
				return err
			}
			cfg.Certificates = []tls.Certificate{cert}
		default:
			return usageError{errors.New("--dtls needs --psk-id with --psk or --psk-hex, or --cert and --key")}
		}
		pc, err := net.ListenPacket("udp", *dtlsAddr)
		if err != nil {
			return err
		}
		// dtlssock's listener, not pion's: pion's drops a client's first
		// requests when they overtake the end of its handshake.
		ln, err := dtlssock.Listen(pc, cfg)
		if err != nil {
			pc.Close()
			return err
		}
		log.Info("serving", "dir", pos[0], "dtls", ln.Addr().String())
		go func() { errs <- srv.ServeDatagramListener(ln) }()
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

// pskSuites are the PSK cipher suites tether offers, AEAD only (libcoap's
// OpenSSL build and pion agree on them; CBC does not negotiate).
var pskSuites = []dtls.CipherSuiteID{
	dtls.TLS_PSK_WITH_AES_128_CCM_8, dtls.TLS_PSK_WITH_AES_128_CCM, dtls.TLS_PSK_WITH_AES_128_GCM_SHA256,
}

// pskFlags returns the pre-shared key given by --psk or --psk-hex, nil when
// neither is; an identity without a key, or a key without one, is a mistake.
func pskFlags(id, text, hexKey string) ([]byte, error) {
	switch {
	case text != "" && hexKey != "":
		return nil, usageError{errors.New("--psk and --psk-hex: give one")}
	case id == "" && (text != "" || hexKey != ""):
		return nil, usageError{errors.New("a pre-shared key needs --psk-id")}
	case id != "" && text == "" && hexKey == "":
		return nil, usageError{errors.New("--psk-id needs --psk or --psk-hex")}
	case hexKey != "":
		b, err := hex.DecodeString(hexKey)
		if err != nil || len(b) == 0 {
			return nil, usageError{errors.New("--psk-hex is not hex")}
		}
		return b, nil
	case text != "":
		return []byte(text), nil
	}
	return nil, nil
}

package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"
)

// pskEnv names the environment variable that may hold get's identity and
// key, as one line of a PSK file.
const pskEnv = "TETHER_PSK"

// creds are the values of the credential flags: get and device take them
// as a client, serve as a server.
type creds struct {
	caFile, certFile, keyFile string
	pskID, pskText, pskHex    string
	pskFile                   string
}

// credFlags define the credential flags, each once: its name, where its
// value goes, and its help for a client (get, device) and, where serve
// says it otherwise, for serve.
var credFlags = []struct {
	name       string
	value      func(*creds) *string
	help       string
	serveHelp  string // "": the same as help
	clientOnly bool
}{
	{name: "ca", value: func(c *creds) *string { return &c.caFile }, clientOnly: true,
		help: "trust the CAs in PEM `FILE` for coaps, coaps+tcp and https (default: the system's)"},
	{name: "cert", value: func(c *creds) *string { return &c.certFile },
		help:      "a client certificate chain, PEM `FILE`",
		serveHelp: "the server's certificate chain, PEM `FILE`, for --tls and --dtls"},
	{name: "key", value: func(c *creds) *string { return &c.keyFile },
		help: "the certificate's private key, PEM `FILE`"},
	{name: "psk-file", value: func(c *creds) *string { return &c.pskFile },
		help:      "the pre-shared key for coaps://, a line 'IDENTITY KEY' (KEY as text, or hex:HEX) in `FILE`; with several lines, --psk-id picks one; $" + pskEnv + " may hold the line instead",
		serveHelp: "the devices' pre-shared keys for --dtls, one 'IDENTITY KEY' per line of `FILE` (KEY as text, or hex:HEX); reloaded on SIGHUP"},
	{name: "psk-id", value: func(c *creds) *string { return &c.pskID },
		help:      "the pre-shared key's `IDENTITY`",
		serveHelp: "one device's `IDENTITY`, with --psk or --psk-hex (prefer --psk-file)"},
	{name: "psk", value: func(c *creds) *string { return &c.pskText },
		help: "the pre-shared key, as `TEXT` (visible to other users in ps: prefer --psk-file)"},
	{name: "psk-hex", value: func(c *creds) *string { return &c.pskHex },
		help: "the pre-shared key, in `HEX` (visible to other users in ps: prefer --psk-file)"},
}

// add defines the credential flags on fs, as serve's when serve is set.
func (c *creds) add(fs *pflag.FlagSet, serve bool) {
	for _, f := range credFlags {
		help := f.help
		switch {
		case serve && f.clientOnly:
			continue
		case serve && f.serveHelp != "":
			help = f.serveHelp
		}
		fs.StringVar(f.value(c), f.name, "", help)
	}
}

// What each secure transport needs from the credential flags, for their
// help and for the usage errors that say it is missing.
const (
	needsCoapsClient = "--psk-file (or $" + pskEnv + ", or --psk-id with --psk), or --ca (and --cert, --key)"
	needsDTLSServer  = "--psk-file (or --psk-id with --psk), or --cert and --key"
	needsTLSServer   = "--cert and --key"
)

// pskEntry is one identity and its key.
type pskEntry struct {
	id  string
	key []byte
}

// parsePSKLine reads "IDENTITY KEY": KEY as text, or hex:HEX.
func parsePSKLine(line string) (pskEntry, error) {
	id, key, ok := strings.Cut(strings.TrimSpace(line), " ")
	key = strings.TrimSpace(key)
	if !ok || id == "" || key == "" {
		return pskEntry{}, errors.New("want 'IDENTITY KEY' (KEY as text, or hex:HEX)")
	}
	if h, isHex := strings.CutPrefix(key, "hex:"); isHex {
		b, err := hex.DecodeString(h)
		if err != nil || len(b) == 0 {
			return pskEntry{}, fmt.Errorf("identity %q: the key is not hex", id)
		}
		return pskEntry{id, b}, nil
	}
	return pskEntry{id, []byte(key)}, nil
}

// loadPSKFile reads a PSK file: one entry a line; blank lines and lines
// that start with # are skipped.
func loadPSKFile(path string) ([]pskEntry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []pskEntry
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		e, err := parsePSKLine(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		if seen[e.id] {
			return nil, fmt.Errorf("%s:%d: identity %q a second time", path, n, e.id)
		}
		seen[e.id] = true
		out = append(out, e)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no 'IDENTITY KEY' line", path)
	}
	return out, nil
}

// clientPSK returns the identity and key a download uses: from --psk-id
// with --psk or --psk-hex, from --psk-file, or from $TETHER_PSK; nil if
// none is given.
func (c *creds) clientPSK() (*pskEntry, error) {
	switch {
	case c.pskText != "" && c.pskHex != "":
		return nil, usageError{errors.New("--psk and --psk-hex: give one")}
	case (c.pskText != "" || c.pskHex != "") && c.pskFile != "":
		return nil, usageError{errors.New("--psk-file and --psk or --psk-hex: give one")}
	case c.pskText != "" || c.pskHex != "":
		if c.pskID == "" {
			return nil, usageError{errors.New("a pre-shared key needs --psk-id")}
		}
		key := []byte(c.pskText)
		if c.pskHex != "" {
			b, err := hex.DecodeString(c.pskHex)
			if err != nil || len(b) == 0 {
				return nil, usageError{errors.New("--psk-hex is not hex")}
			}
			key = b
		}
		return &pskEntry{c.pskID, key}, nil
	case c.pskFile != "":
		entries, err := loadPSKFile(c.pskFile)
		if err != nil {
			return nil, usageError{fmt.Errorf("--psk-file: %w", err)}
		}
		if c.pskID == "" {
			if len(entries) > 1 {
				return nil, usageError{fmt.Errorf("--psk-file %s has %d identities: pick one with --psk-id", c.pskFile, len(entries))}
			}
			return &entries[0], nil
		}
		for _, e := range entries {
			if e.id == c.pskID {
				return &e, nil
			}
		}
		return nil, usageError{fmt.Errorf("--psk-file %s has no identity %q", c.pskFile, c.pskID)}
	case os.Getenv(pskEnv) != "":
		e, err := parsePSKLine(os.Getenv(pskEnv))
		if err != nil {
			return nil, usageError{fmt.Errorf("$%s: %w", pskEnv, err)}
		}
		if c.pskID != "" && c.pskID != e.id {
			return nil, usageError{fmt.Errorf("--psk-id %q, but $%s is for %q", c.pskID, pskEnv, e.id)}
		}
		return &e, nil
	case c.pskID != "":
		return nil, usageError{errors.New("--psk-id needs a key: --psk-file, $" + pskEnv + ", --psk or --psk-hex")}
	}
	return nil, nil
}

// clientTLS builds the TLS configuration of a download from the flags;
// nil when none is given.
func (c *creds) clientTLS() (*tls.Config, error) {
	if c.caFile == "" && c.certFile == "" && c.keyFile == "" {
		return nil, nil
	}
	cfg := &tls.Config{}
	if c.caFile != "" {
		pem, err := os.ReadFile(c.caFile)
		if err != nil {
			return nil, usageError{fmt.Errorf("--ca: %w", err)}
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, usageError{fmt.Errorf("--ca %s: no PEM certificate in it", c.caFile)}
		}
	}
	cert, err := c.certificate()
	if err != nil {
		return nil, err
	}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return cfg, nil
}

// certificate loads --cert and --key; nil when neither is given.
func (c *creds) certificate() (*tls.Certificate, error) {
	if c.certFile == "" && c.keyFile == "" {
		return nil, nil
	}
	if c.certFile == "" || c.keyFile == "" {
		return nil, usageError{errors.New("--cert and --key go together")}
	}
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return nil, usageError{fmt.Errorf("--cert/--key: %w", err)}
	}
	return &cert, nil
}

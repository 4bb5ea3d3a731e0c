// Package testpki makes a throwaway certificate authority and server
// certificate for tests, trusted by nobody but the test process that made
// it. They are valid from 1999 to 2099 rather than around "now": one PKI
// serves tests inside testing/synctest bubbles, whose clock starts at
// 2000-01-01, and tests outside them, whichever makes it first.
package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"sync"
	"time"
)

// PKI is a CA and a server certificate it signed.
type PKI struct {
	Pool            *x509.CertPool  // trusts the CA
	Server          tls.Certificate // for localhost, server.sim, 127.0.0.1, ::1, 10.0.0.1, 10.199.0.1
	CAPEM           []byte          // the CA certificate, PEM
	CertPEM, KeyPEM []byte          // the server certificate and key, PEM
	StrangerPEM     []byte          // another CA's certificate, PEM: it signed nothing here
}

var (
	once sync.Once
	pki  PKI

	notBefore = time.Date(1999, 12, 31, 0, 0, 0, 0, time.UTC)
	notAfter  = time.Date(2099, 12, 31, 0, 0, 0, 0, time.UTC)
)

// Get returns the process's test PKI, made on first use.
func Get() PKI {
	once.Do(func() {
		caKey, caDER := newCA("tether test CA")
		_, strangerDER := newCA("a stranger CA")
		caCert, _ := x509.ParseCertificate(caDER)
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
			NotBefore: notBefore, NotAfter: notAfter,
			DNSNames: []string{"localhost", "server.sim", "fw.sim"},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1"),
				net.ParseIP("10.0.0.1"), net.ParseIP("10.199.0.1")},
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
		if err != nil {
			panic(err)
		}
		keyDER, _ := x509.MarshalECPrivateKey(key)
		pki.Pool = x509.NewCertPool()
		pki.Pool.AddCert(caCert)
		pki.Server = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
		pki.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
		pki.StrangerPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: strangerDER})
		pki.CertPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		pki.KeyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	})
	return pki
}

// newCA makes a self-signed CA certificate.
func newCA(name string) (*ecdsa.PrivateKey, []byte) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: notBefore, NotAfter: notAfter,
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, ca, ca, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	return key, der
}

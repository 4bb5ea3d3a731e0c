// Package testpki makes a throwaway certificate authority and server
// certificate for tests: trusted by nobody but the test that made it, valid
// for an hour.
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
}

var (
	once sync.Once
	pki  PKI
)

// Get returns the process's test PKI, made on first use.
func Get() PKI {
	once.Do(func() {
		caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tether test CA"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
		caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
		if err != nil {
			panic(err)
		}
		caCert, _ := x509.ParseCertificate(caDER)
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
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
		pki.CertPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		pki.KeyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	})
	return pki
}

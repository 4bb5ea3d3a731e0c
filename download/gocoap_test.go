package download_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"strconv"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	"github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/pkg/runner/periodic"

	"github.com/tether-iot/tether/download"
	"github.com/tether-iot/tether/internal/peertest"
	"github.com/tether-iot/tether/internal/testrig"
)

// TestDTLSFromGoCoapServer: a coaps download (PSK, AES-128-CCM-8) from
// go-coap's DTLS server, an implementation we did not write; SHA-256 checked.
func TestDTLSFromGoCoapServer(t *testing.T) {
	data := testrig.Bytes(1<<20, 42)
	want := sha256.Sum256(data)
	r := mux.NewRouter()
	r.Handle("/fw.bin", mux.HandlerFunc(func(w mux.ResponseWriter, _ *mux.Message) {
		w.SetResponse(codes.Content, message.AppOctets, bytes.NewReader(data))
	}))
	addr := "127.0.0.1:" + strconv.Itoa(peertest.FreePort(t))
	ln, err := coapnet.NewDTLSListener("udp4", addr, coapnet.NewDTLSServerOptions(pskServer()...))
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{}) // ends go-coap's housekeeping goroutine
	srv := dtls.NewServer(options.WithMux(r), options.WithMaxMessageSize(1<<20),
		options.WithPeriodicRunner(periodic.New(stop, 100*time.Millisecond)))
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	defer func() { srv.Stop(); <-done; ln.Close(); close(stop) }()

	var sink memSink
	d, err := download.Start(context.Background(), "coaps://"+addr+"/fw.bin", &sink,
		&download.Options{DTLS: pskConfig(), SHA256: want[:]})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Wait(); err != nil {
		t.Fatal(err)
	}
	if sink.sum() != want {
		t.Fatal("SHA-256 differs")
	}
	t.Logf("1 MiB over coaps from go-coap's DTLS server: %+v", d.Progress())
}

// TestGoCoapDTLSClientFromOurServer: go-coap's DTLS client downloads from
// tether's file server behind a DTLS listener; SHA-256 checked.
func TestGoCoapDTLSClientFromOurServer(t *testing.T) {
	data := testrig.Bytes(1<<20, 43)
	addr := dtlsFileServer(t, data, pskServer()...)
	stop := make(chan struct{})
	defer close(stop)
	psk := dtls.NewDTLSClientOptions(
		piondtls.WithPSK(func([]byte) ([]byte, error) { return testKey, nil }),
		piondtls.WithPSKIdentityHint([]byte("device-1")),
		piondtls.WithCipherSuites(piondtls.TLS_PSK_WITH_AES_128_CCM_8))
	cc, err := dtls.Dial(addr, psk,
		options.WithBlockwise(true, blockwise.SZX1024, 10*time.Minute), options.WithMaxMessageSize(2<<20),
		options.WithPeriodicRunner(periodic.New(stop, 100*time.Millisecond)))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // a hang guard, not a speed test
	defer cancel()
	resp, err := cc.Get(ctx, "/fw.bin")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body())
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("go-coap's DTLS client got %d bytes; SHA-256 differs", len(got))
	}
}

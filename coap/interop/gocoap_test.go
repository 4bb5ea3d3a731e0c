package interop_test

import (
	"bytes"
	"context"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/tether-iot/tether/coap/client"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/tcp"
	"github.com/plgd-dev/go-coap/v3/udp"

	"github.com/tether-iot/tether/internal/peertest"
	"github.com/tether-iot/tether/internal/testrig"
)

// goCoapServer serves data as /fw.bin with go-coap over UDP and TCP on one
// port.
func goCoapServer(t *testing.T, data []byte) int {
	t.Helper()
	r := mux.NewRouter()
	r.Handle("/fw.bin", mux.HandlerFunc(func(w mux.ResponseWriter, req *mux.Message) {
		w.SetResponse(codes.Content, message.AppOctets, bytes.NewReader(data))
	}))
	port := peertest.FreePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	ul, err := coapnet.NewListenUDP("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	tl, err := coapnet.NewTCPListener("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	us := udp.NewServer(options.WithMux(r), options.WithMaxMessageSize(1<<20))
	ts := tcp.NewServer(options.WithMux(r), options.WithMaxMessageSize(1<<20))
	done := make(chan struct{}, 2)
	go func() { us.Serve(ul); done <- struct{}{} }()
	go func() { ts.Serve(tl); done <- struct{}{} }()
	t.Cleanup(func() {
		us.Stop()
		ts.Stop()
		<-done
		<-done
		ul.Close()
		tl.Close()
	})
	return port
}

func TestOurClientFromGoCoapServer(t *testing.T) {
	data := testrig.Bytes(fiveMiB, 3)
	port := goCoapServer(t, data)
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			sameSHA(t, "tether client <- go-coap server over "+network, fetch(t, network, port, "/fw.bin"), data)
		})
	}
}

// TestOurQBlockFromGoCoapServer: go-coap has no Q-Block2; asked with it,
// its server answers in a way the client takes for "no" (4.02, or Block2),
// and the transfer goes on with Block2 to the exact bytes.
func TestOurQBlockFromGoCoapServer(t *testing.T) {
	data := testrig.Bytes(256<<10, 5)
	port := goCoapServer(t, data)
	got, _ := fetchWith(t, "udp", port, client.BlockRequest{Path: "/fw.bin", BlockSize: 1024, QBlock: true})
	sameSHA(t, "tether client, Q-Block2 <- go-coap server", got, data)
}

func TestGoCoapClientFromOurServer(t *testing.T) {
	data := testrig.Bytes(fiveMiB, 4)
	port := ourServer(t, testrig.File(t, "fw.bin", data))
	addr := "127.0.0.1:" + strconv.Itoa(port)
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	bw := options.WithBlockwise(true, blockwise.SZX1024, hangGuard)
	size := options.WithMaxMessageSize(8 << 20)

	t.Run("udp", func(t *testing.T) {
		cc, err := udp.Dial(addr, bw, size)
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		resp, err := cc.Get(ctx, "/fw.bin")
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body())
		if err != nil {
			t.Fatal(err)
		}
		sameSHA(t, "go-coap client <- tether server over udp", got, data)
	})
	t.Run("tcp", func(t *testing.T) {
		cc, err := tcp.Dial(addr, bw, size, options.WithCSMExchangeTimeout(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		resp, err := cc.Get(ctx, "/fw.bin")
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body())
		if err != nil {
			t.Fatal(err)
		}
		sameSHA(t, "go-coap client <- tether server over tcp", got, data)
	})
}

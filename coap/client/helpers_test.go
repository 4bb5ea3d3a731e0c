package client_test

import (
	"context"
	"crypto/sha256"
	"net"
	"net/netip"
	"testing"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/client"
	"github.com/tether-iot/tether/internal/testrig/coaprig"
	"github.com/tether-iot/tether/sock/simnet"
)

// simRig is a device and a server host on a simulated network; the server
// runs tether's file server over UDP and TCP on port 5683.
type simRig struct {
	n        *simnet.Network
	dev, srv *simnet.Host
}

func newSimRig(t testing.TB, seed uint64, dir string) simRig {
	t.Helper()
	n := simnet.New(seed)
	r := simRig{n: n, srv: n.AddHost("server", "10.0.0.1"), dev: n.AddHost("device", "10.0.0.2")}
	n.DNS().Set("files.sim", netip.MustParseAddr("10.0.0.1"))
	if dir != "" {
		pc, err := r.srv.ListenPacket("udp", ":5683")
		if err != nil {
			t.Fatal(err)
		}
		ln, err := r.srv.Listen("tcp", ":5683")
		if err != nil {
			t.Fatal(err)
		}
		coaprig.Serve(t, dir, nil, pc, ln)
	}
	return r
}

func (r simRig) dial(t testing.TB, network string, cfg *client.Config) *client.Conn {
	t.Helper()
	s, err := r.dev.NewSocket(network, nil)
	if err != nil {
		t.Fatal(err)
	}
	return coaprig.Connect(t, s, network, "files.sim", "5683", cfg)
}

// download fetches path from offset 0 and returns its SHA-256 and the chunks
// it came in.
func download(ctx context.Context, c *client.Conn, req client.BlockRequest) ([32]byte, []client.Chunk, error) {
	h := sha256.New()
	var chunks []client.Chunk
	err := c.GetBlocks(ctx, req, func(ch client.Chunk) error {
		h.Write(ch.Payload)
		ch.Payload, ch.ETag = nil, append([]byte(nil), ch.ETag...)
		chunks = append(chunks, ch)
		return nil
	})
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, chunks, err
}

// fakeServer is a programmable UDP peer: it hands every request to handle,
// which returns the datagrams to send back.
type fakeServer struct {
	pc net.PacketConn
}

func startFake(t testing.TB, h *simnet.Host, handle func(req *coap.Message, from net.Addr) [][]byte) *fakeServer {
	t.Helper()
	pc, err := h.ListenPacket("udp", ":5683")
	if err != nil {
		t.Fatal(err)
	}
	done := serveFake(pc, handle, func(out []byte, to net.Addr) { pc.WriteTo(out, to) })
	t.Cleanup(func() { pc.Close(); <-done })
	return &fakeServer{pc: pc}
}

// serveFake reads requests from pc until it closes, and hands what handle
// answers to send; the channel it returns closes when it has stopped.
func serveFake(pc net.PacketConn, handle func(req *coap.Message, from net.Addr) [][]byte, send func(out []byte, to net.Addr)) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		m := coap.Message{Options: make(coap.Options, 0, 16)}
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if coap.DecodeUDP(buf[:n], &m) != nil {
				continue
			}
			for _, out := range handle(&m, from) {
				send(out, from)
			}
		}
	}()
	return done
}

// encode builds a UDP datagram.
func encode(t testing.TB, typ coap.Type, code coap.Code, mid int32, token []byte, payload []byte, opts ...coap.Option) []byte {
	m := coap.Message{Type: typ, Code: code, MessageID: mid, Token: token, Payload: payload}
	for _, o := range opts {
		m.Options = m.Options.Add(o)
	}
	b, err := coap.AppendUDP(nil, &m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func uintOpt(id coap.OptionID, v uint32) coap.Option {
	opts, _ := coap.AppendUint(nil, nil, id, v)
	return opts[0]
}

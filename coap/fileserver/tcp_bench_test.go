package fileserver_test

import (
	"crypto/tls"
	"net"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/fileserver"
	"github.com/tether-iot/tether/internal/testpki"
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/internal/testrig/coaprig"
)

// BenchmarkIdleTCPConnHeap measures what an idle CoAP-over-TCP connection
// costs the server once it has served one BERT block (64 KiB): N
// connections (TETHER_TCP_CONNS, 2000 by default) each fetch a block, then
// wait past the buffers' linger; heap-B/conn is the live heap per
// connection then (the client's sockets, in the same process, included:
// about 0.3 KiB each), stack-B/conn the goroutine stacks, and
// after-close-KiB the live heap above the start once all are closed.
// Over TLS (tls), the TLS connection's own record buffers stay with it.
//
//	go test -run '^$' -bench IdleTCPConnHeap -benchtime 1x ./coap/fileserver
func BenchmarkIdleTCPConnHeap(b *testing.B) {
	b.Run("transport=tcp", func(b *testing.B) { benchIdleConnHeap(b, false) })
	b.Run("transport=tls", func(b *testing.B) { benchIdleConnHeap(b, true) })
}

func benchIdleConnHeap(b *testing.B, overTLS bool) {
	n := 2000
	if v, err := strconv.Atoi(os.Getenv("TETHER_TCP_CONNS")); err == nil && v > 0 {
		n = v
	}
	dir := testrig.File(b, "fw.bin", testrig.Bytes(128<<10, 1))
	srv, err := fileserver.New(dir, &fileserver.Options{MaxConns: n})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	dial := func() (net.Conn, error) { return net.Dial("tcp4", addr) }
	if overTLS {
		pki := testpki.Get()
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{pki.Server}})
		dial = func() (net.Conn, error) {
			return tls.Dial("tcp4", addr, &tls.Config{RootCAs: pki.Pool, ServerName: "localhost"})
		}
	}
	coaprig.Run(b, srv, nil, ln)
	live := func() (heap, stack uint64) {
		var ms runtime.MemStats
		for range 3 { // sync.Pool empties over two collections
			runtime.GC()
		}
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc, ms.StackInuse
	}
	csm := &coap.Message{Code: coap.CSM}
	csm.Options, _ = coap.AppendUint(csm.Options, nil, coap.MaxMessageSize, 1<<20)
	csm.Options = csm.Options.Add(coap.Option{ID: coap.BlockWiseTransfer})
	hello, _ := coap.AppendTCP(nil, csm)
	get := &coap.Message{Code: coap.GET, Token: []byte{1}}
	get.Options = get.Options.Add(coap.Option{ID: coap.URIPath, Value: []byte("fw.bin")})
	get.Options, _ = coap.AppendUint(get.Options, nil, coap.Block2, coap.Block{SZX: coap.BERT}.Value())
	req, _ := coap.AppendTCP(nil, get)
	framer := coap.NewFramer(1 << 20)
	var m coap.Message
	read := func(c net.Conn) *coap.Message {
		for {
			if ok, err := framer.Next(&m); err != nil || ok {
				if err != nil {
					b.Fatal(err)
				}
				return &m
			}
			k, err := c.Read(framer.Space())
			if k == 0 {
				b.Fatal(err)
			}
			framer.Advance(k)
		}
	}
	for range b.N {
		heap0, stack0 := live()
		conns := make([]net.Conn, 0, n)
		for range n {
			c, err := dial()
			if err != nil {
				b.Fatal(err)
			}
			conns = append(conns, c)
			if read(c).Code != coap.CSM {
				b.Fatal("no CSM")
			}
			c.Write(hello)
			c.Write(req)
			if r := read(c); r.Code != coap.Content || len(r.Payload) != 64<<10 {
				b.Fatalf("%v, %d bytes", coap.CodeString(r.Code), len(r.Payload))
			}
		}
		time.Sleep(fileserver.BufferLinger + 500*time.Millisecond)
		heap1, stack1 := live()
		for _, c := range conns {
			c.Close()
		}
		conns = nil
		time.Sleep(time.Second) // the server sees the closes
		heap2, _ := live()
		b.ReportMetric(float64(int64(heap1-heap0))/float64(n), "heap-B/conn")
		b.ReportMetric(float64(int64(stack1-stack0))/float64(n), "stack-B/conn")
		b.ReportMetric(float64(int64(heap2-heap0))/1024, "after-close-KiB")
	}
}

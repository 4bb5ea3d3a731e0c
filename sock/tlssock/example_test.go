package tlssock_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"

	"github.com/tether-iot/tether/internal/testpki"
	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/netsock"
	"github.com/tether-iot/tether/sock/socktest"
	"github.com/tether-iot/tether/sock/tlssock"
)

// A device talks TLS to a crypto/tls server on loopback, goes offline and
// comes back: Shutdown sends no close_notify, so the server keeps the
// session, and the next Connect resumes it from its session ticket.
func Example() {
	pki := testpki.Get() // a throwaway CA and a certificate for 127.0.0.1
	ln, _ := net.Listen("tcp4", "127.0.0.1:0")
	tl := tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{pki.Server}})
	defer tl.Close()
	go socktest.EchoStream(tl)
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)

	raw, _ := netsock.New("tcp4", nil)
	s := tlssock.New(raw, &tls.Config{RootCAs: pki.Pool}) // ServerName defaults to the host
	defer s.Close()
	echo := func(msg string) string {
		s.Send([]byte(msg))
		buf := make([]byte, 64)
		k, err := s.Receive(buf)
		if err != nil {
			return err.Error()
		}
		return string(buf[:k])
	}

	ctx := context.Background()
	if err := s.Connect(ctx, "127.0.0.1", port); err != nil {
		panic(err)
	}
	fmt.Println(echo("hello"), s.SessionResumed())

	sock.Shutdown(s) // offline: the raw socket is shut down, the session kept
	if err := s.Connect(ctx, "127.0.0.1", port); err != nil {
		panic(err)
	}
	fmt.Println(echo("again"), s.SessionResumed())
	// Output:
	// hello false
	// again true
}

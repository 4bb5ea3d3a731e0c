package fileserver_test

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/fileserver"
	"github.com/tether-iot/tether/internal/testrig/coaprig"
)

// firstFrame dials the server over TCP and returns the connection once it
// read the server's CSM, or nil if the server closed it first.
func firstFrame(t *testing.T, port string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp4", "127.0.0.1:"+port)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(stuck))
	f := coap.NewFramer(4096)
	var m coap.Message
	for {
		if ok, err := f.Next(&m); err != nil || ok {
			if err != nil || m.Code != coap.CSM {
				t.Fatalf("the server's first frame: %v %v", coap.CodeString(m.Code), err)
			}
			t.Cleanup(func() { c.Close() })
			return c
		}
		n, err := c.Read(f.Space())
		if n == 0 {
			c.Close()
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !isReset(err) {
				t.Fatalf("dialled: %v", err)
			}
			return nil
		}
		f.Advance(n)
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "read"
}

// TestTCPConnectionLimit: past MaxConns, a new connection is closed at
// once, and served again once one of the others has ended.
func TestTCPConnectionLimit(t *testing.T) {
	_, tcp := coaprig.Loopback(t, t.TempDir(), &fileserver.Options{MaxConns: 2})
	a, b := firstFrame(t, tcp), firstFrame(t, tcp)
	if a == nil || b == nil {
		t.Fatal("a connection within the limit was refused")
	}
	if c := firstFrame(t, tcp); c != nil {
		t.Fatal("a third connection was served with MaxConns 2")
	}
	a.Close()
	deadline := time.Now().Add(stuck)
	for firstFrame(t, tcp) == nil { // the server counts a out when it sees the close
		if time.Now().After(deadline) {
			t.Fatal("no connection served after one of two closed")
		}
		time.Sleep(time.Millisecond)
	}
}

package dtlssock

import (
	"context"
	"net"
	"testing"
)

// FuzzRoute feeds arbitrary datagrams to the listener's router: it never
// panics, never opens a connection for anything but a handshake record,
// and hands a datagram to a known connection only by that connection's
// address or, in a tls12_cid record, by its Connection ID (a new
// ClientHello from the address of an established session is for a new
// connection, none here: the handshake caps are full of proven handshakes).
func FuzzRoute(f *testing.F) {
	cid := []byte("8bytecid")
	known := &net.UDPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 5683}
	other := &net.UDPAddr{IP: net.IPv4(10, 0, 0, 3), Port: 5683}
	cidRecord := append([]byte{contentCID, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1}, cid...)
	hello := make([]byte, 13+12)
	copy(hello, []byte{contentHandshake, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 1})
	f.Add([]byte{contentHandshake, 0xfe, 0xfd}, false, false)
	f.Add(append(cidRecord, 0, 0), false, true)
	f.Add(cidRecord[:12], false, false)
	f.Add([]byte{contentAppData}, true, true)
	f.Add(hello, true, true)
	f.Add([]byte{}, true, false)
	f.Fuzz(func(t *testing.T, b []byte, fromKnown, up bool) {
		c := &serverConn{key: known.String(), established: make(chan struct{})}
		if up {
			close(c.established)
		}
		l := &listener{
			ctx:        context.Background(),
			lim:        Limits{}.withDefaults(),
			cidLen:     len(cid),
			handshakes: DefaultMaxHandshakes, // full, none unproven: no handshake goroutine is started
			perIP:      map[string]int{},
			byAddr:     map[string]*serverConn{c.key: c},
			byCID:      map[string]*serverConn{string(cid): c},
		}
		from := other
		if fromKnown {
			from = known
		}
		got := l.route(b, from)
		restart := fromKnown && up && isNewClientHello(b)
		byCID := len(b) >= recordHeaderLen+len(cid) && b[0] == contentCID &&
			string(b[recordHeaderLen:recordHeaderLen+len(cid)]) == string(cid)
		switch {
		case len(b) == 0 && got != nil:
			t.Fatal("an empty datagram was routed")
		case restart && !byCID && got != nil:
			t.Fatal("a new ClientHello went to the established session")
		case len(b) > 0 && (fromKnown || byCID) && !restart && got != c:
			t.Fatalf("a datagram for the known connection went to %p", got)
		case !fromKnown && !byCID && got != nil:
			t.Fatalf("a datagram from a stranger (type %d) was routed", b[0])
		case len(l.byAddr) != 1:
			t.Fatal("a connection was opened while the handshake caps were full")
		}
	})
}

package delayrelay_test

import (
	"net"
	"testing"
	"time"

	"github.com/tether-iot/tether/internal/delayrelay"
	"go.uber.org/goleak"
)

// TestCloseEndsEverything closes a relay with three mappings and
// datagrams waiting both ways: every goroutine it started has ended when
// Close returns, its port is free again, and a second Close is harmless.
func TestCloseEndsEverything(t *testing.T) {
	srv := listen(t)
	echo(t, srv, nil)
	before := goleak.IgnoreCurrent()
	r, err := delayrelay.Start(delayrelay.Config{
		Server: addrOf(srv),
		Up:     delayrelay.Link{Delay: 10 * time.Millisecond},
		Down:   delayrelay.Link{Delay: time.Minute},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range uint64(3) {
		c := dial(t, r)
		c.Write(seqDatagram(i, 8))
	}
	waitFor(t, "three replies waiting in the relay", func() bool { return r.Stats().Down.Queued == 3 })
	addr := r.Addr()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := goleak.Find(before); err != nil {
		t.Errorf("after Close: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	st := r.Stats()
	if st.Up.Forwarded != 3 || st.Down.Forwarded != 0 || st.Clients != 0 {
		t.Errorf("stats after Close %+v", st)
	}
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Errorf("the relay's port is still taken after Close: %v", err)
	} else {
		c.Close()
	}
}

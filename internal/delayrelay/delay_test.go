package delayrelay_test

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/tether-iot/tether/internal/delayrelay"
)

// TestDelayEachWay measures each leg of round trips through the relay to
// an echo server (all clocks are this process's): the client-to-server leg
// takes at least Up.Delay, the way back at least Down.Delay, the round
// trip at least their sum. Lower bounds only: how much later a datagram
// leaves depends on the machine.
func TestDelayEachWay(t *testing.T) {
	const up, down = 30 * time.Millisecond, 10 * time.Millisecond
	epoch := time.Now()
	since := func() uint64 { return uint64(time.Since(epoch)) }
	srv := listen(t)
	// The echo server writes when it received the datagram into bytes 16..24.
	echo(t, srv, func(b []byte) { binary.BigEndian.PutUint64(b[16:], since()) })
	r := start(t, delayrelay.Config{
		Server: addrOf(srv),
		Up:     delayrelay.Link{Delay: up},
		Down:   delayrelay.Link{Delay: down, Jitter: 5 * time.Millisecond},
	})
	c := dial(t, r)
	buf := make([]byte, 64)
	const n = 20
	minUp, minDown, minRTT := time.Hour, time.Hour, time.Hour
	for i := range n {
		b := make([]byte, 24)
		binary.BigEndian.PutUint64(b, uint64(i))
		sent := since()
		binary.BigEndian.PutUint64(b[8:], sent)
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(wait))
		m, err := c.Read(buf)
		if err != nil {
			t.Fatalf("round trip %d: %v", i, err)
		}
		back := since()
		if m != 24 || binary.BigEndian.Uint64(buf) != uint64(i) {
			t.Fatalf("round trip %d: got %x", i, buf[:m])
		}
		atServer := binary.BigEndian.Uint64(buf[16:])
		minUp = min(minUp, time.Duration(atServer-sent))
		minDown = min(minDown, time.Duration(back-atServer))
		minRTT = min(minRTT, time.Duration(back-sent))
	}
	t.Logf("%d round trips: shortest leg up %v (delay %v), down %v (delay %v), round trip %v", n, minUp, up, minDown, down, minRTT)
	if minUp < up {
		t.Errorf("a datagram reached the server after %v, before the up delay of %v", minUp, up)
	}
	if minDown < down {
		t.Errorf("a reply reached the client after %v, before the down delay of %v", minDown, down)
	}
	if minRTT < up+down {
		t.Errorf("a round trip took %v, less than %v", minRTT, up+down)
	}
	st := settled(t, r)
	if st.Up.Forwarded != n || st.Down.Forwarded != n || st.Up.Lost+st.Down.Lost+st.Up.Overflow+st.Down.Overflow != 0 {
		t.Errorf("stats %+v, want %d forwarded each way and nothing dropped", st, n)
	}
}

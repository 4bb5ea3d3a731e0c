package delayrelay_test

import (
	"testing"
	"time"

	"github.com/tether-iot/tether/internal/delayrelay"
)

// TestQueueBounds holds datagrams for a minute (longer than any test) so
// that they pile up, and sends 50 into a queue bounded to 10 datagrams, or
// to 1000 bytes of 100-byte datagrams: 10 wait, 40 are dropped and
// counted. Close then drops what waits.
func TestQueueBounds(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  delayrelay.Config
	}{
		{"datagrams", delayrelay.Config{MaxQueued: 10}},
		{"bytes", delayrelay.Config{MaxQueuedBytes: 1000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := listen(t)
			sink := collect(t, srv)
			cfg := tc.cfg
			cfg.Server = addrOf(srv)
			cfg.Up.Delay = time.Minute
			r := start(t, cfg)
			c := dial(t, r)
			for i := range uint64(50) {
				c.Write(seqDatagram(i, 100))
			}
			waitFor(t, "the relay to read 50 datagrams", func() bool { return r.Stats().Up.Received == 50 })
			st := r.Stats().Up
			if st.Overflow != 40 || st.Queued != 10 || st.QueuedBytes != 1000 {
				t.Errorf("stats %+v, want 40 dropped over the bound, 10 (1000 bytes) waiting", st)
			}
			r.Close()
			if n := sink.count(); n != 0 {
				t.Errorf("%d datagrams left before their delay", n)
			}
		})
	}
}

// TestClientBound lets two clients in and refuses the third: its datagram
// is dropped and counted, the first two get their replies.
func TestClientBound(t *testing.T) {
	srv := listen(t)
	sources := echo(t, srv, nil)
	r := start(t, delayrelay.Config{Server: addrOf(srv), MaxClients: 2})
	for i := range uint64(2) {
		roundTrip(t, dial(t, r), i)
	}
	third := dial(t, r)
	third.Write(seqDatagram(3, 8))
	waitFor(t, "the relay to read the third client's datagram", func() bool { return r.Stats().Up.Received == 3 })
	st := settled(t, r)
	if st.Refused != 1 || st.Clients != 2 || st.Mapped != 2 || st.Up.Forwarded != 2 {
		t.Errorf("stats %+v, want the third client refused and counted", st)
	}
	if s := sources(); len(s) != 2 {
		t.Errorf("the server saw %v, want the first two clients only", s)
	}
}

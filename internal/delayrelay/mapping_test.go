package delayrelay_test

import (
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tether-iot/tether/internal/delayrelay"
)

// TestClientsHaveTheirOwnMappings runs two clients at once through one
// relay to an echo server: the server sees two source addresses, and each
// client gets all of its own replies and none of the other's.
func TestClientsHaveTheirOwnMappings(t *testing.T) {
	srv := listen(t)
	sources := echo(t, srv, nil)
	r := start(t, delayrelay.Config{
		Server: addrOf(srv),
		Up:     delayrelay.Link{Delay: 5 * time.Millisecond, Jitter: 2 * time.Millisecond},
		Down:   delayrelay.Link{Delay: 5 * time.Millisecond, Jitter: 2 * time.Millisecond},
	})
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for id := range uint64(2) {
		c := dial(t, r)
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 64)
			for i := range uint64(n) {
				b := seqDatagram(id<<32|i, 16)
				if _, err := c.Write(b); err != nil {
					errs <- err
					return
				}
				c.SetReadDeadline(time.Now().Add(wait))
				m, err := c.Read(buf)
				if err != nil {
					errs <- fmt.Errorf("client %d, datagram %d: %w", id, i, err)
					return
				}
				if got := binary.BigEndian.Uint64(buf[:m]); got != id<<32|i {
					errs <- fmt.Errorf("client %d got reply %#x, want %#x", id, got, id<<32|i)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if s := sources(); len(s) != 2 {
		t.Errorf("the server saw %d source addresses (%v), want one per client", len(s), s)
	}
	if st := settled(t, r); st.Clients != 2 || st.Mapped != 2 || st.Up.Forwarded != 2*n || st.Down.Forwarded != 2*n {
		t.Errorf("stats %+v, want 2 mappings and %d datagrams each way", st, 2*n)
	}
}

// TestIdleMappingsExpire lets a client's mapping idle past Idle: it is
// forgotten, and the client's next datagram gets a new one, which the
// server sees as a new source address.
func TestIdleMappingsExpire(t *testing.T) {
	srv := listen(t)
	sources := echo(t, srv, nil)
	r := start(t, delayrelay.Config{Server: addrOf(srv), Idle: 200 * time.Millisecond})
	c := dial(t, r)
	roundTrip(t, c, 1)
	waitFor(t, "the mapping to expire", func() bool { st := r.Stats(); return st.Expired == 1 && st.Clients == 0 })
	roundTrip(t, c, 2)
	if s := sources(); len(s) != 2 {
		t.Errorf("the server saw %v, want the client from two ports", s)
	}
	if st := settled(t, r); st.Mapped != 2 {
		t.Errorf("stats %+v, want 2 mappings made", st)
	}
}

// TestMappingOutlivesItsQueuedDatagrams sends one datagram that waits 1 s
// in the relay, five times Idle: the mapping stays until the datagram has
// left (and the reply has come back), so it reaches the server rather
// than a closed socket.
func TestMappingOutlivesItsQueuedDatagrams(t *testing.T) {
	const delay = time.Second
	srv := listen(t)
	echo(t, srv, nil)
	r := start(t, delayrelay.Config{Server: addrOf(srv), Idle: 200 * time.Millisecond, Up: delayrelay.Link{Delay: delay}})
	c := dial(t, r)
	began := time.Now()
	if _, err := c.Write(seqDatagram(1, 8)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the datagram to leave", func() bool { st := r.Stats().Up; return st.Forwarded+st.Failed == 1 })
	if d := time.Since(began); d < delay {
		t.Errorf("the datagram left after %v, before the delay %v", d, delay)
	}
	if st := r.Stats(); st.Up.Failed != 0 || st.Expired != 0 {
		t.Fatalf("stats %+v: the mapping expired under a waiting datagram", st)
	}
	c.SetReadDeadline(time.Now().Add(wait))
	if _, err := c.Read(make([]byte, 64)); err != nil {
		t.Fatalf("no reply: %v", err)
	}
	if st := settled(t, r); st.Up.Forwarded != 1 || st.Down.Forwarded != 1 || st.Mapped != 1 {
		t.Errorf("stats %+v, want the datagram and its reply through the one mapping", st)
	}
}

func roundTrip(t *testing.T, c interface {
	Write([]byte) (int, error)
	Read([]byte) (int, error)
	SetReadDeadline(time.Time) error
}, seq uint64) {
	t.Helper()
	if _, err := c.Write(seqDatagram(seq, 8)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got := binary.BigEndian.Uint64(buf[:n]); got != seq {
		t.Fatalf("reply %d, want %d", got, seq)
	}
}

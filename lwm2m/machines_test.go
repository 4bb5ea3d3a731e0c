package lwm2m_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/lwm2m"
	"github.com/tether-iot/tether/lwm2m/content"
	"github.com/tether-iot/tether/lwm2m/lwm2mtest"
)

// moves records the moves of a client's two machines and fails the test
// at the first one its table does not allow. start installs one on every
// client the stories run, so every story checks the tables.
type moves struct {
	t  testing.TB
	mu sync.Mutex
	// reg and fw are the states in the order they were entered,
	// starting with the first.
	reg []lwm2m.RegState
	fw  []lwm2m.FirmwareState
	// others are the states of the further servers' registrations.
	others map[uint16][]lwm2m.RegState
}

func watch(t testing.TB, c *lwm2m.Client) *moves {
	m := &moves{t: t, reg: []lwm2m.RegState{lwm2m.Registering}, others: map[uint16][]lwm2m.RegState{}}
	lwm2m.WatchSessionMoves(c, func(ssid uint16, from, to lwm2m.RegState, allowed bool) {
		m.mu.Lock()
		defer m.mu.Unlock()
		if !allowed || !lwm2m.RegAllowed(from, to) {
			t.Errorf("server %d's registration tried %v -> %v, which its table does not allow", ssid, from, to)
			return
		}
		seen := m.others[ssid]
		if seen == nil {
			seen = []lwm2m.RegState{lwm2m.Registering}
		}
		if last := seen[len(seen)-1]; last != from {
			t.Errorf("server %d's registration moved from %v, but was last seen in %v", ssid, from, last)
		}
		m.others[ssid] = append(seen, to)
	})
	fwStarted := false
	lwm2m.WatchMoves(c, func(from, to lwm2m.RegState, allowed bool) {
		m.mu.Lock()
		defer m.mu.Unlock()
		if !allowed || !lwm2m.RegAllowed(from, to) {
			t.Errorf("registration tried %v -> %v, which its table does not allow", from, to)
			return
		}
		if last := m.reg[len(m.reg)-1]; last != from {
			t.Errorf("registration moved from %v, but was last seen in %v", from, last)
		}
		m.reg = append(m.reg, to)
	}, func(from, to lwm2m.FirmwareState, allowed bool) {
		m.mu.Lock()
		defer m.mu.Unlock()
		if !allowed || !lwm2m.FirmwareAllowed(from, to) {
			t.Errorf("/5 tried an event from %v that its table does not allow (to %v)", from, to)
			return
		}
		if !fwStarted {
			m.fw, fwStarted = append(m.fw, from), true
		}
		m.fw = append(m.fw, to)
	})
	return m
}

// otherStates are the states server ssid's registration entered.
func (m *moves) otherStates(ssid uint16) []lwm2m.RegState {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.others[ssid])
}

func (m *moves) states() ([]lwm2m.RegState, []lwm2m.FirmwareState) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.reg), slices.Clone(m.fw)
}

// TestRegistrationTable: Stopped ends everything and every state can
// reach it; every state is reachable from Registering.
func TestRegistrationTable(t *testing.T) {
	all := []lwm2m.RegState{lwm2m.Registering, lwm2m.Waiting, lwm2m.Registered, lwm2m.Updating, lwm2m.Asleep,
		lwm2m.Offline, lwm2m.Reconnecting, lwm2m.Deregistering, lwm2m.Stopped, lwm2m.Bootstrapping}
	reached := map[lwm2m.RegState]bool{lwm2m.Registering: true}
	for changed := true; changed; {
		changed = false
		for _, from := range all {
			for _, to := range all {
				if reached[from] && !reached[to] && lwm2m.RegAllowed(from, to) {
					reached[to], changed = true, true
				}
			}
		}
	}
	for _, s := range all {
		if !reached[s] {
			t.Errorf("%v cannot be reached from registering", s)
		}
		if s != lwm2m.Stopped && !lwm2m.RegAllowed(s, lwm2m.Stopped) {
			t.Errorf("%v cannot stop", s)
		}
		if lwm2m.RegAllowed(lwm2m.Stopped, s) {
			t.Errorf("stopped moves on to %v", s)
		}
		if s.String() == "" || s.String() == "regstate(?)" {
			t.Errorf("state %d has no name", s)
		}
	}
}

// TestMachinesFollowTheirTables runs a client through every state of both
// machines against the test server (a server that is down at first, a
// firmware pull and install, queue mode's sleep, offline mode, Reconnect,
// an Update the server no longer knows, Stop) and checks that each move
// is one the tables allow, and that the runs visit every state.
func TestMachinesFollowTheirTables(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		image := testrig.Bytes(20_000, 3)
		w := newWorld(t, false, image)
		w.srv.Close() // down at first: the Register fails, the client waits
		cfg := w.config("dev-m", t.TempDir(), nil)
		cfg.QueueMode = true
		cfg.RetryDelay = 10 * time.Second
		c, _, m := startWatched(t, cfg)
		ctx := context.Background()
		time.Sleep(3 * time.Minute) // a Register's exchange times out: Waiting
		w.startServer()
		if _, err := w.srv.WaitRegistered(ctx, "dev-m", 0); err != nil {
			t.Fatal(err)
		}
		o, err := w.srv.Observe(ctx, "dev-m", "/5/0/3")
		if err != nil {
			t.Fatal(err)
		}
		want(t, coap.Changed)(w.srv.Write(ctx, "dev-m", "/5/0/1", content.Text, []byte("coap://10.0.0.1:5690/fw.bin")))
		waitState(t, o, "1", "2")
		want(t, coap.Changed)(w.srv.Execute(ctx, "dev-m", "/5/0/2", nil))
		waitState(t, o, "3", "0")
		time.Sleep(5 * time.Minute) // queue mode: asleep after MAX_TRANSMIT_WAIT of quiet
		before := w.srv.Stats()
		if err := c.EnterOffline(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.ExitOffline(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.Reconnect(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := w.srv.WaitRegistered(ctx, "dev-m", before.Registers); err != nil { // NoSec: a new session
			t.Fatal(err)
		}
		for st := c.Status(); !st.Registered || st.Registers < 2; st = c.Status() {
			time.Sleep(10 * time.Millisecond) // the 2.01 has reached the client too
		}
		w.restartServer(&lwm2mtest.Options{}) // forgets the client: the Update gets 4.04
		if err := c.Update(ctx); err != nil {
			t.Fatal(err)
		}
		for reg, _ := m.states(); !slices.Contains(reg, lwm2m.Updating); reg, _ = m.states() {
			time.Sleep(10 * time.Millisecond) // Update returns before the Update goes out
		}
		if _, err := w.srv.WaitRegistered(ctx, "dev-m", 0); err != nil {
			t.Fatal(err)
		}
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := c.Stop(sctx); err != nil {
			t.Fatal(err)
		}
		if err := w.srv.WaitDeregistered(sctx, "dev-m"); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		reg, fw := m.states()
		for _, s := range []lwm2m.RegState{lwm2m.Registering, lwm2m.Waiting, lwm2m.Registered, lwm2m.Updating, lwm2m.Asleep,
			lwm2m.Offline, lwm2m.Reconnecting, lwm2m.Deregistering, lwm2m.Stopped} {
			if !slices.Contains(reg, s) {
				t.Errorf("the run never reached %v: %v", s, reg)
			}
		}
		if want := []lwm2m.FirmwareState{lwm2m.StateIdle, lwm2m.StateDownloading, lwm2m.StateDownloaded, lwm2m.StateUpdating, lwm2m.StateIdle}; !slices.Equal(fw, want) {
			t.Errorf("/5 went %v, want %v", fw, want)
		}
		if got := c.Status().State; got != lwm2m.Stopped {
			t.Errorf("Status().State %v after Stop, want stopped", got)
		}
	})
}

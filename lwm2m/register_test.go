package lwm2m_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/lwm2m"
	"github.com/tether-iot/tether/lwm2m/content"
	"github.com/tether-iot/tether/lwm2m/lwm2mtest"
)

// TestUpdateFallsDueBeforeTheLifetimeEnds: with a 60 s lifetime the Update
// goes at 60 - min(60/2, MAX_TRANSMIT_WAIT) = 30 s, and every 30 s after.
func TestUpdateFallsDueBeforeTheLifetimeEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		cfg := w.config("dev-u", t.TempDir(), nil)
		cfg.Lifetime = time.Minute
		start(t, cfg)
		ctx := context.Background()
		reg, err := w.srv.WaitRegistered(ctx, "dev-u", 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			r, err := w.srv.WaitUpdated(ctx, "dev-u", i)
			if err != nil {
				t.Fatal(err)
			}
			// The registration's times are the server's: one link delay
			// (10 ms) after the client sent.
			if got, want := r.Updated.Sub(reg.Registered), time.Duration(i+1)*30*time.Second; got < want || got > want+100*time.Millisecond {
				t.Errorf("Update %d came %v after the Register, want %v", i+1, got, want)
			}
		}
	})
}

// TestServerForgetsTheClient: an Update answered 4.04 (the server lost
// the registration) is followed at once by a Register.
func TestServerForgetsTheClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		cfg := w.config("dev-f", t.TempDir(), nil)
		cfg.Lifetime = time.Minute
		start(t, cfg)
		ctx := context.Background()
		if _, err := w.srv.WaitRegistered(ctx, "dev-f", 0); err != nil {
			t.Fatal(err)
		}
		// A new server on the same port knows nobody.
		w.restartServer(nil)
		at := time.Now()
		r, err := w.srv.WaitRegistered(ctx, "dev-f", 0)
		if err != nil {
			t.Fatal(err)
		}
		if wait := r.Registered.Sub(at); wait > 31*time.Second {
			t.Errorf("registered again %v after the server forgot it: not when its Update was refused", wait)
		}
		if s := w.srv.Stats(); s.Updates != 0 || s.Registers != 1 {
			t.Errorf("the new server saw %d Updates and %d Registers, want 0 and 1", s.Updates, s.Registers)
		}
	})
}

// TestFallbackToLwM2M10: a 1.0 server answers 4.12 to lwm2m=1.1; the
// client registers as 1.0 and answers hierarchical reads in TLV, 1.0's
// format.
func TestFallbackToLwM2M10(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		w.restartServer(&lwm2mtest.Options{Only10: true})
		c, _ := start(t, w.config("dev-10", t.TempDir(), nil))
		ctx := context.Background()
		reg, err := w.srv.WaitRegistered(ctx, "dev-10", 0)
		if err != nil {
			t.Fatal(err)
		}
		if reg.Version != "1.0" || c.Status().Version != "1.0" {
			t.Errorf("registered as %q (client says %q), want 1.0", reg.Version, c.Status().Version)
		}
		for _, l := range reg.Links {
			if _, ok := l.Param("ct"); ok {
				t.Errorf("a 1.0 Register announced %s;ct", l.Target)
			}
		}
		m, err := w.srv.Read(ctx, "dev-10", "/3/0")
		if err != nil {
			t.Fatal(err)
		}
		if cf, _ := coap.Uint(m.Options, coap.ContentFormat); cf != uint32(content.TLV) {
			t.Errorf("/3/0 read in format %d, want TLV", cf)
		}
	})
}

// TestLifetimeWrittenByTheServer: a write of /1/0/1 is reported by an
// Update carrying the new lifetime, which then paces the Updates.
func TestLifetimeWrittenByTheServer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		start(t, w.config("dev-l", t.TempDir(), nil))
		ctx := context.Background()
		if _, err := w.srv.WaitRegistered(ctx, "dev-l", 0); err != nil {
			t.Fatal(err)
		}
		want(t, coap.Changed)(w.srv.Write(ctx, "dev-l", "/1/0/1", content.Text, []byte("120")))
		r, err := w.srv.WaitUpdated(ctx, "dev-l", 0)
		if err != nil {
			t.Fatal(err)
		}
		if r.Lifetime != 2*time.Minute {
			t.Errorf("lifetime %v after the Update, want 2m0s", r.Lifetime)
		}
		// Executing the Registration Update Trigger sends one more.
		want(t, coap.Changed)(w.srv.Execute(ctx, "dev-l", "/1/0/8", nil))
		if _, err := w.srv.WaitUpdated(ctx, "dev-l", 1); err != nil {
			t.Fatal(err)
		}
	})
}

// TestQueueMode: a client in queue mode closes its socket after
// MAX_TRANSMIT_WAIT of quiet (nothing on the wire then), wakes for an
// observed value that changed (its notification goes out) and for an
// Update, and sleeps again.
func TestQueueMode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		cfg := w.config("dev-q", t.TempDir(), nil)
		cfg.QueueMode = true
		cfg.Lifetime = 30 * time.Minute
		sensor := &thermometer{celsius: 20}
		cfg.Objects = []lwm2m.Object{sensor}
		c, _ := start(t, cfg)
		ctx := context.Background()
		reg, err := w.srv.WaitRegistered(ctx, "dev-q", 0)
		if err != nil {
			t.Fatal(err)
		}
		if !reg.Queue || reg.Binding != "U" {
			t.Errorf("registration %+v, want U with Q", reg)
		}
		o, err := w.srv.Observe(ctx, "dev-q", "/3303/0/5700")
		if err != nil {
			t.Fatal(err)
		}
		mtw := coap.DefaultParams.MaxTransmitWait()
		time.Sleep(mtw + time.Second)
		if !c.Status().Asleep {
			t.Fatalf("not asleep %v after the last exchange", mtw)
		}
		sent := w.n.Stats().Sent
		time.Sleep(10 * time.Minute)
		if got := w.n.Stats().Sent; got != sent {
			t.Errorf("%d datagrams while asleep with nothing due", got-sent)
		}
		sensor.set(c, 21.5)
		ctx2, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		select {
		case n := <-o.Notifications:
			if string(n.Payload) != "21.5" {
				t.Errorf("notification %q, want 21.5", n.Payload)
			}
		case <-ctx2.Done():
			t.Fatal("no notification from a client asleep in queue mode")
		}
		time.Sleep(mtw + time.Second)
		if !c.Status().Asleep {
			t.Error("not asleep again after the notification")
		}
		// The Update falls due 93 s before the 30 min lifetime ends.
		r, err := w.srv.WaitUpdated(ctx, "dev-q", 0)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Queue {
			t.Error("the Update dropped Q")
		}
	})
}

// TestNotificationPeriods: pmin spaces notifications of a value that keeps
// changing; pmax sends one when nothing changed.
func TestNotificationPeriods(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, false, nil)
		cfg := w.config("dev-p", t.TempDir(), nil)
		s := &thermometer{celsius: 1}
		cfg.Objects = []lwm2m.Object{s}
		c, _ := start(t, cfg)
		ctx := context.Background()
		if _, err := w.srv.WaitRegistered(ctx, "dev-p", 0); err != nil {
			t.Fatal(err)
		}
		want(t, coap.Changed)(w.srv.WriteAttributes(ctx, "dev-p", "/3303/0/5700", "pmin=5", "pmax=20"))
		o, err := w.srv.Observe(ctx, "dev-p", "/3303/0/5700")
		if err != nil {
			t.Fatal(err)
		}
		// A change every second for 30 s: pmin 5 allows one every 5 s.
		for i := range 30 {
			time.Sleep(time.Second)
			s.set(c, float64(i))
		}
		time.Sleep(time.Second)
		if n := len(o.Notifications); n < 5 || n > 7 {
			t.Errorf("%d notifications in 30 s of changes at pmin 5 s, want 6", n)
		}
		for len(o.Notifications) > 0 {
			<-o.Notifications
		}
		// Then nothing changes: pmax 20 s sends one every 20 s.
		time.Sleep(61 * time.Second)
		if n := len(o.Notifications); n != 3 {
			t.Errorf("%d notifications in 61 s without change at pmax 20 s, want 3", n)
		}
		// After Cancel, none: a change sends nothing (no Update is due
		// within the minute either).
		if err := w.srv.Cancel(ctx, o); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		sent := w.n.Stats().Sent
		s.set(c, 99)
		time.Sleep(time.Minute)
		if got := w.n.Stats().Sent; got != sent {
			t.Errorf("%d datagrams after the observation was cancelled", got-sent)
		}
	})
}

package lwm2m_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/lwm2m"
	"github.com/tether-iot/tether/lwm2m/lwm2mtest"
	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/simnet"
)

// TestWireCosts counts the bytes a registration and an offline cycle put
// on the wire (both directions, at the server; DTLS records whole), and
// checks that a DTLS session restored after offline costs less than the
// first registration's handshake and Register, and a NoSec cycle what its
// Register costs. The figures go to the log (go test -v) for the README.
func TestWireCosts(t *testing.T) {
	for _, secure := range []bool{false, true} {
		name := map[bool]string{false: "nosec", true: "dtls"}[secure]
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t, secure, nil)
				c, _ := start(t, w.config("dev-w", t.TempDir(), nil))
				ctx := context.Background()
				total := func() int64 { s := w.srv.Stats(); return s.BytesIn + s.BytesOut }
				if _, err := w.srv.WaitRegistered(ctx, "dev-w", 0); err != nil {
					t.Fatal(err)
				}
				for !c.Status().Registered { // the answer has reached the client too
					time.Sleep(10 * time.Millisecond)
				}
				synctest.Wait()
				first := total()
				t.Logf("%s: the first registration: %d bytes (%d datagrams in, %d out)", name, first, w.srv.Stats().DatagramsIn, w.srv.Stats().DatagramsOut)

				cycle := func(what string) int64 {
					before, regs := total(), w.srv.Stats().Registers
					if err := c.EnterOffline(ctx); err != nil {
						t.Fatal(err)
					}
					time.Sleep(time.Minute)
					if err := c.ExitOffline(ctx); err != nil {
						t.Fatal(err)
					}
					time.Sleep(10 * time.Second)
					synctest.Wait()
					cost := total() - before
					t.Logf("%s: an offline cycle, %s: %d bytes, %d Registers, %d handshakes so far",
						name, what, cost, w.srv.Stats().Registers-regs, w.srv.Stats().Handshakes)
					return cost
				}
				resumed := cycle("reconnected")
				if !secure {
					if resumed < first/2 {
						t.Errorf("a NoSec offline cycle cost %d bytes; its Register alone should cost about %d", resumed, first)
					}
					return
				}
				if resumed*4 > first {
					t.Errorf("a restored DTLS session cost %d bytes, against %d for the handshake and Register: not the saving it should be", resumed, first)
				}
				// The server forgets every session while the client is
				// offline. Back online, the client believes its session
				// restored (nothing tells it otherwise) until its next
				// exchange, here an Update: that meets silence (four
				// retransmissions), then a full handshake and a Register.
				regs := w.srv.Stats().Registers
				if err := c.EnterOffline(ctx); err != nil {
					t.Fatal(err)
				}
				w.restartServer(nil)
				time.Sleep(time.Minute)
				if err := c.ExitOffline(ctx); err != nil {
					t.Fatal(err)
				}
				back := time.Now()
				if err := c.Update(ctx); err != nil {
					t.Fatal(err)
				}
				if _, err := w.srv.WaitRegistered(ctx, "dev-w", 0); err != nil {
					t.Fatal(err)
				}
				synctest.Wait()
				forgotten := total() // at the new server: everything since it started
				took := time.Since(back)
				if w.srv.Stats().Registers != 1 || regs == 0 {
					t.Errorf("%d Registers at the new server", w.srv.Stats().Registers)
				}
				t.Logf("dtls: an offline cycle, server forgot the session: %d bytes at the new server, registered again %v after the Update was asked for", forgotten, took)
				t.Logf("dtls: restored session %d bytes, forgotten session %d bytes, first registration %d bytes", resumed, forgotten, first)
				if forgotten <= resumed {
					t.Errorf("a forgotten session cost %d bytes, no more than a restored one (%d)", forgotten, resumed)
				}
			})
		})
	}
}

// fleet registers n clients, each on its own simulated host, with one
// test server, and returns them and the server; every client is
// registered when it returns. Clients start in waves of fleetWave, each
// once the one before has registered, as tether fleet ramps up: all at
// once, their Registers would overflow the server's receive queue (512
// datagrams, as a kernel's buffer) and wait for retransmissions.
func fleet(tb testing.TB, n int) ([]*lwm2m.Client, *lwm2mtest.Server, func()) {
	clients, srv, stopClients := fleetOf(tb, n)
	return clients, srv, func() { stopClients(); srv.Close() }
}

// fleetOf is fleet, whose stop ends the clients as power loss does (their
// Run's context ends: no De-register) and leaves the server serving.
func fleetOf(tb testing.TB, n int) ([]*lwm2m.Client, *lwm2mtest.Server, func()) {
	tb.Helper()
	net := simnet.New(1)
	srvHost := net.AddHost("server", "10.0.0.1")
	pc, err := srvHost.ListenPacket("udp", ":5683")
	if err != nil {
		tb.Fatal(err)
	}
	srv, err := lwm2mtest.NewServer(pc, &lwm2mtest.Options{NotifyBuffer: 16})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Minute)
	defer wcancel()
	clients := make([]*lwm2m.Client, n)
	for i := range n {
		h := net.AddHost(fmt.Sprintf("dev%d", i), fmt.Sprintf("10.%d.%d.%d", 1+i>>16, i>>8&255, i&255))
		c, err := lwm2m.New(lwm2m.Config{
			Endpoint:  "fleet-" + strconv.Itoa(i),
			ServerURL: "coap://10.0.0.1:5683",
			Lifetime:  time.Hour,
			Device:    lwm2m.Device{Manufacturer: "tether", Model: "fleet"},
			NewSocket: func(network string) (sock.Socket, error) { return h.NewSocket(network, nil) },
		})
		if err != nil {
			tb.Fatal(err)
		}
		clients[i] = c
		if err := c.Start(ctx); err != nil {
			tb.Fatal(err)
		}
		if i%fleetWave == fleetWave-1 || i == n-1 {
			for j := i - i%fleetWave; j <= i; j++ {
				if _, err := srv.WaitRegistered(wctx, "fleet-"+strconv.Itoa(j), 0); err != nil {
					tb.Fatal(err)
				}
			}
		}
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			for _, c := range clients {
				<-c.Done()
			}
		})
	}
	tb.Cleanup(func() { stop(); srv.Close() })
	return clients, srv, stop
}

// fleetWave is how many clients fleet starts at once.
const fleetWave = 256

// TestIdleClientsHoldNoGoroutine: a hundred registered, idle clients on
// sockets that say when data arrives (simnet's) hold no goroutine of
// their own, and each still answers the server's Read, which runs one
// while it lasts.
func TestIdleClientsHoldNoGoroutine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		synctest.Wait()
		before := runtime.NumGoroutine()
		clients, srv, stop := fleet(t, 100)
		defer stop()
		for _, c := range clients { // the answers have reached the clients too
			for !c.Status().Registered {
				time.Sleep(10 * time.Millisecond)
			}
		}
		synctest.Wait()
		// The server's reader, and the simulated network's timers.
		t.Logf("%d goroutines more with 100 idle clients", runtime.NumGoroutine()-before)
		if got := runtime.NumGoroutine() - before; got > 5 {
			t.Errorf("%d goroutines more with 100 idle clients; want none of theirs", got)
		}
		if got := text(t)(srv.Read(context.Background(), "fleet-42", "/3/0/1")); got != "fleet" {
			t.Errorf("/3/0/1 %q", got)
		}
		time.Sleep(2 * time.Hour) // Updates come due, and go
		synctest.Wait()
		if got := runtime.NumGoroutine() - before; got > 5 {
			t.Errorf("%d goroutines more after two hours of Updates", got)
		}
		if n := srv.Stats().Updates; n < 100 {
			t.Errorf("%d Updates in two hours at a lifetime of one, want 100 or more", n)
		}
	})
}

// TestFleet runs a hundred clients in one process against one server: all
// register, and each answers a Read.
func TestFleet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clients, srv, stop := fleet(t, 100)
		defer stop()
		ctx := context.Background()
		for i := range clients {
			ep := "fleet-" + strconv.Itoa(i)
			if got := text(t)(srv.Read(ctx, ep, "/3/0/1")); got != "fleet" {
				t.Fatalf("%s: /3/0/1 %q", ep, got)
			}
		}
	})
}

// BenchmarkFleet measures the heap of registered, idle clients: it
// registers $TETHER_FLEET_CLIENTS clients (default 1000) on a simulated
// network with one test server in the same process, and reports the heap
// in use per client, server and simulated hosts included (heap-B/client),
// and the devices' own share (device-B/client: what the heap gives back
// when they end without a De-register), and in all. Run it once:
//
//	TETHER_FLEET_CLIENTS=10000 go test -run '^$' -bench BenchmarkFleet -benchtime 1x ./lwm2m
func BenchmarkFleet(b *testing.B) {
	n := 1000
	if v, err := strconv.Atoi(os.Getenv("TETHER_FLEET_CLIENTS")); err == nil && v > 0 {
		n = v
	}
	b.ReportAllocs()
	for b.Loop() {
		var before, after, server runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		start := time.Now()
		clients, srv, stopClients := fleetOf(b, n)
		took := time.Since(start)
		for _, c := range clients { // idle: each has its 2.01 too
			for !c.Status().Registered {
				time.Sleep(time.Millisecond)
			}
		}
		// Twice: the first GC moves what sync.Pools hold (the readers'
		// buffers of the last burst) to their victim caches, the second
		// frees it; what is left is what idle clients hold.
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&after)
		goroutines := runtime.NumGoroutine()
		// The devices' own share: they end as power loss ends them (no
		// De-register), so the server keeps what it holds of each, and
		// what the heap gives back is theirs, their sockets included.
		stopClients()
		clear(clients) // nothing holds them now
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&server)
		heap := float64(after.HeapInuse - before.HeapInuse)
		b.ReportMetric(heap/float64(n), "heap-B/client")
		b.ReportMetric(float64(after.HeapInuse-server.HeapInuse)/float64(n), "device-B/client")
		b.ReportMetric(heap/(1<<20), "heap-MiB")
		b.ReportMetric(float64(after.Sys)/(1<<20), "sys-MiB")
		b.ReportMetric(float64(goroutines), "goroutines")
		b.ReportMetric(took.Seconds(), "s-to-register")
		b.ReportMetric(float64(srv.Stats().Registers), "registers")
		srv.Close()
	}
}

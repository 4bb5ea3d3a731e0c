package lwm2m_test

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/internal/testrig/coaprig"
	"github.com/tether-iot/tether/lwm2m"
	"github.com/tether-iot/tether/lwm2m/content"
	"github.com/tether-iot/tether/lwm2m/lwm2mtest"
	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/dtlssock"
	"github.com/tether-iot/tether/sock/simnet"
)

var (
	testIdentity = []byte("device-1")
	testKey      = []byte("a key of sixteen")
)

// world is an LwM2M server and a CoAP file server on host 10.0.0.1 of a
// simulated network, and a device on 10.0.0.2.
type world struct {
	t      *testing.T
	n      *simnet.Network
	host   *simnet.Host // the server's
	dev    *simnet.Host
	opts   lwm2mtest.Options
	srv    *lwm2mtest.Server
	files  string // the file server's folder
	image  []byte
	secure bool
	asked  coaprig.Requests // what the file server was asked for
}

func newWorld(t *testing.T, secure bool, image []byte) *world {
	t.Helper()
	return newWorldWith(t, secure, image, nil)
}

// newWorldWith is newWorld whose secure server has the DTLS configuration
// given (nil: the device's PSK, Connection IDs).
func newWorldWith(t *testing.T, secure bool, image []byte, serverCfg *dtlssock.Config) *world {
	t.Helper()
	w := &world{t: t, n: simnet.New(1), image: image, secure: secure}
	host := w.n.AddHost("server", "10.0.0.1")
	w.dev = w.n.AddHost("device", "10.0.0.2")
	w.dev.SetLink(simnet.LinkConfig{Delay: 10 * time.Millisecond})
	w.host = host
	if secure {
		w.opts.DTLS = serverDTLS()
		if serverCfg != nil {
			w.opts.DTLS = serverCfg
		}
	}
	w.startServer()
	t.Cleanup(func() { w.srv.Close() })

	w.files = testrig.File(t, "fw.bin", image)
	fpc, err := host.ListenPacket("udp", ":5690")
	if err != nil {
		t.Fatal(err)
	}
	coaprig.Serve(t, w.files, nil, w.asked.Conn(fpc), nil)
	return w
}

// serverDTLS is the LwM2M server's DTLS configuration: the device's PSK,
// Connection IDs.
func serverDTLS() *dtlssock.Config {
	return &dtlssock.Config{
		PSK: func(id []byte) ([]byte, error) {
			if !bytes.Equal(id, testIdentity) {
				return nil, fmt.Errorf("unknown identity %q", id)
			}
			return testKey, nil
		},
		CipherSuites:  []dtlssock.CipherSuite{dtlssock.TLS_PSK_WITH_AES_128_CCM_8},
		ConnectionIDs: true,
	}
}

// startServer starts the LwM2M server with w.opts.
func (w *world) startServer() {
	port := ":5683"
	if w.secure {
		port = ":5684"
	}
	pc, err := w.host.ListenPacket("udp", port)
	if err != nil {
		w.t.Fatal(err)
	}
	opts := w.opts
	w.srv, err = lwm2mtest.NewServer(pc, &opts)
	if err != nil {
		w.t.Fatal(err)
	}
}

// restartServer replaces the LwM2M server by a new one (that knows no
// client), with opts if given.
func (w *world) restartServer(opts *lwm2mtest.Options) {
	w.srv.Close()
	if opts != nil {
		dtlsCfg := w.opts.DTLS
		w.opts = *opts
		w.opts.DTLS = dtlsCfg
	}
	w.startServer()
}

// config is a device's configuration in the world.
func (w *world) config(ep, dir string, installed *[]string) lwm2m.Config {
	url := "coap://10.0.0.1:5683"
	if w.secure {
		url = "coaps://10.0.0.1:5684"
	}
	return lwm2m.Config{
		Endpoint:    ep,
		ServerURL:   url,
		PSKIdentity: testIdentity,
		PSK:         testKey,
		Lifetime:    10 * time.Minute,
		Device:      lwm2m.Device{Manufacturer: "tether", Model: "simulated", SerialNumber: ep, FirmwareVersion: "1.0"},
		Firmware: &lwm2m.Firmware{Dir: dir, Install: func(_ context.Context, image string) error {
			b, err := os.ReadFile(image)
			if err != nil {
				return err
			}
			installedMu.Lock()
			if installed != nil {
				*installed = append(*installed, hex.EncodeToString(sha(b)))
			}
			installedMu.Unlock()
			return nil
		}},
		NewSocket: func(network string) (sock.Socket, error) { return w.dev.NewSocket(network, nil) },
		OnEvent:   func(ev lwm2m.Event) { w.t.Logf("EVENT %v %+v", time.Now().Format("15:04:05.000"), ev) },
	}
}

// installedMu guards the lists of installed images config's Install
// appends to: Install runs on the client's goroutine, the test reads them
// on its own (and a socket in between hides the order from the race
// detector).
var installedMu sync.Mutex

// installs returns a copy of a list of installed images.
func installs(list *[]string) []string {
	installedMu.Lock()
	defer installedMu.Unlock()
	return slices.Clone(*list)
}

func sha(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

// start runs a client until the test ends (or stop is called), checking
// that every move of its machines follows their tables.
func start(t *testing.T, cfg lwm2m.Config) (c *lwm2m.Client, stop func() error) {
	t.Helper()
	c, stop, _ = startWatched(t, cfg)
	return c, stop
}

// startWatched is start that also returns the record of the moves.
func startWatched(t *testing.T, cfg lwm2m.Config) (c *lwm2m.Client, stop func() error, m *moves) {
	t.Helper()
	c, err := lwm2m.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m = watch(t, c)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() { stop() })
	return c, stop, m
}

// waitState reads /5/0/3 notifications until the values in want have
// been notified in that order (others may come between). The order is the
// Observe numbers', not the arrival's: datagrams sent at one instant may
// arrive in either order, and RFC 7641 3.4 has observers sort them so.
func waitState(t *testing.T, o *lwm2mtest.Observation, want ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	type note struct {
		seq   uint32
		value string
	}
	var seen []note
	for {
		slices.SortFunc(seen, func(a, b note) int { return cmp.Compare(a.seq, b.seq) })
		k := 0
		for _, n := range seen {
			if k < len(want) && n.value == want[k] {
				k++
			}
		}
		if k == len(want) {
			return
		}
		select {
		case n, ok := <-o.Notifications:
			if !ok {
				t.Fatalf("the observation ended; notified %v, want %v in this order", seen, want)
			}
			seq, _ := coap.Uint(n.Options, coap.Observe)
			seen = append(seen, note{seq, string(n.Payload)})
		case <-ctx.Done():
			t.Fatalf("notified %v; want %v in this order", seen, want)
		}
	}
}

// text takes a 2.05 answer's payload.
func text(t *testing.T) func(*coap.Message, error) string {
	return func(m *coap.Message, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if m.Code != coap.Content {
			t.Fatalf("answer %v %q", coap.CodeString(m.Code), m.Payload)
		}
		return string(m.Payload)
	}
}

// want checks an answer's code.
func want(t *testing.T, code coap.Code) func(*coap.Message, error) {
	return func(m *coap.Message, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if m.Code != code {
			t.Fatalf("answer %v %q, want %v", coap.CodeString(m.Code), m.Payload, coap.CodeString(code))
		}
	}
}

// TestWholeStory is the story of an LwM2M device, on a simulated network,
// over NoSec and over DTLS: register, read /3/0, observe /5/0/3, a firmware
// pull from a CoAP file server (State 1 then 2), Update (Result 1), offline
// for five minutes with nothing on the wire, back online (over DTLS: no
// handshake, no Register, observations survive and the stored notifications
// arrive; over NoSec: a Register), and a deregistration.
func TestWholeStory(t *testing.T) {
	for _, secure := range []bool{false, true} {
		name := map[bool]string{false: "nosec", true: "dtls"}[secure]
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				image := testrig.Bytes(100_000, 1)
				w := newWorld(t, secure, image)
				var installed []string
				c, _ := start(t, w.config("dev-1", t.TempDir(), &installed))
				ctx := context.Background()
				reg, err := w.srv.WaitRegistered(ctx, "dev-1", 0)
				if err != nil {
					t.Fatal(err)
				}
				if reg.Version != "1.1" || reg.Lifetime != 10*time.Minute || reg.Binding != "U" {
					t.Errorf("registration %+v", reg)
				}
				var links []string
				for _, l := range reg.Links {
					links = append(links, l.Target)
				}
				if got := strings.Join(links, ","); got != "/,/1/0,/3/0,/5/0" {
					t.Errorf("object links %s, want /,/1/0,/3/0,/5/0", got)
				}

				dev := text(t)(w.srv.Read(ctx, "dev-1", "/3/0"))
				if !strings.Contains(dev, `"vs":"tether"`) || !strings.Contains(dev, `"bn":"/3/0/"`) {
					t.Errorf("/3/0 read %s", dev)
				}
				o, err := w.srv.Observe(ctx, "dev-1", "/5/0/3")
				if err != nil {
					t.Fatal(err)
				}
				if string(o.First.Payload) != "0" {
					t.Fatalf("first /5/0/3 %q, want 0", o.First.Payload)
				}
				want(t, coap.Changed)(w.srv.Write(ctx, "dev-1", "/5/0/1", content.Text, []byte("coap://10.0.0.1:5690/fw.bin")))
				waitState(t, o, "1", "2")
				want(t, coap.Changed)(w.srv.Execute(ctx, "dev-1", "/5/0/2", nil))
				waitState(t, o, "3", "0")
				if got := text(t)(w.srv.Read(ctx, "dev-1", "/5/0/5")); got != "1" {
					t.Errorf("Update Result %s, want 1", got)
				}
				if got := installs(&installed); len(got) != 1 || got[0] != hex.EncodeToString(sha(image)) {
					t.Errorf("installed %v, want the image's SHA-256 %x", got, sha(image))
				}

				// Offline for five minutes: nothing on the wire. A pmax of
				// 60 s makes notifications fall due meanwhile.
				want(t, coap.Changed)(w.srv.WriteAttributes(ctx, "dev-1", "/5/0/3", "pmax=60"))
				before := w.srv.Stats()
				beforeNotes := o.Count()
				if err := c.EnterOffline(ctx); err != nil {
					t.Fatal(err)
				}
				synctest.Wait()
				sent := w.n.Stats().Sent // the server sends nothing unasked: these are the device's
				time.Sleep(5 * time.Minute)
				if got := w.n.Stats().Sent; got != sent {
					t.Errorf("%d datagrams sent while offline", got-sent)
				}
				if err := c.ExitOffline(ctx); err != nil {
					t.Fatal(err)
				}
				if secure {
					// The session resumes: no handshake, no Register, and
					// the five stored notifications arrive.
					deadline := time.Now().Add(time.Minute)
					for o.Count() < beforeNotes+5 && time.Now().Before(deadline) {
						time.Sleep(time.Second)
					}
					after := w.srv.Stats()
					if after.Handshakes != before.Handshakes || after.Registers != before.Registers {
						t.Errorf("back online: %d handshakes and %d Registers, want none",
							after.Handshakes-before.Handshakes, after.Registers-before.Registers)
					}
					if got := o.Count() - beforeNotes; got < 5 {
						t.Errorf("%d notifications after five minutes offline at pmax 60 s, want 5 or more", got)
					}
				} else {
					if _, err := w.srv.WaitRegistered(ctx, "dev-1", before.Registers); err != nil {
						t.Fatalf("no Register after a NoSec reconnect: %v", err)
					}
				}
				// Still served, then deregistered.
				if got := text(t)(w.srv.Read(ctx, "dev-1", "/3/0/0")); got != "tether" {
					t.Errorf("/3/0/0 after offline: %q", got)
				}
				sctx, cancel := context.WithTimeout(ctx, time.Minute)
				defer cancel()
				if err := c.Stop(sctx); err != nil {
					t.Fatal(err)
				}
				if err := w.srv.WaitDeregistered(sctx, "dev-1"); err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

// TestRestoredSessionIsReachable: back online, a DTLS session restored
// with no handshake on a new local port, and nothing stored to send, the
// server's next request still reaches the client (an Update tells the
// server where it now is; without it, the server's requests went to the
// old port until the client next spoke).
func TestRestoredSessionIsReachable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, true, nil)
		c, _ := start(t, w.config("dev-r", t.TempDir(), nil))
		ctx := context.Background()
		if _, err := w.srv.WaitRegistered(ctx, "dev-r", 0); err != nil {
			t.Fatal(err)
		}
		for !c.Status().Registered { // the answer has reached the client too
			time.Sleep(10 * time.Millisecond)
		}
		before := w.srv.Stats()
		if err := c.EnterOffline(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute)
		if err := c.ExitOffline(ctx); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := text(t)(w.srv.Read(ctx, "dev-r", "/3/0/0")); got != "tether" {
			t.Errorf("/3/0/0 after offline: %q", got)
		}
		after := w.srv.Stats()
		if after.Handshakes != before.Handshakes || after.Registers != before.Registers || after.Updates != before.Updates+1 {
			t.Errorf("back online: %d handshakes, %d Registers, %d Updates; want 0, 0, 1",
				after.Handshakes-before.Handshakes, after.Registers-before.Registers, after.Updates-before.Updates)
		}
	})
}

// TestFirmwareSurvivesOfflineAndRestart interrupts a firmware download by
// offline periods and by a restart of the client (a new process, as far as
// the download can tell: only the folder is kept). The restarted client
// registers again, finds State 1 and resumes where the download stopped;
// it ends in State 2 with the image's exact SHA-256, and the file server
// was asked for few more blocks than the image has.
func TestFirmwareSurvivesOfflineAndRestart(t *testing.T) {
	for _, secure := range []bool{false, true} {
		name := map[bool]string{false: "nosec", true: "dtls"}[secure]
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				image := testrig.Bytes(300*1024, 1)
				w := newWorld(t, secure, image)
				w.dev.SetLink(simnet.LinkConfig{Delay: 50 * time.Millisecond}) // 300 blocks: 30 s
				dir := t.TempDir()
				var installed []string
				ctx := context.Background()
				a, stopA := start(t, w.config("dev-2", dir, &installed))
				if _, err := w.srv.WaitRegistered(ctx, "dev-2", 0); err != nil {
					t.Fatal(err)
				}
				o, err := w.srv.Observe(ctx, "dev-2", "/5/0/3")
				if err != nil {
					t.Fatal(err)
				}
				want(t, coap.Changed)(w.srv.Write(ctx, "dev-2", "/5/0/1", content.Text, []byte("coap://10.0.0.1:5690/fw.bin")))
				waitState(t, o, "1")

				// Two offline periods: the download pauses, with no request.
				for range 2 {
					time.Sleep(5 * time.Second)
					if err := a.EnterOffline(ctx); err != nil {
						t.Fatal(err)
					}
					// What was in flight lands (a block request, its answer);
					// after that, any datagram would be the device's doing.
					time.Sleep(time.Second)
					sent := w.n.Stats().Sent
					time.Sleep(time.Minute)
					if got := w.n.Stats().Sent; got != sent {
						t.Errorf("%d datagrams sent while offline", got-sent)
					}
					if err := a.ExitOffline(ctx); err != nil {
						t.Fatal(err)
					}
				}
				// The device's address changes (another cell, a new DHCP
				// lease); the integrator says so with Reconnect: the
				// registration follows (a Register over NoSec, the same
				// session over DTLS with its Connection ID) and so does the
				// download.
				time.Sleep(3 * time.Second)
				w.dev.SetAddrs("10.0.0.3")
				if err := a.Reconnect(ctx); err != nil {
					t.Fatal(err)
				}
				time.Sleep(3 * time.Second)
				if r, ok := w.srv.Registration("dev-2"); !ok || !strings.HasPrefix(r.Addr.String(), "10.0.0.3:") {
					t.Errorf("after the address change the server has the client at %v (registered %v)", r.Addr, ok)
				}
				time.Sleep(5 * time.Second)
				if err := stopA(); err != nil && !errors.Is(err, context.Canceled) {
					t.Fatal(err)
				}
				synctest.Wait()
				part, err := os.Stat(filepath.Join(dir, "firmware.bin.part"))
				if err != nil {
					t.Fatalf("no partial image after the first run: %v", err)
				}
				if part.Size() == 0 || part.Size() >= int64(len(image)) {
					t.Fatalf("partial image of %d bytes: the test wants it interrupted midway", part.Size())
				}
				registers := w.srv.EndpointStats("dev-2").Registers

				// The restart.
				start(t, w.config("dev-2", dir, &installed))
				if _, err := w.srv.WaitRegistered(ctx, "dev-2", registers); err != nil {
					t.Fatal(err)
				}
				o, err = w.srv.Observe(ctx, "dev-2", "/5/0/3")
				if err != nil {
					t.Fatal(err)
				}
				if string(o.First.Payload) != "1" {
					t.Fatalf("State %q after the restart, want 1 (Downloading)", o.First.Payload)
				}
				waitState(t, o, "2")
				got, err := os.ReadFile(filepath.Join(dir, "firmware.bin"))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(sha(got), sha(image)) {
					t.Fatalf("image SHA-256 %x, want %x", sha(got), sha(image))
				}
				blocks := len(image) / 1024
				if gets := w.asked.GETs(); gets > blocks+10 {
					t.Errorf("%d block requests for %d blocks: the download did not resume where it stopped", gets, blocks)
				}
			})
		})
	}
}

// TestStoryOnLoopback is the story again on real UDP sockets over
// loopback, in real time (a short offline period): the production socket
// layer under the same client.
func TestStoryOnLoopback(t *testing.T) {
	for _, secure := range []bool{false, true} {
		name := map[bool]string{false: "nosec", true: "dtls"}[secure]
		t.Run(name, func(t *testing.T) {
			image := testrig.Bytes(64*1024, 1)
			fileURL := coaprig.ServeFile(t, image, nil)

			pc, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			w := &world{t: t, secure: secure}
			if secure {
				w.opts.DTLS = serverDTLS()
			}
			opts := w.opts
			srv, err := lwm2mtest.NewServer(pc, &opts)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			scheme := map[bool]string{false: "coap", true: "coaps"}[secure]
			var installed []string
			cfg := w.config("dev-lo", t.TempDir(), &installed)
			cfg.NewSocket = nil // the production socket
			cfg.ServerURL = scheme + "://" + pc.LocalAddr().String()

			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c, _ := start(t, cfg)
			if _, err := srv.WaitRegistered(ctx, "dev-lo", 0); err != nil {
				t.Fatal(err)
			}
			if got := text(t)(srv.Read(ctx, "dev-lo", "/3/0/0")); got != "tether" {
				t.Errorf("/3/0/0 %q", got)
			}
			o, err := srv.Observe(ctx, "dev-lo", "/5/0/3")
			if err != nil {
				t.Fatal(err)
			}
			want(t, coap.Changed)(srv.Write(ctx, "dev-lo", "/5/0/1", content.Text, []byte(fileURL)))
			waitState(t, o, "1", "2")
			want(t, coap.Changed)(srv.Execute(ctx, "dev-lo", "/5/0/2", nil))
			waitState(t, o, "3", "0")
			if got := text(t)(srv.Read(ctx, "dev-lo", "/5/0/5")); got != "1" || len(installs(&installed)) != 1 {
				t.Fatalf("Update Result %s, %d installs; want 1 and 1", got, len(installs(&installed)))
			}
			before := srv.Stats()
			if err := c.EnterOffline(ctx); err != nil {
				t.Fatal(err)
			}
			time.Sleep(500 * time.Millisecond)
			mark := srv.Stats()
			time.Sleep(2 * time.Second)
			if got := srv.Stats(); got.DatagramsIn != mark.DatagramsIn {
				t.Errorf("%d datagrams reached the server while offline", got.DatagramsIn-mark.DatagramsIn)
			}
			if err := c.ExitOffline(ctx); err != nil {
				t.Fatal(err)
			}
			if secure {
				// Resumed: the registration holds; an Update shows the
				// client is back.
				if err := c.Update(ctx); err != nil {
					t.Fatal(err)
				}
				if _, err := srv.WaitUpdated(ctx, "dev-lo", before.Updates); err != nil {
					t.Fatal(err)
				}
				if after := srv.Stats(); after.Registers != before.Registers || after.Handshakes != before.Handshakes {
					t.Errorf("back online over DTLS: %d Registers, %d handshakes; want none",
						after.Registers-before.Registers, after.Handshakes-before.Handshakes)
				}
			} else if _, err := srv.WaitRegistered(ctx, "dev-lo", before.Registers); err != nil {
				t.Fatal(err)
			}
			if err := c.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			if err := srv.WaitDeregistered(ctx, "dev-lo"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestFirmwareFailures drives the firmware paths that end in a failure
// through real downloads: a Package URI the file server does not have
// (4.04: State 0, Result 7), an image whose install fails (back to State
// 2, Result 8), and a download cut by a server that stops answering
// (Result 4 once the download gives up).
func TestFirmwareFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		image := testrig.Bytes(10_000, 1)
		w := newWorld(t, false, image)
		cfg := w.config("dev-x", t.TempDir(), nil)
		installs := 0
		cfg.Firmware.Install = func(context.Context, string) error {
			installs++
			return errors.New("the flash said no")
		}
		cfg.Firmware.Download.GiveUpAfter = 2 * time.Minute
		start(t, cfg)
		ctx := context.Background()
		if _, err := w.srv.WaitRegistered(ctx, "dev-x", 0); err != nil {
			t.Fatal(err)
		}
		o, err := w.srv.Observe(ctx, "dev-x", "/5/0/5")
		if err != nil {
			t.Fatal(err)
		}
		result := func() string { return text(t)(w.srv.Read(ctx, "dev-x", "/5/0/5")) }
		state := func() string { return text(t)(w.srv.Read(ctx, "dev-x", "/5/0/3")) }

		want(t, coap.Changed)(w.srv.Write(ctx, "dev-x", "/5/0/1", content.Text, []byte("coap://10.0.0.1:5690/missing.bin")))
		waitState(t, o, "7")
		if s := state(); s != "0" {
			t.Errorf("State %s after a 4.04, want 0", s)
		}

		want(t, coap.Changed)(w.srv.Write(ctx, "dev-x", "/5/0/1", content.Text, []byte("coap://10.0.0.1:5690/fw.bin")))
		waitState(t, o, "0") // a new URI: Result back to 0
		for state() != "2" {
			time.Sleep(time.Second)
		}
		want(t, coap.Changed)(w.srv.Execute(ctx, "dev-x", "/5/0/2", nil))
		waitState(t, o, "8")
		if s := state(); s != "2" || installs != 1 {
			t.Errorf("State %s after a failed install (%d installs), want 2 and 1", s, installs)
		}

		// The image changes on the server during the download: its ETag
		// changes, and blocks of two versions must never be mixed (Result
		// 5, integrity failure). The link is slowed so the change lands
		// midway.
		want(t, coap.Changed)(w.srv.Write(ctx, "dev-x", "/5/0/1", content.Text, nil)) // reset from State 2
		big := testrig.Bytes(200*1024, 1)
		if err := os.WriteFile(filepath.Join(w.files, "big.bin"), big, 0o644); err != nil {
			t.Fatal(err)
		}
		w.dev.SetLink(simnet.LinkConfig{Delay: 50 * time.Millisecond})
		want(t, coap.Changed)(w.srv.Write(ctx, "dev-x", "/5/0/1", content.Text, []byte("coap://10.0.0.1:5690/big.bin")))
		time.Sleep(5 * time.Second)
		big[0] ^= 0xff
		// Replaced whole (a rename), as a server publishes a new image:
		// the file server never reads half of each.
		if err := os.WriteFile(filepath.Join(w.files, "big.new"), big, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(w.files, "big.new"), filepath.Join(w.files, "big.bin")); err != nil {
			t.Fatal(err)
		}
		waitState(t, o, "5")
		if s := state(); s != "0" {
			t.Errorf("State %s after an integrity failure, want 0", s)
		}
		w.dev.SetLink(simnet.LinkConfig{Delay: 10 * time.Millisecond})

		// Reset, then a download from a server that vanishes.
		want(t, coap.Changed)(w.srv.Write(ctx, "dev-x", "/5/0/1", content.Text, nil))
		if s, r := state(), result(); s != "0" || r != "0" {
			t.Errorf("State %s Result %s after the reset, want 0 0", s, r)
		}
		w.n.AddHost("void", "10.0.0.9") // exists, serves nothing: requests go unanswered
		want(t, coap.Changed)(w.srv.Write(ctx, "dev-x", "/5/0/1", content.Text, []byte("coap://10.0.0.9:5690/fw.bin")))
		waitState(t, o, "4")
		if s := state(); s != "0" {
			t.Errorf("State %s after the download gave up, want 0", s)
		}
	})
}

package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/fileserver"
	"github.com/tether-iot/tether/lwm2m"
	"github.com/tether-iot/tether/lwm2m/content"
	"github.com/tether-iot/tether/lwm2m/lwm2mtest"
)

const (
	demoDeviceSize    = 1 << 20
	demoDeviceOffline = time.Second
	demoDeviceLimit   = time.Minute // a demo that takes longer is stuck
	demoEndpoint      = "demo-device"
	demoOldVersion    = "1.0"
	demoNewVersion    = "2.0"
	demoImageHeader   = "tether demo firmware " // then the version and a newline
)

func newDemoDevice(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "device",
		Short: "See an LwM2M firmware update survive an offline gap, on loopback, with no set-up",
		Long: `demo device starts an LwM2M server, a CoAP file server and an LwM2M device
(tether's client, firmware 1.0) on loopback. The device registers; the
server reads /3, writes a Package URI to /5, and the device downloads the
new firmware (1 MiB). Halfway, the device goes offline for a second: the
server sees nothing. Back online, the download resumes from the byte where
it stopped. The server executes Update, the device installs the image
into a temporary folder (Update Result 1) and, told to reboot, comes back
running firmware 2.0, which the server reads. Each step is printed as it
happens.`,
		Example: "  tether demo device",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{errors.New("demo device takes no arguments")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return demoDevice(cmd.Context(), stdout) },
	}
}

// demoDevice tells the LwM2M story on loopback: register, read /3, a
// firmware pull with an offline gap in the middle, Update, a reboot into
// the new firmware. Everything it prints, it prints from this goroutine,
// so the steps come in the order they happened.
func demoDevice(ctx context.Context, stdout io.Writer) error {
	start := time.Now()
	ctx, cancel := context.WithTimeoutCause(ctx, demoDeviceLimit, errors.New("demo device: took longer than a minute"))
	defer cancel()
	dir, err := os.MkdirTemp("", "tether-demo-device-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for _, d := range []string{"served", "device", "installed"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	image := demoImage(demoNewVersion, demoDeviceSize)
	if err := os.WriteFile(filepath.Join(dir, "served", "firmware.bin"), image, 0o644); err != nil {
		return err
	}

	// The LwM2M server.
	lpc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv, err := lwm2mtest.NewServer(lpc, nil)
	if err != nil {
		lpc.Close()
		return err
	}
	defer srv.Close()

	// The file server, on a socket that the demo watches (and holds once,
	// halfway, until the device is offline).
	files, err := fileserver.New(filepath.Join(dir, "served"), &fileserver.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer files.Close()
	fpc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	watch := newWatchedConn(fpc, demoDeviceSize)
	go files.ServeUDP(watch)
	defer watch.open() // never leave the file server held
	packageURI := "coap://" + fpc.LocalAddr().String() + "/firmware.bin"
	fmt.Fprintf(stdout, "LwM2M server at %s; firmware %s (%s) served at %s\n",
		srv.URL(), demoNewVersion, size(demoDeviceSize), packageURI)

	// The device: a function, since it reboots into its new firmware.
	installed := make(chan error, 1)
	installPath := filepath.Join(dir, "installed", "firmware.bin")
	rebooted := make(chan struct{})
	var rebootOnce sync.Once
	dev := &demoDev{cfg: lwm2m.Config{
		Endpoint:  demoEndpoint,
		ServerURL: srv.URL(),
		Lifetime:  5 * time.Minute,
		Device: lwm2m.Device{Manufacturer: "tether", Model: "demo", SerialNumber: "1",
			FirmwareVersion: demoOldVersion,
			Reboot:          func() { rebootOnce.Do(func() { close(rebooted) }) }},
		Firmware: &lwm2m.Firmware{
			Dir: filepath.Join(dir, "device"),
			Install: func(_ context.Context, image string) error {
				err := copyFileSynced(image, installPath)
				select {
				case installed <- err:
				default:
				}
				return err
			},
		},
	}}
	if err := dev.start(ctx); err != nil {
		return err
	}
	defer dev.powerOff()

	reg, err := srv.WaitRegistered(ctx, demoEndpoint, 0)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "device %s registered at %s: %s\n", demoEndpoint, reg.Location, objectLinks(reg.Links))

	// Read /3.
	var dev3 [4]string
	for i, res := range []string{"0", "1", "2", "3"} {
		if dev3[i], err = demoRead(ctx, srv, "/3/0/"+res); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "server reads /3/0: manufacturer %s, model %s, serial %s, firmware version %s\n", dev3[0], dev3[1], dev3[2], dev3[3])

	// Write the Package URI: the download starts.
	m, err := srv.Write(ctx, demoEndpoint, "/5/0/1", content.Text, []byte(packageURI))
	if err != nil {
		return err
	}
	if m.Code != coap.Changed {
		return fmt.Errorf("demo device: writing the Package URI: %s", coap.CodeString(m.Code))
	}
	fmt.Fprintf(stdout, "server writes /5/0/1 Package URI: %s; the device downloads\n", coap.CodeString(m.Code))

	// Progress, until the file server holds the request halfway.
	var heldAt int64
	for heldAt == 0 {
		ev, err := watch.next(ctx)
		if err != nil {
			return err
		}
		switch ev.kind {
		case evProgress:
			fmt.Fprintf(stdout, "  %3d%%  %s\n", ev.offset*100/demoDeviceSize, size(ev.offset))
		case evHeld:
			heldAt = ev.offset
		}
	}

	// Offline: nothing on the wire.
	if err := dev.c.EnterOffline(ctx); err != nil {
		return err
	}
	watch.open() // the request held was the device's last before going offline: dropped
	fmt.Fprintf(stdout, "device offline at byte %d (%d%%): registration and download suspended, sockets shut down\n", heldAt, heldAt*100/demoDeviceSize)
	before, filesBefore := srv.Stats(), watch.reads()
	select {
	case <-time.After(demoDeviceOffline):
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	after, filesAfter := srv.Stats(), watch.reads()
	same := "unchanged: nothing sent"
	if before.DatagramsIn != after.DatagramsIn || before.DatagramsOut != after.DatagramsOut {
		same = fmt.Sprintf("was %d in, %d out", before.DatagramsIn, before.DatagramsOut)
	}
	fmt.Fprintf(stdout, "  %v offline: LwM2M server datagrams %d in, %d out (%s); file server requests %d (was %d)\n",
		demoDeviceOffline, after.DatagramsIn, after.DatagramsOut, same, filesAfter, filesBefore)

	// Online again: NoSec, so a new session and a new Register.
	registers := srv.EndpointStats(demoEndpoint).Registers
	if err := dev.c.ExitOffline(ctx); err != nil {
		return err
	}
	for {
		ev, err := watch.next(ctx)
		if err != nil {
			return err
		}
		if ev.kind == evResumed {
			where := "where it stopped"
			if ev.offset != heldAt {
				where = fmt.Sprintf("it stopped at byte %d", heldAt)
			}
			fmt.Fprintf(stdout, "device online: the download resumes at byte %d (block %d), %s\n", ev.offset, ev.block, where)
			break
		}
	}
	if reg, err = srv.WaitRegistered(ctx, demoEndpoint, registers); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "device registered again at %s (NoSec: a new session)\n", reg.Location)
	for done := false; !done; {
		ev, err := watch.next(ctx)
		if err != nil {
			return err
		}
		if ev.kind == evProgress {
			fmt.Fprintf(stdout, "  %3d%%  %s\n", ev.offset*100/demoDeviceSize, size(ev.offset))
			done = ev.offset == demoDeviceSize
		}
	}
	if err := demoWaitFor(ctx, srv, "/5/0/3", "2"); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "server reads /5/0/3 State: 2 (%s)\n", lwm2m.StateDownloaded)

	// Update: the device installs the image.
	if m, err = srv.Execute(ctx, demoEndpoint, "/5/0/2", nil); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "server executes /5/0/2 Update: %s\n", coap.CodeString(m.Code))
	select {
	case err := <-installed:
		if err != nil {
			return fmt.Errorf("demo device: install: %w", err)
		}
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	got, err := os.ReadFile(installPath)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(image)
	if sha256.Sum256(got) != sum {
		return errors.New("demo device: the installed image differs from the served one")
	}
	fmt.Fprintf(stdout, "device installs firmware %s into %s (a temporary folder; SHA-256 %x..., the served image's)\n",
		imageVersion(installPath), installPath, sum[:8])
	if err := demoWaitFor(ctx, srv, "/5/0/5", "1"); err != nil {
		return err
	}
	state, err := demoRead(ctx, srv, "/5/0/3")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "server reads /5/0/5 Update Result: 1 (success), /5/0/3 State: %s (%s)\n", state, firmwareStateName(state))

	// Reboot into the new firmware.
	registers = srv.EndpointStats(demoEndpoint).Registers
	if m, err = srv.Execute(ctx, demoEndpoint, "/3/0/4", nil); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "server executes /3/0/4 Reboot: %s\n", coap.CodeString(m.Code))
	select {
	case <-rebooted:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	dev.powerOff()
	dev.cfg.Device.FirmwareVersion = imageVersion(installPath)
	dev.cfg.Device.Reboot = nil
	if err := dev.start(ctx); err != nil {
		return err
	}
	if reg, err = srv.WaitRegistered(ctx, demoEndpoint, registers); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "device reboots into the installed image and registers at %s\n", reg.Location)
	version, err := demoRead(ctx, srv, "/3/0/3")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "server reads /3/0/3 Firmware Version: %s\n", version)
	if version != demoNewVersion {
		return fmt.Errorf("demo device: firmware version %s after the update, want %s", version, demoNewVersion)
	}
	if err := dev.c.Stop(ctx); err != nil {
		return err
	}
	if err := srv.WaitDeregistered(ctx, demoEndpoint); err != nil {
		return err
	}
	st := srv.Stats()
	fmt.Fprintf(stdout, `
done in %v: firmware %s to %s, over an offline gap
  registrations           %d, De-registers %d
  blocks served           %d, %d of them twice
  LwM2M datagrams         %d in, %d out
  time offline            %v
`, time.Since(start).Round(time.Millisecond), demoOldVersion, version,
		st.Registers, st.Deregisters, watch.served(), watch.servedTwice(), st.DatagramsIn, st.DatagramsOut, demoDeviceOffline)
	return nil
}

// demoDev is the demo's device: the LwM2M client and the Run it is in.
type demoDev struct {
	cfg  lwm2m.Config
	c    *lwm2m.Client
	stop context.CancelFunc
	done chan struct{}
}

// start powers the device on: a new client, registering.
func (d *demoDev) start(ctx context.Context) error {
	c, err := lwm2m.New(d.cfg)
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	d.c, d.stop, d.done = c, stop, make(chan struct{})
	go func() {
		defer close(d.done)
		c.Run(runCtx)
	}()
	return nil
}

// powerOff ends Run as a power cut does: no De-register.
func (d *demoDev) powerOff() {
	if d.stop != nil {
		d.stop()
		<-d.done
		d.stop = nil
	}
}

// demoRead reads a resource of the demo's device as text.
func demoRead(ctx context.Context, srv *lwm2mtest.Server, path string) (string, error) {
	m, err := srv.Read(ctx, demoEndpoint, path, content.Text)
	if err != nil {
		return "", err
	}
	if m.Code != coap.Content {
		return "", fmt.Errorf("demo device: reading %s: %s", path, coap.CodeString(m.Code))
	}
	return string(m.Payload), nil
}

// demoWaitFor reads path until it reads want.
func demoWaitFor(ctx context.Context, srv *lwm2mtest.Server, path, want string) error {
	for {
		v, err := demoRead(ctx, srv, path)
		if err != nil || v == want {
			return err
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("demo device: waiting for %s to be %s (it is %s): %w", path, want, v, context.Cause(ctx))
		}
	}
}

// firmwareStateName names a /5/0/3 State read as text.
func firmwareStateName(v string) string {
	n, err := strconv.Atoi(v)
	if err != nil {
		return "?"
	}
	return lwm2m.FirmwareState(n).String()
}

// demoImage is a firmware image: a header line naming its version, then
// random bytes up to n.
func demoImage(version string, n int) []byte {
	b := make([]byte, n)
	h := copy(b, demoImageHeader+version+"\n")
	rand.Read(b[h:])
	return b
}

// imageVersion is the version an image's header names: what the device
// runs after booting it.
func imageVersion(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "?"
	}
	defer f.Close()
	line, err := bufio.NewReader(io.LimitReader(f, 64)).ReadString('\n')
	v, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), demoImageHeader)
	if err != nil || !ok {
		return "?"
	}
	return v
}

// copyFileSynced copies src to dst and syncs it: the demo's install.
func copyFileSynced(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// objectLinks lists the object instances of a Register payload.
func objectLinks(links []content.Link) string {
	var b strings.Builder
	for _, l := range links {
		if l.Target == "/" {
			continue // the root link, rt="oma.lwm2m"
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(l.Target)
	}
	return b.String()
}

// What watchedConn tells the demo, in the order it happened.
const (
	evProgress = iota // the file server sent the block that ends at offset, a tenth further
	evHeld            // the request for the block at offset is held
	evResumed         // the first request after the hold, for the block at offset
)

type watchEvent struct {
	kind   int
	offset int64
	block  uint32
}

// watchedConn is the file server's socket as the demo sees it: it counts
// the requests read and the blocks served, tells the demo each tenth of
// the image served, and holds the first request past half of it until
// open is called (the demo takes the device offline meanwhile), then
// drops it: by then the device has given up on it.
type watchedConn struct {
	net.PacketConn
	total   int64
	events  chan watchEvent // buffered past what one download tells
	release chan struct{}
	once    sync.Once

	mu        sync.Mutex
	in, out   coap.Message
	nreads    int
	held      bool
	resumed   bool
	nextTenth int64
	seen      map[uint32]int // blocks served, by number
}

func newWatchedConn(pc net.PacketConn, total int64) *watchedConn {
	return &watchedConn{PacketConn: pc, total: total, events: make(chan watchEvent, 64),
		release: make(chan struct{}), nextTenth: total / 10, seen: make(map[uint32]int)}
}

// ReadFrom implements net.PacketConn.
func (c *watchedConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, from, err := c.PacketConn.ReadFrom(b)
		if err != nil {
			return n, from, err
		}
		c.mu.Lock()
		c.nreads++
		var ev *watchEvent
		hold := false
		if coap.DecodeUDP(b[:n], &c.in) == nil && c.in.Code == coap.GET {
			blk, _, _ := coap.GetBlock(c.in.Options, coap.Block2, false)
			switch {
			case !c.held && blk.Offset() >= c.total/2:
				c.held, hold = true, true
				ev = &watchEvent{kind: evHeld, offset: blk.Offset(), block: blk.Num}
			case c.held && !c.resumed:
				c.resumed = true
				ev = &watchEvent{kind: evResumed, offset: blk.Offset(), block: blk.Num}
			}
		}
		c.mu.Unlock()
		if ev != nil {
			c.tell(*ev)
		}
		if !hold {
			return n, from, nil
		}
		<-c.release // dropped once released
	}
}

// WriteTo implements net.PacketConn.
func (c *watchedConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	c.mu.Lock()
	var ev *watchEvent
	if coap.DecodeUDP(b, &c.out) == nil && c.out.Code == coap.Content {
		if blk, ok, err := coap.GetBlock(c.out.Options, coap.Block2, false); ok && err == nil {
			c.seen[blk.Num]++
			if end := blk.Offset() + int64(len(c.out.Payload)); (end >= c.nextTenth || end == c.total) && c.seen[blk.Num] == 1 {
				for c.nextTenth <= end {
					c.nextTenth += c.total / 10
				}
				ev = &watchEvent{kind: evProgress, offset: end, block: blk.Num}
			}
		}
	}
	c.mu.Unlock()
	if ev != nil {
		c.tell(*ev)
	}
	return c.PacketConn.WriteTo(b, addr)
}

// tell hands an event to the demo; the channel holds more than a
// download makes, so it is dropped only if the demo stopped reading.
func (c *watchedConn) tell(ev watchEvent) {
	select {
	case c.events <- ev:
	default:
	}
}

// next returns the next event.
func (c *watchedConn) next(ctx context.Context) (watchEvent, error) {
	select {
	case ev := <-c.events:
		return ev, nil
	case <-ctx.Done():
		return watchEvent{}, context.Cause(ctx)
	}
}

// open releases the request held, if any, and holds no other.
func (c *watchedConn) open() { c.once.Do(func() { close(c.release) }) }

func (c *watchedConn) reads() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nreads
}

func (c *watchedConn) served() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, k := range c.seen {
		n += k
	}
	return n
}

func (c *watchedConn) servedTwice() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, k := range c.seen {
		if k > 1 {
			n++
		}
	}
	return n
}

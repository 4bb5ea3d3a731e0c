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
	d := &demoStory{out: stdout, dir: dir}
	defer d.close()
	for _, step := range []func(context.Context) error{
		d.setUp,             // the image, the LwM2M server, the file server
		d.powerOn,           // the device, firmware 1.0, registers
		d.readDevice,        // the server reads /3
		d.writePackageURI,   // the download starts
		d.downloadUntilHeld, // progress, until the file server holds it halfway
		d.offlineGap,        // a second with nothing on the wire
		d.backOnline,        // the download resumes where it stopped, and ends
		d.update,            // Update: the device installs the image
		d.reboot,            // into the new firmware
		d.deregister,
	} {
		if err := step(ctx); err != nil {
			return err
		}
	}
	d.summary(time.Since(start))
	return nil
}

// demoStory is what the steps of demo device share: the servers, the
// device, and what one step found that a later one says.
type demoStory struct {
	out io.Writer
	dir string

	image       []byte // the firmware served
	srv         *lwm2mtest.Server
	files       *fileserver.Server
	watch       *watchedConn
	packageURI  string
	dev         *demoDev
	installed   chan error // the device's Install, once
	installPath string
	rebooted    chan struct{} // the device's Reboot, once
	heldAt      int64         // where the download was held, halfway
	version     string        // the firmware version read after the reboot
}

// close undoes setUp and powerOn, in reverse: the device off, the file
// server never left holding a request, the servers closed.
func (d *demoStory) close() {
	if d.dev != nil {
		d.dev.powerOff()
	}
	if d.watch != nil {
		d.watch.open()
	}
	if d.files != nil {
		d.files.Close()
	}
	if d.srv != nil {
		d.srv.Close()
	}
}

// setUp writes the new firmware image and starts the LwM2M server and the
// file server that serves the image, on a socket that the demo watches
// (and holds once, halfway, until the device is offline).
func (d *demoStory) setUp(context.Context) error {
	for _, sub := range []string{"served", "device", "installed"} {
		if err := os.Mkdir(filepath.Join(d.dir, sub), 0o755); err != nil {
			return err
		}
	}
	d.image = demoImage(demoNewVersion, demoDeviceSize)
	if err := os.WriteFile(filepath.Join(d.dir, "served", "firmware.bin"), d.image, 0o644); err != nil {
		return err
	}
	lpc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	if d.srv, err = lwm2mtest.NewServer(lpc, nil); err != nil {
		lpc.Close()
		return err
	}
	if d.files, err = fileserver.New(filepath.Join(d.dir, "served"), &fileserver.Options{Logger: slog.New(slog.DiscardHandler)}); err != nil {
		return err
	}
	fpc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	d.watch = newWatchedConn(fpc, demoDeviceSize)
	go d.files.ServeUDP(d.watch)
	d.packageURI = "coap://" + fpc.LocalAddr().String() + "/firmware.bin"
	fmt.Fprintf(d.out, "LwM2M server at %s; firmware %s (%s) served at %s\n",
		d.srv.URL(), demoNewVersion, size(demoDeviceSize), d.packageURI)
	return nil
}

// powerOn starts the device, firmware 1.0, and waits for its Register.
// The device is a configuration and a function, since it reboots into
// its new firmware.
func (d *demoStory) powerOn(ctx context.Context) error {
	d.installed = make(chan error, 1)
	d.installPath = filepath.Join(d.dir, "installed", "firmware.bin")
	d.rebooted = make(chan struct{})
	var rebootOnce sync.Once
	d.dev = &demoDev{cfg: lwm2m.Config{
		Endpoint:  demoEndpoint,
		ServerURL: d.srv.URL(),
		Lifetime:  5 * time.Minute,
		Device: lwm2m.Device{Manufacturer: "tether", Model: "demo", SerialNumber: "1",
			FirmwareVersion: demoOldVersion,
			Reboot:          func() { rebootOnce.Do(func() { close(d.rebooted) }) }},
		Firmware: &lwm2m.Firmware{
			Dir: filepath.Join(d.dir, "device"),
			Install: func(_ context.Context, image string) error {
				err := copyFileSynced(image, d.installPath)
				select {
				case d.installed <- err:
				default:
				}
				return err
			},
		},
	}}
	if err := d.dev.start(ctx); err != nil {
		return err
	}
	reg, err := d.srv.WaitRegistered(ctx, demoEndpoint, 0)
	if err != nil {
		return err
	}
	fmt.Fprintf(d.out, "device %s registered at %s: %s\n", demoEndpoint, reg.Location, objectLinks(reg.Links))
	return nil
}

// readDevice is the server reading /3/0's first four resources.
func (d *demoStory) readDevice(ctx context.Context) error {
	var dev3 [4]string
	for i, res := range []string{"0", "1", "2", "3"} {
		var err error
		if dev3[i], err = demoRead(ctx, d.srv, "/3/0/"+res); err != nil {
			return err
		}
	}
	fmt.Fprintf(d.out, "server reads /3/0: manufacturer %s, model %s, serial %s, firmware version %s\n", dev3[0], dev3[1], dev3[2], dev3[3])
	return nil
}

// writePackageURI is the server writing the Package URI: the download
// starts.
func (d *demoStory) writePackageURI(ctx context.Context) error {
	m, err := d.srv.Write(ctx, demoEndpoint, "/5/0/1", content.Text, []byte(d.packageURI))
	if err != nil {
		return err
	}
	if m.Code != coap.Changed {
		return fmt.Errorf("demo device: writing the Package URI: %s", coap.CodeString(m.Code))
	}
	fmt.Fprintf(d.out, "server writes /5/0/1 Package URI: %s; the device downloads\n", coap.CodeString(m.Code))
	return nil
}

// downloadUntilHeld prints the download's progress until the file server
// holds its request halfway.
func (d *demoStory) downloadUntilHeld(ctx context.Context) error {
	for d.heldAt == 0 {
		ev, err := d.watch.next(ctx)
		if err != nil {
			return err
		}
		switch ev.kind {
		case evProgress:
			d.progress(ev.offset)
		case evHeld:
			d.heldAt = ev.offset
		}
	}
	return nil
}

// progress prints a tenth of the image served.
func (d *demoStory) progress(offset int64) {
	fmt.Fprintf(d.out, "  %3d%%  %s\n", offset*100/demoDeviceSize, size(offset))
}

// offlineGap takes the device offline for demoDeviceOffline and shows
// that nothing went on the wire meanwhile.
func (d *demoStory) offlineGap(ctx context.Context) error {
	if err := d.dev.c.EnterOffline(ctx); err != nil {
		return err
	}
	d.watch.open() // the request held was the device's last before going offline: dropped
	fmt.Fprintf(d.out, "device offline at byte %d (%d%%): registration and download suspended, sockets shut down\n", d.heldAt, d.heldAt*100/demoDeviceSize)
	before, filesBefore := d.srv.Stats(), d.watch.reads()
	select {
	case <-time.After(demoDeviceOffline):
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	after, filesAfter := d.srv.Stats(), d.watch.reads()
	same := "unchanged: nothing sent"
	if before.DatagramsIn != after.DatagramsIn || before.DatagramsOut != after.DatagramsOut {
		same = fmt.Sprintf("was %d in, %d out", before.DatagramsIn, before.DatagramsOut)
	}
	fmt.Fprintf(d.out, "  %v offline: LwM2M server datagrams %d in, %d out (%s); file server requests %d (was %d)\n",
		demoDeviceOffline, after.DatagramsIn, after.DatagramsOut, same, filesAfter, filesBefore)
	return nil
}

// backOnline brings the device online again (NoSec, so a new session and
// a new Register): the download resumes, is followed to its end, and the
// server reads State 2, Downloaded.
func (d *demoStory) backOnline(ctx context.Context) error {
	registers := d.srv.EndpointStats(demoEndpoint).Registers
	if err := d.dev.c.ExitOffline(ctx); err != nil {
		return err
	}
	if err := d.resumed(ctx); err != nil {
		return err
	}
	reg, err := d.srv.WaitRegistered(ctx, demoEndpoint, registers)
	if err != nil {
		return err
	}
	fmt.Fprintf(d.out, "device registered again at %s (NoSec: a new session)\n", reg.Location)
	for done := false; !done; {
		ev, err := d.watch.next(ctx)
		if err != nil {
			return err
		}
		if ev.kind == evProgress {
			d.progress(ev.offset)
			done = ev.offset == demoDeviceSize
		}
	}
	if err := demoWaitFor(ctx, d.srv, "/5/0/3", "2"); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "server reads /5/0/3 State: 2 (%s)\n", lwm2m.StateDownloaded)
	return nil
}

// resumed waits for the download's first request after the gap and says
// where it resumes.
func (d *demoStory) resumed(ctx context.Context) error {
	for {
		ev, err := d.watch.next(ctx)
		if err != nil {
			return err
		}
		if ev.kind != evResumed {
			continue
		}
		where := "where it stopped"
		if ev.offset != d.heldAt {
			where = fmt.Sprintf("it stopped at byte %d", d.heldAt)
		}
		fmt.Fprintf(d.out, "device online: the download resumes at byte %d (block %d), %s\n", ev.offset, ev.block, where)
		return nil
	}
}

// update is the server executing Update: the device installs the image,
// which must be the one served, and reports Update Result 1.
func (d *demoStory) update(ctx context.Context) error {
	m, err := d.srv.Execute(ctx, demoEndpoint, "/5/0/2", nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(d.out, "server executes /5/0/2 Update: %s\n", coap.CodeString(m.Code))
	select {
	case err := <-d.installed:
		if err != nil {
			return fmt.Errorf("demo device: install: %w", err)
		}
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	got, err := os.ReadFile(d.installPath)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(d.image)
	if sha256.Sum256(got) != sum {
		return errors.New("demo device: the installed image differs from the served one")
	}
	fmt.Fprintf(d.out, "device installs firmware %s into %s (a temporary folder; SHA-256 %x..., the served image's)\n",
		imageVersion(d.installPath), d.installPath, sum[:8])
	if err := demoWaitFor(ctx, d.srv, "/5/0/5", "1"); err != nil {
		return err
	}
	state, err := demoRead(ctx, d.srv, "/5/0/3")
	if err != nil {
		return err
	}
	fmt.Fprintf(d.out, "server reads /5/0/5 Update Result: 1 (success), /5/0/3 State: %s (%s)\n", state, firmwareStateName(state))
	return nil
}

// reboot is the server executing Reboot: the device powers off and on
// again running the installed image, registers, and the server reads its
// new firmware version.
func (d *demoStory) reboot(ctx context.Context) error {
	registers := d.srv.EndpointStats(demoEndpoint).Registers
	m, err := d.srv.Execute(ctx, demoEndpoint, "/3/0/4", nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(d.out, "server executes /3/0/4 Reboot: %s\n", coap.CodeString(m.Code))
	select {
	case <-d.rebooted:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	d.dev.powerOff()
	d.dev.cfg.Device.FirmwareVersion = imageVersion(d.installPath)
	d.dev.cfg.Device.Reboot = nil
	if err := d.dev.start(ctx); err != nil {
		return err
	}
	reg, err := d.srv.WaitRegistered(ctx, demoEndpoint, registers)
	if err != nil {
		return err
	}
	fmt.Fprintf(d.out, "device reboots into the installed image and registers at %s\n", reg.Location)
	if d.version, err = demoRead(ctx, d.srv, "/3/0/3"); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "server reads /3/0/3 Firmware Version: %s\n", d.version)
	if d.version != demoNewVersion {
		return fmt.Errorf("demo device: firmware version %s after the update, want %s", d.version, demoNewVersion)
	}
	return nil
}

// deregister stops the device, which deregisters.
func (d *demoStory) deregister(ctx context.Context) error {
	if err := d.dev.c.Stop(ctx); err != nil {
		return err
	}
	return d.srv.WaitDeregistered(ctx, demoEndpoint)
}

// summary says what the story took.
func (d *demoStory) summary(took time.Duration) {
	st := d.srv.Stats()
	fmt.Fprintf(d.out, `
done in %v: firmware %s to %s, over an offline gap
  registrations           %d, De-registers %d
  blocks served           %d, %d of them twice
  LwM2M datagrams         %d in, %d out
  time offline            %v
`, took.Round(time.Millisecond), demoOldVersion, d.version,
		st.Registers, st.Deregisters, d.watch.served(), d.watch.servedTwice(), st.DatagramsIn, st.DatagramsOut, demoDeviceOffline)
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

package lwm2m_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/internal/testrig/coaprig"
	"github.com/tether-iot/tether/lwm2m"
)

// wakaamaEnv names Eclipse Wakaama's example server binary, lwm2mserver
// (github.com/eclipse-wakaama/wakaama, examples/server, plain UDP). It is
// built by hand when wanted, never by this repository; see the README.
const wakaamaEnv = "TETHER_WAKAAMA_SERVER"

// console drives lwm2mserver through its standard input and output, one
// command at a time (it reads one line per wake-up).
type console struct {
	t     *testing.T
	stdin io.Writer
	mu    sync.Mutex
	out   bytes.Buffer
	pos   int // where the next expect starts
	grew  chan struct{}
}

func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.out.Write(p)
	c.mu.Unlock()
	select {
	case c.grew <- struct{}{}:
	default:
	}
	return len(p), nil
}

// expect waits for pattern in what the server printed since the last
// match, and returns the submatches.
func (c *console) expect(pattern string) []string {
	c.t.Helper()
	re := regexp.MustCompile(pattern)
	deadline := time.After(30 * time.Second)
	for {
		c.mu.Lock()
		b := c.out.Bytes()[c.pos:]
		loc := re.FindSubmatchIndex(b)
		var m []string
		if loc != nil {
			for i := 0; i < len(loc); i += 2 {
				if loc[i] >= 0 {
					m = append(m, string(b[loc[i]:loc[i+1]]))
				} else {
					m = append(m, "")
				}
			}
			c.t.Logf("lwm2mserver: %q", b[loc[0]:loc[1]])
			c.pos += loc[1]
		}
		c.mu.Unlock()
		if m != nil {
			return m
		}
		select {
		case <-c.grew:
		case <-deadline:
			c.mu.Lock()
			defer c.mu.Unlock()
			c.t.Fatalf("lwm2mserver never printed %q; it printed:\n%s", pattern, c.out.Bytes()[c.pos:])
		}
	}
}

// expectAll waits until every pattern has matched what the server printed
// since the last match, in any order (two messages that are independent on
// the wire, as a Write's 2.04 and the notification the write causes, are
// printed in the order they arrive), and moves past the last of them. It
// returns each pattern's submatches.
func (c *console) expectAll(patterns ...string) [][]string {
	c.t.Helper()
	res := make([]*regexp.Regexp, len(patterns))
	for i, p := range patterns {
		res[i] = regexp.MustCompile(p)
	}
	deadline := time.After(30 * time.Second)
	for {
		c.mu.Lock()
		b := c.out.Bytes()[c.pos:]
		out := make([][]string, len(res))
		end, all := 0, true
		for i, re := range res {
			loc := re.FindSubmatchIndex(b)
			if loc == nil {
				all = false
				break
			}
			for j := 0; j < len(loc); j += 2 {
				if loc[j] >= 0 {
					out[i] = append(out[i], string(b[loc[j]:loc[j+1]]))
				} else {
					out[i] = append(out[i], "")
				}
			}
			end = max(end, loc[1])
		}
		if all {
			c.t.Logf("lwm2mserver: %q", b[:end])
			c.pos += end
		}
		c.mu.Unlock()
		if all {
			return out
		}
		select {
		case <-c.grew:
		case <-deadline:
			c.mu.Lock()
			defer c.mu.Unlock()
			c.t.Fatalf("lwm2mserver never printed all of %q; it printed:\n%s", patterns, c.out.Bytes()[c.pos:])
		}
	}
}

// do sends one command and waits for its immediate answer.
func (c *console) do(cmd string) {
	c.t.Helper()
	if _, err := io.WriteString(c.stdin, cmd+"\n"); err != nil {
		c.t.Fatal(err)
	}
	c.expect(`OK\r?\n> `)
}

// TestWakaamaServer registers with Eclipse Wakaama's lwm2mserver, a server
// we did not write, and is driven through its console: read /3/0, observe
// /5/0/3, a firmware pull from tether's file server, exec /5/0/2, a
// Registration Update and the De-register. The server binds its port on
// every address (it has no option for loopback only); the test talks to
// it on 127.0.0.1 alone.
func TestWakaamaServer(t *testing.T) {
	bin := os.Getenv(wakaamaEnv)
	if bin == "" {
		if os.Getenv("TETHER_REQUIRE_WAKAAMA") == "1" {
			t.Fatalf("$%s does not name Wakaama's lwm2mserver", wakaamaEnv)
		}
		t.Skipf("$%s is not set: build Wakaama's examples/server and point it at lwm2mserver to run this interop test", wakaamaEnv)
	}
	image := testrig.Bytes(40_000, 1)
	fileURL := coaprig.ServeFile(t, image, nil)

	// A free port for the server, which never says which it took.
	probe, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(probe.LocalAddr().(*net.UDPAddr).Port)
	probe.Close()

	srv := exec.Command(bin, "-4", "-l", port)
	stdin, err := srv.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	con := &console{t: t, stdin: stdin, grew: make(chan struct{}, 1)}
	srv.Stdout = con
	srv.Stderr = io.Discard // a hex dump of every datagram
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		io.WriteString(stdin, "q\n") // closing its input would make it spin
		done := make(chan error, 1)
		go func() { done <- srv.Wait() }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			srv.Process.Kill()
			<-done
		}
	}()
	con.expect(`^> `)

	installed := make(chan []byte, 1)
	c, err := lwm2m.New(lwm2m.Config{
		Endpoint:  "tether-wk",
		ServerURL: "coap://127.0.0.1:" + port,
		Lifetime:  5 * time.Minute,
		Device:    lwm2m.Device{Manufacturer: "tether", Model: "interop", SerialNumber: "wk-1", FirmwareVersion: "1.0"},
		Objects:   []lwm2m.Object{&sensors{value: map[uint16]float64{0: 20}}},
		Firmware: &lwm2m.Firmware{Dir: t.TempDir(), Install: func(_ context.Context, image string) error {
			b, err := os.ReadFile(image)
			installed <- b
			return err
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runDone := make(chan error, 1)
	go func() { runDone <- c.Run(ctx) }()

	id := con.expect(`New client #(\d+) registered\.\r\nClient #\d+:\r\n\tname: "tether-wk"\r\n\tversion: "1\.1"\r\n\tbinding: "UDP"\r\n\tlifetime: 300 sec\r\n\tobjects: /1/0, /3/0, /5/0, /3303/0, \r\n`)[1]

	con.do("read " + id + " /3/0")
	con.expect(`Client #` + id + ` /3/0 : 2\.05 \(COAP_205_CONTENT\)[^\n]*\n[^\n]*\n[^\n]*application/senml\+json:\r\n\s*(\[\{"bn":"/3/0/","n":"0","vs":"tether"\},\{"n":"1","vs":"interop"\}[^\n]*\])`)

	con.do("observe " + id + " /5/0/3")
	con.expect(`Notify from client #` + id + ` /5/0/3 number 0\r\n[^\n]*\n[^\n]*\n\s*\[\{"bn":"/5/0/3","v":0\}\]`)

	con.do("write " + id + " /5/0/1 " + fileURL)
	// The write's 2.04 (from the connection's reader) and the State
	// notifications it causes (from the client's loop) are independent
	// on the wire: any order.
	con.expectAll(`Client #`+id+` /5/0/1 : 2\.04 \(COAP_204_CHANGED\)`,
		`Notify from client #`+id+` /5/0/3 number \d+\r\n[^\n]*\n[^\n]*\n[^\n]*"v":1\}`,
		`Notify from client #`+id+` /5/0/3 number \d+\r\n[^\n]*\n[^\n]*\n[^\n]*"v":2\}`)

	con.do("exec " + id + " /5/0/2")
	con.expect(`Client #` + id + ` /5/0/2 : 2\.04 \(COAP_204_CHANGED\)`)
	select {
	case b := <-installed:
		if !bytes.Equal(b, image) {
			t.Fatalf("installed %d bytes that are not the image", len(b))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no install after exec")
	}
	con.do("read " + id + " /5/0/5")
	con.expect(`Client #` + id + ` /5/0/5 : 2\.05[^\n]*\n[^\n]*\n[^\n]*\n\s*\[\{"bn":"/5/0/5","v":1\}\]`)

	// Create and Delete on an object of the product's.
	con.do("create " + id + ` /3303 [{"bn":"/3303/7/","n":"5700","v":21.5}]`)
	con.expect(`Client #` + id + ` /3303/7 : 2\.01 \(COAP_201_CREATED\)`)
	con.do("read " + id + " /3303/7/5700")
	con.expect(`Client #` + id + ` /3303/7/5700 : 2\.05[^\n]*\n[^\n]*\n[^\n]*\n[^\n]*21\.5`)
	con.do("del " + id + " /3303/7")
	con.expect(`Client #` + id + ` /3303/7 : 2\.02 \(COAP_202_DELETED\)`)

	// Change conditions on an integer, and clearing every attribute.
	con.do("attr " + id + " /5/0/5 0 3 1")
	con.expect(`Client #` + id + ` /5/0/5 : 2\.04 \(COAP_204_CHANGED\)`)
	con.do("clear " + id + " /5/0/5")
	con.expect(`Client #` + id + ` /5/0/5 : 2\.04 \(COAP_204_CHANGED\)`)

	uctx, ucancel := context.WithTimeout(ctx, 30*time.Second)
	defer ucancel()
	if err := c.Update(uctx); err != nil {
		t.Fatal(err)
	}
	con.expect(`Client #` + id + ` updated\.`)

	if err := c.Stop(uctx); err != nil {
		t.Fatal(err)
	}
	con.expect(`Client #` + id + ` unregistered\.`)
	if err := <-runDone; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// wakaamaBootstrapEnv names Wakaama's example bootstrap server binary,
// bootstrap_server (examples/bootstrap_server), built by hand like
// lwm2mserver.
const wakaamaBootstrapEnv = "TETHER_WAKAAMA_BOOTSTRAP"

// freeUDPPorts are n distinct UDP ports free on every IPv4 address a
// moment ago, for servers that bind the wildcard address and never say
// which port they took. The probes are held until all are chosen, so the
// ports differ.
func freeUDPPorts(t *testing.T, n int) []string {
	t.Helper()
	var ports []string
	for range n {
		probe, err := net.ListenPacket("udp4", "0.0.0.0:0")
		if err != nil {
			t.Fatal(err)
		}
		defer probe.Close()
		ports = append(ports, strconv.Itoa(probe.LocalAddr().(*net.UDPAddr).Port))
	}
	return ports
}

// startConsole starts a Wakaama example with its console on a console.
func startConsole(t *testing.T, bin string, args ...string) *console {
	t.Helper()
	srv := exec.Command(bin, args...)
	stdin, err := srv.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	con := &console{t: t, stdin: stdin, grew: make(chan struct{}, 1)}
	srv.Stdout = con
	srv.Stderr = io.Discard
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		io.WriteString(stdin, "q\n") // closing its input would make it spin
		done := make(chan error, 1)
		go func() { done <- srv.Wait() }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			srv.Process.Kill()
			<-done
		}
	})
	return con
}

// TestWakaamaBootstrap: Wakaama's bootstrap_server provisions the client
// (Delete /0 and /1, Write /0/1 and /1/1, Finish), and the client then
// registers with Wakaama's lwm2mserver at the address it was given, and
// is read there. Runs when $TETHER_WAKAAMA_BOOTSTRAP and
// $TETHER_WAKAAMA_SERVER name the two binaries.
func TestWakaamaBootstrap(t *testing.T) {
	bsBin, srvBin := os.Getenv(wakaamaBootstrapEnv), os.Getenv(wakaamaEnv)
	if bsBin == "" || srvBin == "" {
		if os.Getenv("TETHER_REQUIRE_WAKAAMA") == "1" {
			t.Fatalf("$%s and $%s must name Wakaama's bootstrap_server and lwm2mserver", wakaamaBootstrapEnv, wakaamaEnv)
		}
		t.Skipf("$%s or $%s is not set: build Wakaama's examples/bootstrap_server and examples/server to run this interop test", wakaamaBootstrapEnv, wakaamaEnv)
	}
	ports := freeUDPPorts(t, 2)
	srvPort, bsPort := ports[0], ports[1]
	// The example's parser drops a file's last section: a spare one ends it.
	ini := filepath.Join(t.TempDir(), "bootstrap.ini")
	if err := os.WriteFile(ini, []byte("[Server]\nid=1\nuri=coap://127.0.0.1:"+srvPort+"\nbootstrap=no\nlifetime=120\nsecurity=NoSec\n\n"+
		"[Endpoint]\nDelete=/0\nDelete=/1\nServer=1\n\n[Endpoint]\nName=__spare__\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startConsole(t, srvBin, "-4", "-l", srvPort)
	srv.expect(`> `)
	bs := startConsole(t, bsBin, "-4", "-l", bsPort, "-f", ini)
	bs.expect(`> `)

	c, err := lwm2m.New(lwm2m.Config{
		Endpoint:  "tether-bs",
		Device:    lwm2m.Device{Manufacturer: "tether", Model: "interop", SerialNumber: "bs-1", FirmwareVersion: "1.0"},
		Bootstrap: &lwm2m.Bootstrap{URL: "coap://127.0.0.1:" + bsPort, StateDir: t.TempDir()},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runDone := make(chan error, 1)
	go func() { runDone <- c.Run(ctx) }()

	id := srv.expect(`New client #(\d+) registered\.\r\nClient #\d+:\r\n\tname: "tether-bs"\r\n\tversion: "1\.1"\r\n\tbinding: "UDP"\r\n\tlifetime: 120 sec\r\n`)[1]
	srv.do("read " + id + " /3/0/0")
	srv.expect(`Client #` + id + ` /3/0/0 : 2\.05[^\n]*\n[^\n]*\n[^\n]*\n[^\n]*"vs":"tether"`)
	sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
	defer scancel()
	if err := c.Stop(sctx); err != nil {
		t.Fatal(err)
	}
	srv.expect(`Client #` + id + ` unregistered\.`)
	if err := <-runDone; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

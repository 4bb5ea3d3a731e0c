package fileserver_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/client"
	"github.com/tether-iot/tether/internal/peertest"
	"github.com/tether-iot/tether/internal/testrig/coaprig"
)

// listingDir makes a directory with what the listing must show and what it
// must not: a dotfile (served, so listed), a link inside the root (listed),
// a link out of it, a link to a directory, a FIFO, a socket, an empty
// directory, a name that needs percent-encoding, a file that the listing's
// own path hides. It returns the directory and the exact listing.
func listingDir(t *testing.T) (string, string) {
	t.Helper()
	outside := t.TempDir()
	writeFile(t, outside, "secret", []byte("secret"))
	dir := t.TempDir()
	writeFile(t, dir, "a.txt", []byte("hello"))
	writeFile(t, dir, "fw.bin", bytes.Repeat([]byte("x"), 3000))
	writeFile(t, dir, ".hidden", nil)
	writeFile(t, dir, "we ird,;<>*.bin", []byte("w"))
	for _, d := range []string{"sub", "empty", ".well-known"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, dir, "sub/c.json", []byte("{}\n"))
	writeFile(t, dir, ".well-known/core", []byte("a file the listing hides"))
	for link, target := range map[string]string{
		"inside":  "a.txt",
		"escape":  filepath.Join(outside, "secret"),
		"outdir":  outside,
		"dirlink": "sub",
		"loop":    ".",
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	sockPath := filepath.Join(dir, "sock")
	if len(sockPath) < 100 { // sun_path's limit
		ln, err := net.Listen("unix", sockPath)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
	}
	return dir, "</.hidden>;ct=42;sz=0," +
		"</a.txt>;ct=0;sz=5," +
		"</fw.bin>;ct=42;sz=3000," +
		"</inside>;ct=42;sz=5," +
		"</sub/c.json>;ct=50;sz=3," +
		"</we%20ird%2C%3B%3C%3E%2A.bin>;ct=42;sz=1"
}

// getListing fetches /.well-known/core block-wise and returns the body and
// the first block's chunk.
func getListing(t *testing.T, c *client.Conn, blockSize int, query ...string) (string, client.Chunk) {
	t.Helper()
	var body []byte
	var first client.Chunk
	err := c.GetBlocks(context.Background(), client.BlockRequest{Path: "/.well-known/core", BlockSize: blockSize, Query: query},
		func(ch client.Chunk) error {
			if body == nil {
				first = ch
				first.Payload, first.ETag = nil, bytes.Clone(ch.ETag)
			}
			body = append(body, ch.Payload...)
			return nil
		})
	if err != nil {
		t.Fatalf("GET /.well-known/core (blocks of %d, query %q): %v", blockSize, query, err)
	}
	return string(body), first
}

// get1 sends one GET with these options and returns the response.
func get1(t *testing.T, c *client.Conn, opts ...coap.Option) *coap.Message {
	t.Helper()
	m := &coap.Message{Code: coap.GET}
	for _, o := range opts {
		m.Options = m.Options.Add(o)
	}
	return do(t, c, m)
}

func do(t *testing.T, c *client.Conn, m *coap.Message) *coap.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := c.Do(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func pathOpts(p string) []coap.Option {
	var opts []coap.Option
	for _, seg := range strings.Split(strings.Trim(p, "/"), "/") {
		opts = append(opts, coap.Option{ID: coap.URIPath, Value: []byte(seg)})
	}
	return opts
}

// TestWellKnownCoreListing: the exact listing of a small directory, over
// UDP and TCP, with Content-Format 40; every link names a file that a GET
// serves with the ct and sz the link gives; nothing the server refuses is
// listed.
func TestWellKnownCoreListing(t *testing.T) {
	dir, want := listingDir(t)
	udp, tcp := serve(t, dir, &logSink{})
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			c := coaprig.Dial(t, network, map[string]string{"udp": udp, "tcp": tcp}[network])
			resp := get1(t, c, pathOpts("/.well-known/core")...)
			if resp.Code != coap.Content || string(resp.Payload) != want {
				t.Fatalf("listing: %v\n%s\nwant\n%s", coap.CodeString(resp.Code), resp.Payload, want)
			}
			if cf, ok := coap.Uint(resp.Options, coap.ContentFormat); !ok || cf != 40 {
				t.Errorf("Content-Format %d (%v), want 40", cf, ok)
			}
			if tag, ok := coap.Bytes(resp.Options, coap.ETag); !ok || len(tag) != 8 {
				t.Errorf("ETag %x", tag)
			}
			for _, link := range strings.Split(want, ",") {
				href := link[1:strings.Index(link, ">")]
				p, err := url.PathUnescape(href)
				if err != nil {
					t.Fatal(err)
				}
				r := get1(t, c, pathOpts(p)...)
				cf, _ := coap.Uint(r.Options, coap.ContentFormat)
				size, ok := coap.Uint(r.Options, coap.Size2) // on a first block
				if !ok {
					size = uint32(len(r.Payload))
				}
				if got := fmt.Sprintf("<%s>;ct=%d;sz=%d", href, cf, size); r.Code != coap.Content || got != link {
					t.Errorf("GET %s: %v, %s; the listing says %s", p, coap.CodeString(r.Code), got, link)
				}
			}
			for _, p := range []string{"/escape", "/fifo", "/sock", "/outdir/secret", "/dirlink", "/empty"} {
				if r := get1(t, c, pathOpts(p)...); r.Code == coap.Content {
					t.Errorf("GET %s: %v, and the listing leaves it out", p, coap.CodeString(r.Code))
				}
			}
		})
	}
}

// TestWellKnownCoreBlockwise: the listing at every block size, 16-byte
// blocks included, reassembles to the whole listing, with Size2 and one
// ETag throughout (the client checks it on every block).
func TestWellKnownCoreBlockwise(t *testing.T) {
	dir, want := listingDir(t)
	udp, tcp := serve(t, dir, &logSink{})
	for _, network := range []string{"udp", "tcp"} {
		c := coaprig.Dial(t, network, map[string]string{"udp": udp, "tcp": tcp}[network])
		for size := 16; size <= 1024; size *= 2 {
			got, first := getListing(t, c, size)
			if got != want {
				t.Fatalf("%s, %d-byte blocks: %q", network, size, got)
			}
			if size < len(want) && (first.Block.Size() != size || !first.More) {
				t.Errorf("%s, %d-byte blocks: first block %v", network, size, first.Block)
			}
			if first.Size2 != int64(len(want)) || len(first.ETag) != 8 {
				t.Errorf("%s, %d-byte blocks: Size2 %d, ETag %x", network, size, first.Size2, first.ETag)
			}
		}
	}
}

// TestWellKnownCoreBound: a directory whose listing would be 60 KB gets
// the longest run of whole links, in order, that fits in 16 KiB, served
// block-wise.
func TestWellKnownCoreBound(t *testing.T) {
	dir := t.TempDir()
	var links []string
	for i := range 1500 {
		name := fmt.Sprintf("image-%04d-of-a-rather-long-name.bin", i)
		writeFile(t, dir, name, []byte("x"))
		links = append(links, "</"+name+">;ct=42;sz=1")
	}
	const bound = 16 << 10
	var want string
	for _, l := range links {
		next := l
		if want != "" {
			next = want + "," + l
		}
		if len(next) > bound {
			break
		}
		want = next
	}
	udp, tcp := serve(t, dir, &logSink{})
	for _, network := range []string{"udp", "tcp"} {
		got, first := getListing(t, coaprig.Dial(t, network, map[string]string{"udp": udp, "tcp": tcp}[network]), 1024)
		if got != want {
			t.Fatalf("%s: %d bytes, %d links; want %d bytes, %d links", network, len(got), strings.Count(got, ",")+1, len(want), strings.Count(want, ",")+1)
		}
		if len(got) > bound || first.Size2 != int64(len(got)) {
			t.Errorf("%s: %d bytes, Size2 %d", network, len(got), first.Size2)
		}
	}
}

// TestWellKnownCoreFilter: Uri-Query filters the listing (RFC 6690 4.1).
func TestWellKnownCoreFilter(t *testing.T) {
	dir, _ := listingDir(t)
	udp, _ := serve(t, dir, &logSink{})
	c := coaprig.Dial(t, "udp", udp)
	for _, tc := range []struct {
		query []string
		want  string
	}{
		{[]string{"href=/sub*"}, "</sub/c.json>;ct=50;sz=3"},
		{[]string{"href=/a.txt"}, "</a.txt>;ct=0;sz=5"},
		{[]string{"href=/we ird,;<>*.bin"}, "</we%20ird%2C%3B%3C%3E%2A.bin>;ct=42;sz=1"},
		{[]string{"ct=0"}, "</a.txt>;ct=0;sz=5"},
		{[]string{"ct=42", "sz=5"}, "</inside>;ct=42;sz=5"},
		{[]string{"sz=30*"}, "</fw.bin>;ct=42;sz=3000"},
		{[]string{"rt=firmware"}, ""},
		{[]string{"href=/nothing"}, ""},
	} {
		got, first := getListing(t, c, 16, tc.query...)
		if got != tc.want {
			t.Errorf("?%s: %q, want %q", strings.Join(tc.query, "&"), got, tc.want)
		}
		if tc.want != "" && first.Size2 != int64(len(tc.want)) {
			t.Errorf("?%s: Size2 %d", strings.Join(tc.query, "&"), first.Size2)
		}
	}
}

// TestLibcoapDiscovers: libcoap's client gets the listing, over UDP (whole
// and in 16-byte blocks) and TCP, and sees a 4.02 for an unknown critical
// option.
func TestLibcoapDiscovers(t *testing.T) {
	cli := peertest.Require(t, "coap-client-notls")
	dir, want := listingDir(t)
	udp, tcp := serve(t, dir, &logSink{})
	for _, tc := range []struct {
		args []string
		url  string
	}{
		{nil, "coap://127.0.0.1:" + udp},
		{[]string{"-b", "16"}, "coap://127.0.0.1:" + udp},
		{nil, "coap+tcp://127.0.0.1:" + tcp},
	} {
		args := append([]string{"-m", "get", "-B", "20"}, tc.args...)
		out, err := exec.Command(cli, append(args, tc.url+"/.well-known/core")...).Output()
		if got := strings.TrimSpace(string(out)); err != nil || got != want {
			t.Errorf("coap-client %s %s: %v\n%s\nwant\n%s", strings.Join(tc.args, " "), tc.url, err, got, want)
		}
	}
	out, _ := exec.Command(cli, "-m", "get", "-B", "20", "-O", "65001,x", "coap://127.0.0.1:"+udp+"/a.txt").CombinedOutput()
	if !strings.Contains(string(out), "4.02") || strings.Contains(string(out), "hello") {
		t.Errorf("coap-client with option 65001: %s", out)
	}
	out, _ = exec.Command(cli, "-m", "get", "-B", "20", "-O", "65000,x", "coap://127.0.0.1:"+udp+"/a.txt").CombinedOutput()
	if strings.TrimSpace(string(out)) != "hello" {
		t.Errorf("coap-client with elective option 65000: %s", out)
	}
}

// TestSpecialFilesNotServed: a FIFO or a socket in the directory is 4.04,
// at once. Opening a FIFO blocked the serving goroutine until a writer
// came (and Close with it).
func TestSpecialFilesNotServed(t *testing.T) {
	dir, _ := listingDir(t)
	udp, tcp := serve(t, dir, &logSink{})
	for _, network := range []string{"udp", "tcp"} {
		c := coaprig.Dial(t, network, map[string]string{"udp": udp, "tcp": tcp}[network])
		for _, p := range []string{"/fifo", "/sock"} {
			if r := get1(t, c, pathOpts(p)...); r.Code != coap.NotFound {
				t.Errorf("%s GET %s: %v", network, p, coap.CodeString(r.Code))
			}
		}
	}
}

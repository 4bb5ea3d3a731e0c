package fileserver_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/client"
	"github.com/tether-iot/tether/coap/fileserver"
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/internal/testrig/coaprig"
)

// stuck bounds what a test waits for an answer that must come: only a
// server that is wedged (the bug a test looks for) takes this long.
const stuck = 30 * time.Second

// gate holds the hash of one file until released, and says when it began.
type gate struct {
	names   []string      // the paths a hash of the file may be begun under
	started chan struct{} // one value per hash of name begun
	release chan struct{}
	hashes  atomic.Int32 // hashes of any file begun
}

func newGate(names ...string) *gate {
	return &gate{names: names, started: make(chan struct{}, 16), release: make(chan struct{})}
}

func (g *gate) hash(name string) {
	g.hashes.Add(1)
	if slices.Contains(g.names, name) {
		g.started <- struct{}{}
		<-g.release
	}
}

// hookedServer serves dir on loopback UDP and TCP with the given hooks.
func hookedServer(t testing.TB, dir string, wait time.Duration, open, hash func(string)) (udp, tcp string) {
	t.Helper()
	srv, err := fileserver.New(dir, &fileserver.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	fileserver.SetTestHooks(srv, wait, open, hash)
	return coaprig.RunLoopback(t, srv)
}

// fetch downloads path block-wise, bounded by stuck.
func fetch(c *client.Conn, path string) ([]byte, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), stuck)
	defer cancel()
	var body, etag []byte
	err := c.GetBlocks(ctx, client.BlockRequest{Path: path, BlockSize: 1024}, func(ch client.Chunk) error {
		body = append(body, ch.Payload...)
		etag = bytes.Clone(ch.ETag)
		return nil
	})
	return body, etag, err
}

// TestOtherFilesDoNotWaitForAHash: while the first hash of a large file is
// held in progress (by a gate, so whatever the machine's speed), another
// file downloads completely over UDP and over TCP, and the requests for
// the large file, over both, are answered once the hash ends, with its
// ETag. The ETag was computed under the server's lock, in the goroutine
// that serves every UDP client: the first request for a 2 GiB file
// stalled every other client for 6 s.
func TestOtherFilesDoNotWaitForAHash(t *testing.T) {
	dir := testrig.File(t, "small.bin", testrig.Bytes(20<<10, 1))
	small, _ := os.ReadFile(filepath.Join(dir, "small.bin"))
	big := testrig.Bytes(50<<10, 1)
	writeFile(t, dir, "big.bin", big)
	g := newGate("big.bin")
	udp, tcp := hookedServer(t, dir, time.Hour, nil, g.hash) // the big file's requests wait for it
	type result struct {
		network    string
		body, etag []byte
		err        error
	}
	results := make(chan result, 2)
	for _, network := range []string{"udp", "tcp"} {
		c := coaprig.Dial(t, network, map[string]string{"udp": udp, "tcp": tcp}[network])
		go func() {
			body, etag, err := fetch(c, "big.bin")
			results <- result{network, body, etag, err}
		}()
	}
	<-g.started // the hash has begun, and cannot end before the release
	for _, network := range []string{"udp", "tcp"} {
		c := coaprig.Dial(t, network, map[string]string{"udp": udp, "tcp": tcp}[network])
		body, _, err := fetch(c, "small.bin")
		if err != nil || !bytes.Equal(body, small) {
			close(g.release)
			t.Fatalf("%s: the small file while the big one is hashed: %v (%d bytes)", network, err, len(body))
		}
	}
	select {
	case r := <-results:
		t.Errorf("%s: the big file was answered before its hash ended: %v", r.network, r.err)
	default:
	}
	close(g.release)
	sum := sha256.Sum256(big)
	for range 2 {
		r := <-results
		if r.err != nil || !bytes.Equal(r.body, big) || !bytes.Equal(r.etag, sum[:8]) {
			t.Errorf("%s: the big file: %v (%d bytes, ETag %x)", r.network, r.err, len(r.body), r.etag)
		}
	}
	if n := g.hashes.Load(); n != 2 {
		t.Errorf("%d hashes, want one per file", n)
	}
}

// TestOneHashPerVersion: concurrent requests for one file, over UDP and
// TCP and through a symbolic link to it, share one hash; a new version
// (a new modification time) is hashed once more, to a new ETag.
func TestOneHashPerVersion(t *testing.T) {
	data := testrig.Bytes(40<<10, 1)
	dir := testrig.File(t, "fw.bin", data)
	if err := os.Symlink("fw.bin", filepath.Join(dir, "alias.bin")); err != nil {
		t.Fatal(err)
	}
	// The hash is begun under the name of whichever request comes first:
	// the file's, or its link's.
	g := newGate("fw.bin", "alias.bin")
	udp, tcp := hookedServer(t, dir, time.Hour, nil, g.hash)
	var wg sync.WaitGroup
	etags := make(chan []byte, 8)
	for i := range 8 {
		network, path := []string{"udp", "tcp"}[i%2], []string{"fw.bin", "alias.bin"}[i/2%2]
		c := coaprig.Dial(t, network, map[string]string{"udp": udp, "tcp": tcp}[network])
		wg.Go(func() {
			body, etag, err := fetch(c, path)
			if err != nil || !bytes.Equal(body, data) {
				t.Errorf("%s %s: %v (%d bytes)", network, path, err, len(body))
			}
			etags <- etag
		})
	}
	<-g.started
	close(g.release)
	wg.Wait()
	close(etags)
	sum := sha256.Sum256(data)
	for etag := range etags {
		if !bytes.Equal(etag, sum[:8]) {
			t.Errorf("ETag %x, want %x", etag, sum[:8])
		}
	}
	if n := g.hashes.Load(); n != 1 {
		t.Errorf("%d hashes for 8 requests of one version by two paths, want 1", n)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(dir, "fw.bin"), later, later); err != nil {
		t.Fatal(err)
	}
	// The server looks at a cached file's path again once revalidate has
	// passed since it last did: wait that long, so the next request is
	// sure to see the touch however fast it follows.
	time.Sleep(fileserver.Revalidate + 10*time.Millisecond)
	c := coaprig.Dial(t, "udp", udp)
	if body, _, err := fetch(c, "alias.bin"); err != nil || !bytes.Equal(body, data) {
		t.Fatalf("after a touch: %v", err)
	}
	if n := g.hashes.Load(); n != 2 {
		t.Errorf("%d hashes after the file's time changed, want 2", n)
	}
}

// TestBusyFileAnswered503: a request whose file is still being hashed
// when its wait ends is answered 5.03 Service Unavailable with a Max-Age,
// over UDP (set aside, then answered) and over TCP; once the hash ends the
// file is served.
func TestBusyFileAnswered503(t *testing.T) {
	data := testrig.Bytes(3000, 1)
	dir := testrig.File(t, "fw.bin", data)
	g := newGate("fw.bin")
	udp, tcp := hookedServer(t, dir, time.Millisecond, nil, g.hash)
	clients := map[string]*client.Conn{"udp": coaprig.Dial(t, "udp", udp), "tcp": coaprig.Dial(t, "tcp", tcp)}
	first := true
	for _, network := range []string{"udp", "tcp"} {
		resp := get1(t, clients[network], pathOpts("fw.bin")...)
		if first {
			<-g.started // the hash the request started holds
			first = false
		}
		age, ok := coap.Uint(resp.Options, coap.MaxAge)
		if resp.Code != coap.ServiceUnavailable || !ok || age < 1 || age > 60 {
			t.Errorf("%s: %v, Max-Age %d (%v); want 5.03 with a Max-Age of 1 to 60 s", network, coap.CodeString(resp.Code), age, ok)
		}
	}
	close(g.release)
	for network, c := range clients {
		if body, _, err := fetch(c, "fw.bin"); err != nil || !bytes.Equal(body, data) {
			t.Errorf("%s after the hash: %v", network, err)
		}
	}
}

// TestFIFOSwappedInIsRefused: a symbolic link that names a regular file
// when the server looks, and a FIFO when it opens (the hook swaps it in
// between), is refused 4.04 at once, over UDP and TCP, and the server
// serves on and closes. Opened without O_NONBLOCK, the FIFO blocked the
// open until a writer came; before, the whole server with it.
func TestFIFOSwappedInIsRefused(t *testing.T) {
	dir := testrig.File(t, "ok", []byte("a regular file"))
	fifo := filepath.Join(dir, "fifo")
	if err := mkfifo(fifo, 0o644); err != nil {
		t.Skip("no FIFOs here:", err)
	}
	link := filepath.Join(dir, "flip")
	point := func(target string) {
		tmp := link + ".tmp"
		os.Remove(tmp)
		if err := os.Symlink(target, tmp); err != nil {
			t.Error(err)
		}
		if err := os.Rename(tmp, link); err != nil { // atomic: the link always exists
			t.Error(err)
		}
	}
	point("ok")
	udp, tcp := hookedServer(t, dir, time.Hour, func(name string) {
		if name == "flip" {
			point("fifo")
		}
	}, nil)
	t.Cleanup(func() {
		// Only with the bug: let a blocked open of the FIFO return, so
		// that the server can close.
		if fd, err := syscall.Open(fifo, syscall.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			syscall.Close(fd)
		}
	})
	for _, network := range []string{"udp", "tcp"} {
		c := coaprig.Dial(t, network, map[string]string{"udp": udp, "tcp": tcp}[network])
		point("ok")
		if resp := get1(t, c, pathOpts("flip")...); resp.Code != coap.NotFound {
			t.Errorf("%s: a FIFO swapped in: %v, want 4.04", network, coap.CodeString(resp.Code))
		}
		if resp := get1(t, c, pathOpts("ok")...); resp.Code != coap.Content {
			t.Errorf("%s: then the regular file: %v", network, coap.CodeString(resp.Code))
		}
	}
}

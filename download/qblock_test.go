package download_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/client"
	"github.com/tether-iot/tether/download"
	"github.com/tether-iot/tether/internal/testrig"
)

// blockDropper drops the first response that carries Q-Block2 block num.
type blockDropper struct {
	net.PacketConn
	num uint32

	mu      sync.Mutex
	dropped bool
	m       coap.Message
}

func (b *blockDropper) WriteTo(p []byte, addr net.Addr) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.dropped && coap.DecodeUDP(p, &b.m) == nil {
		if blk, ok, _ := coap.GetBlock(b.m.Options, coap.QBlock2, false); ok && blk.Num == b.num {
			b.dropped = true
			return len(p), nil
		}
	}
	return b.PacketConn.WriteTo(p, addr)
}

// TestQBlockKilledPastAGap: a Q-Block2 download killed while blocks past a
// lost one are written (block 20 lost, 21 and later arrived) saves them in
// its state; the next run reads them back from the file, checks them,
// asks only for the blocks it lacks (never one it holds), and ends with
// the exact bytes. A block saved past the gap whose bytes changed on disk
// is asked for again, and the result is still exact.
func TestQBlockKilledPastAGap(t *testing.T) {
	data := testrig.Bytes(64<<10, 19)
	want := sha256.Sum256(data)
	for _, damage := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			w, a := serving(t, data, 20*time.Millisecond)
			a.wrap = func(pc net.PacketConn) net.PacketConn { return &blockDropper{PacketConn: pc, num: 20} }
			a.restart(nil)
			path := filepath.Join(t.TempDir(), "fw.bin")
			ctx, cancel := context.WithCancel(context.Background())
			d, err := download.ToFile(ctx, fileURL, path, &download.Options{NewSocket: w.socket, QBlock: true, Progress: func(p download.Progress) {
				if p.Blocks >= 25 && p.Written == 20*1024 {
					cancel() // killed with blocks 21.. written past the gap
				}
			}})
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Wait(); !errors.Is(err, context.Canceled) {
				t.Fatalf("interrupted download: %v", err)
			}
			st, err := download.LoadState(path + download.StateSuffix)
			if err != nil || st.Written != 20*1024 || len(st.Pending) < 4 {
				t.Fatalf("saved state: written %d, %d blocks past the gap, %v", st.Written, len(st.Pending), err)
			}
			held := map[uint32]bool{}
			for _, b := range st.Pending {
				held[uint32(b.Offset/1024)] = true
			}
			if damage {
				f, err := os.OpenFile(path+download.PartSuffix, os.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := f.WriteAt([]byte{0xff ^ data[st.Pending[0].Offset+7]}, st.Pending[0].Offset+7); err != nil {
					t.Fatal(err)
				}
				f.Close()
				delete(held, uint32(st.Pending[0].Offset/1024))
			}
			time.Sleep(time.Second) // the first run's last requests land before the mark
			mark := a.Mark()
			d, err = download.ToFile(context.Background(), fileURL, path, &download.Options{NewSocket: w.socket, SHA256: want[:], QBlock: true})
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Wait(); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(path)
			if sha256.Sum256(got) != want {
				t.Fatal("SHA-256 differs")
			}
			for _, b := range a.Since(mark) {
				end := b.Num + 1
				if b.More {
					end = (b.Num/10 + 1) * 10
				}
				for n := b.Num; n < end; n++ {
					if held[n] {
						t.Errorf("damaged %v: the second run asked for block %d (%v), which it held", damage, n, b)
					}
				}
			}
			t.Logf("damaged %v: %d blocks held past the gap; the second run asked %v", damage, len(st.Pending), a.Since(mark))
		})
	}
}

// lineCounter counts the log lines that hold each of its keys.
type lineCounter struct {
	mu    sync.Mutex
	keys  []string
	count map[string]int
}

func (l *lineCounter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range l.keys {
		if strings.Contains(string(p), k) {
			l.count[k]++
		}
	}
	return len(p), nil
}

// TestQBlockOverDTLS: Q-Block2 runs over coaps as over coap: a download
// taken offline twenty times ends with the exact bytes, its blocks came as
// Non-confirmable bursts (the client's wire trace) but the first of each
// resume, and it sent a request for several blocks each time (Continues),
// not one per block.
func TestQBlockOverDTLS(t *testing.T) {
	data := testrig.Bytes(256<<10, 41)
	url := "coaps://" + dtlsFileServer(t, data, pskServer(dtls.WithConnectionIDGenerator(dtls.RandomCIDGenerator(8)))...) + "/fw.bin"
	lines := &lineCounter{keys: []string{`msg="coap send"`, `msg="coap recv" type=NON`, "qblock2="}, count: map[string]int{}}
	log := slog.New(slog.NewTextHandler(lines, &slog.HandlerOptions{Level: client.LevelTrace}))
	var (
		c    download.Controller
		sink memSink
	)
	want := sha256.Sum256(data)
	offline := &offlineCycles{c: &c, tr: download.UDP, n: 20, every: 10, off: 20 * time.Millisecond}
	d, err := c.Start(context.Background(), url, &sink, &download.Options{DTLS: pskConfig(), SHA256: want[:], QBlock: true, Logger: log, Progress: offline.progress})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Wait(); err != nil {
		t.Fatal(err)
	}
	if sink.sum() != want || offline.cycles() != 20 {
		t.Fatalf("SHA-256 differs, or %d offline cycles", offline.cycles())
	}
	lines.mu.Lock()
	defer lines.mu.Unlock()
	sent, bursts := lines.count[`msg="coap send"`], lines.count[`msg="coap recv" type=NON`]
	// Each resume asks for its first block in a confirmable exchange:
	// the others came as NON responses.
	if bursts < len(data)/1024-21 || sent > len(data)/1024/3 {
		t.Fatalf("%d requests sent and %d NON responses for %d blocks: not Q-Block2 bursts", sent, bursts, len(data)/1024)
	}
	t.Logf("%d blocks over coaps: %d requests, %d NON responses, 20 offline cycles", len(data)/1024, sent, bursts)
}

// TestQBlockOffline: a Q-Block2 download on a 40 ms round trip taken
// offline fifty times (the Controller, as a device's connectivity manager
// does), each time in the middle of a burst, ends with the exact bytes and
// asks again for at most a burst per cycle: the blocks in flight.
func TestQBlockOffline(t *testing.T) {
	data := testrig.Bytes(512<<10, 43)
	synctest.Test(t, func(t *testing.T) {
		w, a := serving(t, data, 20*time.Millisecond)
		var (
			c    download.Controller
			sink memSink
		)
		offline := &offlineCycles{c: &c, tr: download.UDP, n: 50, every: 7, off: time.Second}
		d, err := c.Start(context.Background(), fileURL, &sink, &download.Options{NewSocket: w.socket, QBlock: true, Progress: offline.progress})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Wait(); err != nil {
			t.Fatal(err)
		}
		if sink.sum() != sha256.Sum256(data) || offline.cycles() != 50 {
			t.Fatalf("SHA-256 differs, or %d offline cycles", offline.cycles())
		}
		again, blocks := a.Refetched()
		if blocks != len(data)/1024 || again > 10*offline.cycles() {
			t.Fatalf("%d blocks asked for again over %d offline cycles of %d blocks; want at most a burst (10) each", again, offline.cycles(), blocks)
		}
		t.Logf("50 offline cycles: %d blocks asked for again (%.1f per cycle)", again, float64(again)/50)
	})
}

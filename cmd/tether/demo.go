package main

import (
	"bytes"
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
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/fileserver"
	"github.com/tether-iot/tether/download"
)

const (
	demoSize    = 8 << 20
	demoOffline = 2 * time.Second
)

func newDemo(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "See an offline gap healed, on loopback, with no set-up",
		Long: `demo serves 8 MiB of random data on loopback, downloads it, takes the
device offline at 40% for two seconds, brings it back, and reports what the
resume cost: the blocks asked for again, the time to the first block.`,
		Example: "  tether demo",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{errors.New("demo takes no arguments")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return demo(cmd.Context(), stdout) },
	}
	cmd.AddCommand(newDemoDevice(stdout))
	return cmd
}

// demo serves a generated file on loopback, downloads it, takes the device
// offline at 40% for two seconds, brings it back, and reports.
func demo(ctx context.Context, stdout io.Writer) error {
	stdout = &lockedWriter{w: stdout} // the download's goroutine prints too
	dir, err := os.MkdirTemp("", "tether-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	data := make([]byte, demoSize)
	rand.Read(data)
	want := sha256.Sum256(data)
	if err := os.WriteFile(filepath.Join(dir, "firmware.bin"), data, 0o644); err != nil {
		return err
	}

	srv, err := fileserver.New(dir, &fileserver.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer srv.Close()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	counter := &blockCounter{PacketConn: pc, seen: make(map[uint32]int)}
	go srv.ServeUDP(counter)
	url := "coap://localhost:" + strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port) + "/firmware.bin"
	fmt.Fprintf(stdout, "serving %s of random data at %s\n", size(demoSize), url)

	var (
		ctl       download.Controller
		mu        sync.Mutex
		half      = make(chan struct{})
		once      sync.Once
		back      time.Time
		firstBack time.Duration
		nextTenth int64
		lastBytes int64
	)
	progress := func(p download.Progress) {
		mu.Lock()
		defer mu.Unlock()
		if p.Written == lastBytes {
			return // a change of phase, not a block
		}
		lastBytes = p.Written
		if !back.IsZero() && firstBack == 0 {
			firstBack = time.Since(back)
		}
		if p.Written >= nextTenth {
			fmt.Fprintf(stdout, "  %3d%%  %s\n", p.Written*100/demoSize, size(p.Written))
			nextTenth += demoSize / 10
		}
		if p.Written >= demoSize*4/10 {
			once.Do(func() { close(half) })
		}
	}
	start := time.Now()
	out := filepath.Join(dir, "downloaded.bin")
	d, err := ctl.ToFile(ctx, url, out, &download.Options{SHA256: want[:], Progress: progress})
	if err != nil {
		return err
	}
	select {
	case <-half:
	case <-d.Done():
	}
	if d.Err() == nil && d.Written() < demoSize {
		if err := ctl.EnterOffline(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "offline at %s: downloads suspended, sockets shut down (not closed)\n", size(d.Written()))
		select {
		case <-time.After(demoOffline):
		case <-ctx.Done():
			return ctx.Err()
		}
		mu.Lock()
		back = time.Now()
		mu.Unlock()
		if err := ctl.ExitOffline(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "online again after %v: resuming at %s, same server\n", demoOffline, size(d.Written()))
	}
	if err := d.Wait(); err != nil {
		return err
	}
	total := time.Since(start)
	got, err := os.ReadFile(out)
	if err != nil {
		return err
	}
	if sha256.Sum256(got) != want || !bytes.Equal(d.Sum(), want[:]) {
		return fmt.Errorf("demo: the downloaded file differs from the served one")
	}
	p := d.Progress()
	again := counter.again()
	mu.Lock()
	fb := firstBack
	mu.Unlock()
	transfer := total - p.Offline
	fmt.Fprintf(stdout, `
done: %s, SHA-256 %x... verified on disk
  blocks fetched          %d of 1024 bytes
  blocks asked for again  %d (%s re-fetched after the resume)
  time offline            %v
  first block after       %v
  throughput              %.1f MB/s while online
`, size(p.Written), want[:8], p.Blocks, again, size(int64(again)*1024), p.Offline.Round(time.Millisecond),
		fb.Round(10*time.Microsecond), float64(p.Written)/transfer.Seconds()/1e6)
	return nil
}

// blockCounter counts the Block2 requests the demo's server reads.
type blockCounter struct {
	net.PacketConn
	mu   sync.Mutex
	m    coap.Message
	seen map[uint32]int
}

func (c *blockCounter) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := c.PacketConn.ReadFrom(b)
	if err == nil {
		c.mu.Lock()
		if coap.DecodeUDP(b[:n], &c.m) == nil && c.m.Code == coap.GET {
			v, _ := coap.Uint(c.m.Options, coap.Block2)
			c.seen[v>>4]++
		}
		c.mu.Unlock()
	}
	return n, from, err
}

// again returns how many block requests repeated an earlier one.
func (c *blockCounter) again() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, k := range c.seen {
		n += k - 1
	}
	return n
}

// lockedWriter serialises writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

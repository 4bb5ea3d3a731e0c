// Command coapload loads a CoAP file server with devices: each device is
// one download of package download (its own socket, retries and
// checks), the body hashed as it arrives and compared with the SHA-256
// given. It prints how many completed exactly, the time they took, and
// what they cost this process: peak RSS, peak goroutines, CPU time per
// block. With -server-pid it also reports the server's peak RSS (Linux,
// from /proc). It is a measuring tool for `tether serve`, not part of
// the tether command, and it targets only the URL it is given (keep it on
// loopback or a test network of your own).
//
//	coapload -n 10000 -c 10000 -sha256 HEX coap://127.0.0.1:5683/fw.bin
//	coapload -n 1000 -psk-id dev -psk key -sha256 HEX coaps://127.0.0.1:5684/fw.bin
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"hash"
	"io"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-iot/tether/download"
	"github.com/tether-iot/tether/sock/dtlssock"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "coapload:", err)
		os.Exit(1)
	}
}

// config is what the flags say.
type config struct {
	url         string
	devices     int
	concurrency int
	want        []byte
	blockSize   int
	qblock      bool
	psk         *dtlssock.Config
	timeout     time.Duration
	serverPID   int
}

func parse(args []string) (*config, error) {
	fs := flag.NewFlagSet("coapload", flag.ContinueOnError)
	var c config
	var sum, pskID, psk string
	fs.IntVar(&c.devices, "n", 100, "devices in all")
	fs.IntVar(&c.concurrency, "c", 0, "devices at once (default: all)")
	fs.StringVar(&sum, "sha256", "", "the file's SHA-256, in hex (required)")
	fs.IntVar(&c.blockSize, "block", 1024, "block size")
	fs.BoolVar(&c.qblock, "qblock", false, "ask with Q-Block2 over coap too (over coaps it is the default of package download)")
	fs.StringVar(&pskID, "psk-id", "", "coaps: the pre-shared key's identity")
	fs.StringVar(&psk, "psk", "", "coaps: the pre-shared key")
	fs.DurationVar(&c.timeout, "timeout", 5*time.Minute, "bound on the whole run")
	fs.IntVar(&c.serverPID, "server-pid", 0, "report this process's peak RSS too (Linux)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() != 1 {
		return nil, errors.New("one URL, after the flags")
	}
	c.url = fs.Arg(0)
	var err error
	if c.want, err = hex.DecodeString(sum); err != nil || len(c.want) != sha256.Size {
		return nil, errors.New("-sha256 needs the file's SHA-256 in hex")
	}
	if c.devices <= 0 {
		return nil, errors.New("-n must be positive")
	}
	if c.concurrency <= 0 || c.concurrency > c.devices {
		c.concurrency = c.devices
	}
	if strings.HasPrefix(c.url, "coaps://") {
		if pskID == "" || psk == "" {
			return nil, errors.New("coaps needs -psk-id and -psk")
		}
		key := []byte(psk)
		c.psk = &dtlssock.Config{PSK: func([]byte) ([]byte, error) { return key, nil }, PSKIdentity: []byte(pskID)}
	}
	return &c, nil
}

// result is what the run measured.
type result struct {
	exact, wrong, failed int
	firstErr             error
	elapsed              time.Duration
	latencies            []time.Duration
	peakGoroutines       int
	peakRSS, serverRSS   int64 // bytes; 0 where unknown
	cpu                  time.Duration
	blocks               int64
}

// hashing hashes what it is given, in order.
type hashing struct {
	h hash.Hash
	n int64
}

func (w *hashing) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return w.h.Write(p)
}

func run(args []string, out io.Writer) error {
	c, err := parse(args)
	if err != nil {
		return err
	}
	r := load(c)
	report(out, c, r)
	if r.exact != c.devices {
		return fmt.Errorf("%d of %d devices did not get the exact file (first error: %v)", c.devices-r.exact, c.devices, r.firstErr)
	}
	return nil
}

// load runs the devices and measures.
func load(c *config) *result {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	var r result
	var mu sync.Mutex
	var blocks atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() { // peaks, sampled
		defer close(sampled)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if g := runtime.NumGoroutine(); g > r.peakGoroutines {
				r.peakGoroutines = g
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	cpu0 := cpuTime()
	start := time.Now()
	sem := make(chan struct{}, c.concurrency)
	var wg sync.WaitGroup
	for range c.devices {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			t0 := time.Now()
			w := &hashing{h: sha256.New()}
			opts := &download.Options{BlockSize: c.blockSize, QBlock: c.qblock, GiveUpAfter: time.Minute}
			if c.psk != nil {
				opts.DTLS = c.psk
			}
			d, err := download.Start(ctx, c.url, download.Stream(w), opts)
			if err == nil {
				err = d.Wait()
			}
			blocks.Add((w.n + int64(c.blockSize) - 1) / int64(c.blockSize))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				r.failed++
				if r.firstErr == nil {
					r.firstErr = err
				}
			case string(w.h.Sum(nil)) != string(c.want):
				r.wrong++
			default:
				r.exact++
				r.latencies = append(r.latencies, time.Since(t0))
			}
		}()
	}
	wg.Wait()
	r.elapsed = time.Since(start)
	r.cpu = cpuTime() - cpu0
	close(stop)
	<-sampled
	r.blocks = blocks.Load()
	r.peakRSS = peakRSS("/proc/self/status")
	if c.serverPID > 0 {
		r.serverRSS = peakRSS("/proc/" + strconv.Itoa(c.serverPID) + "/status")
	}
	return &r
}

func report(out io.Writer, c *config, r *result) {
	fmt.Fprintf(out, "devices: %d (%d at once), exact: %d, wrong bytes: %d, failed: %d\n", c.devices, c.concurrency, r.exact, r.wrong, r.failed)
	if r.firstErr != nil {
		fmt.Fprintf(out, "first error: %v\n", r.firstErr)
	}
	fmt.Fprintf(out, "elapsed: %v", r.elapsed.Round(time.Millisecond))
	if n := len(r.latencies); n > 0 {
		sort.Slice(r.latencies, func(i, j int) bool { return r.latencies[i] < r.latencies[j] })
		q := func(f float64) time.Duration { return r.latencies[min(n-1, int(f*float64(n)))].Round(time.Millisecond) }
		fmt.Fprintf(out, ", per device p50 %v, p99 %v, max %v", q(0.5), q(0.99), r.latencies[n-1].Round(time.Millisecond))
	}
	fmt.Fprintln(out)
	perBlock := time.Duration(0)
	if r.blocks > 0 {
		perBlock = r.cpu / time.Duration(r.blocks)
	}
	fmt.Fprintf(out, "this process: peak RSS %s, peak goroutines %d, CPU %v for %d blocks (%v per block)\n",
		mib(r.peakRSS), r.peakGoroutines, r.cpu.Round(time.Millisecond), r.blocks, perBlock)
	if c.serverPID > 0 {
		fmt.Fprintf(out, "server (pid %d): peak RSS %s\n", c.serverPID, mib(r.serverRSS))
	}
}

func mib(b int64) string {
	if b <= 0 {
		return "unknown"
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

// peakRSS reads VmHWM from a /proc status file; 0 where there is none.
func peakRSS(path string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

package download_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/tether-iot/tether/download"
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/internal/testrig/coaprig"
)

// BenchmarkSuspendEvery100 compares a 4 MiB download with one that is
// suspended and resumed every 100 blocks (41 times). Goal: under 10% lost.
//
//	go test -run '^$' -bench SuspendEvery100 -count 10 ./download > s.txt
//	benchstat -col /suspend s.txt
func BenchmarkSuspendEvery100(b *testing.B) {
	data := testrig.Bytes(4<<20, 10)
	url := coaprig.ServeFile(b, data, nil)
	for _, every := range []int{0, 100} {
		b.Run("suspend="+strconv.Itoa(every), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			suspends := 0
			for b.Loop() {
				var (
					sink memSink
					d    *download.Download
				)
				ready := make(chan struct{})
				stopped := make(chan struct{})
				blocks := make(chan int, 1)
				opts := &download.Options{}
				if every > 0 {
					opts.Progress = func(p download.Progress) {
						if p.Phase == download.Attempting && p.Blocks > 0 && p.Blocks%every == 0 {
							select {
							case blocks <- p.Blocks:
							default:
							}
						}
					}
				}
				d, err := download.Start(context.Background(), url, &sink, opts)
				if err != nil {
					b.Fatal(err)
				}
				close(ready)
				if every > 0 {
					go func() {
						for {
							select {
							case <-blocks:
								d.Suspend()
								d.Resume()
								suspends++
							case <-d.Done():
								close(stopped)
								return
							}
						}
					}()
				}
				if err := d.Wait(); err != nil {
					b.Fatal(err)
				}
				<-ready
				if every > 0 {
					<-stopped
				}
			}
			b.ReportMetric(float64(suspends)/float64(b.N), "suspends/op")
		})
	}
}

// BenchmarkResumeLatency measures the time from Resume to the next block
// written, on loopback: one connect and one round trip.
func BenchmarkResumeLatency(b *testing.B) {
	data := testrig.Bytes(64<<20, 11)
	url := coaprig.ServeFile(b, data, nil)
	var sink memSink
	written := make(chan time.Time, 1)
	ctx, cancel := context.WithCancel(context.Background())
	var last int64
	d, err := download.Start(ctx, url, &sink, &download.Options{Progress: func(p download.Progress) {
		if p.Written == last {
			return // a change of phase, not a block
		}
		last = p.Written
		select {
		case written <- time.Now():
		default:
		}
	}})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { cancel(); d.Wait() }()
	<-written // the server has opened the file and computed its ETag
	var total time.Duration
	for b.Loop() {
		d.Suspend()
		time.Sleep(time.Millisecond)
		for len(written) > 0 {
			<-written
		}
		start := time.Now()
		d.Resume()
		total += (<-written).Sub(start)
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N), "µs/first-block")
}

// BenchmarkHeapPerDownload measures the heap one active download holds
// (goroutine aside): its socket, the CoAP exchange's buffers, its state. 100
// downloads are started against a server that never answers, so each is
// caught in the middle of an exchange, waiting to retransmit. Goal: under
// 64 KiB each with 1024-byte blocks.
func BenchmarkHeapPerDownload(b *testing.B) {
	hole, err := net.ListenPacket("udp4", "127.0.0.1:0") // reads nothing, answers nothing
	if err != nil {
		b.Fatal(err)
	}
	defer hole.Close()
	url := "coap://127.0.0.1:" + strconv.Itoa(hole.LocalAddr().(*net.UDPAddr).Port) + "/fw.bin"
	const n = 100
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		ctx, cancel := context.WithCancel(context.Background())
		ds := make([]*download.Download, n)
		for i := range ds {
			d, err := download.Start(ctx, url, &memSink{}, &download.Options{BlockSize: 1024})
			if err != nil {
				b.Fatal(err)
			}
			ds[i] = d
		}
		time.Sleep(200 * time.Millisecond) // all connected, each waiting on its first block
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/n, "heap-bytes/download")
		b.ReportMetric(float64(int64(after.StackInuse)-int64(before.StackInuse))/n, "stack-bytes/download")
		cancel()
		for _, d := range ds {
			d.Wait()
		}
	}
}

// BenchmarkFile compares a 4 MiB download into memory, into a plain file
// (Start with an *os.File: a write per block), and into a file through
// ToFile, which also syncs the data before every state it saves (every 250
// ms, from a timer) and syncs, reads back and hashes the whole file before
// its rename: the price of crash safety, in one run.
//
//	go test -run '^$' -bench 'File$' -count 10 ./download > f.txt
//	benchstat -col /sink f.txt
func BenchmarkFile(b *testing.B) {
	data := testrig.Bytes(4<<20, 12)
	url := coaprig.ServeFile(b, data, nil)
	for _, sink := range []string{"memory", "plainfile", "file"} {
		b.Run("sink="+sink, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			path := filepath.Join(b.TempDir(), "fw.bin")
			for b.Loop() {
				var (
					d   *download.Download
					err error
				)
				switch sink {
				case "memory":
					d, err = download.Start(context.Background(), url, &memSink{}, nil)
				case "plainfile":
					f, ferr := os.Create(path)
					if ferr != nil {
						b.Fatal(ferr)
					}
					defer f.Close()
					d, err = download.Start(context.Background(), url, f, nil)
				default:
					os.Remove(path)
					d, err = download.ToFile(context.Background(), url, path, nil)
				}
				if err != nil {
					b.Fatal(err)
				}
				if err := d.Wait(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

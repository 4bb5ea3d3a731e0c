package fileserver_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/client"
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/internal/testrig/coaprig"
)

// BenchmarkSmallFileBesideBigHash measures how much the first request for
// a 2 GiB file (sparse: the hash costs what a real one does, the disk
// nothing) delays another client's download of a 64 KiB file over UDP,
// the transport whose one loop serves every client. Each round gives the
// big file a new modification time, so that it is hashed again, sends its
// first request, waits for its hash to begin, and downloads the small file
// meanwhile; delay-ms is the mean of those downloads less the mean of the
// same download with nothing else going on, and during-hash the share of
// downloads that ended while the hash still ran (1: the figure measures
// what it says).
//
//	go test -run '^$' -bench SmallFileBesideBigHash -benchtime 5x ./coap/fileserver
func BenchmarkSmallFileBesideBigHash(b *testing.B) {
	dir := testrig.File(b, "small.bin", testrig.Bytes(64<<10, 1))
	bigPath := filepath.Join(dir, "big.bin")
	f, err := os.Create(bigPath)
	if err != nil {
		b.Fatal(err)
	}
	if err := f.Truncate(2 << 30); err != nil {
		b.Fatal(err)
	}
	f.Close()
	started := make(chan struct{}, 1)
	udp, _ := hookedServer(b, dir, time.Minute, nil, func(name string) {
		if name == "big.bin" {
			started <- struct{}{}
		}
	})
	small := coaprig.Dial(b, "udp", udp)
	bigClient := coaprig.Dial(b, "udp", udp)
	download := func() time.Duration {
		t0 := time.Now()
		if _, _, err := fetch(small, "small.bin"); err != nil {
			b.Fatal(err)
		}
		return time.Since(t0)
	}
	download() // cached
	var alone time.Duration
	for range 20 {
		alone += download()
	}
	alone /= 20
	var beside time.Duration
	during := 0
	b.ResetTimer()
	for i := range b.N {
		mod := time.Now().Add(time.Duration(i+1) * time.Hour)
		if err := os.Chtimes(bigPath, mod, mod); err != nil {
			b.Fatal(err)
		}
		time.Sleep(150 * time.Millisecond) // past the server's revalidation period: it sees the change
		done := make(chan error, 1)
		go func() {
			done <- firstBlock(bigClient, "big.bin")
		}()
		<-started
		beside += download()
		select {
		case <-done:
		default:
			during++
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(alone.Microseconds())/1000, "alone-ms")
	b.ReportMetric(float64((beside/time.Duration(b.N)-alone).Microseconds())/1000, "delay-ms")
	b.ReportMetric(float64(during)/float64(b.N), "during-hash")
}

// firstBlock asks for the first block of path, bounded by stuck.
func firstBlock(c *client.Conn, path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), stuck)
	defer cancel()
	resp, err := c.Do(ctx, &coap.Message{Code: coap.GET, Options: pathOpts(path)})
	if err == nil && resp.Code != coap.Content {
		err = fmt.Errorf("GET %s: %v", path, coap.CodeString(resp.Code))
	}
	return err
}

package download_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"net"
	"sync"
	"testing"

	"github.com/pion/dtls/v3"

	"github.com/tether-iot/tether/coap/client"
	"github.com/tether-iot/tether/coap/fileserver"
	"github.com/tether-iot/tether/download"
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/internal/testrig/coaprig"
)

// qblockRequests counts, in the client's wire trace, the requests sent
// with a Q-Block2 option.
type qblockRequests struct {
	mu sync.Mutex
	n  int
}

func (q *qblockRequests) Write(p []byte) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for line := range bytes.Lines(p) {
		if bytes.Contains(line, []byte(`msg="coap send"`)) && bytes.Contains(line, []byte("qblock2=")) {
			q.n++
		}
	}
	return len(p), nil
}

func (q *qblockRequests) count() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// qblockServer serves data as fw.bin on loopback over coap or coaps
// (DTLS-PSK, pskConfig's key), doing Q-Block2 or, like a server that
// does not know it, answering its option 4.02 Bad Option; it returns the
// URL.
func qblockServer(t *testing.T, scheme string, data []byte, withQ bool) string {
	t.Helper()
	srv, err := fileserver.New(testrig.File(t, "fw.bin", data), &fileserver.Options{NoQBlock: !withQ})
	if err != nil {
		t.Fatal(err)
	}
	if scheme == "coap" {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		coaprig.Run(t, srv, pc, nil)
		return "coap://" + pc.LocalAddr().String() + "/fw.bin"
	}
	t.Cleanup(func() { srv.Close() })
	ln, err := dtls.ListenWithOptions("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, pskServer()...)
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeDatagramListener(ln)
	return "coaps://" + ln.Addr().String() + "/fw.bin"
}

// TestQBlockDefault: with no Q-Block2 option set a coaps download asks
// with Q-Block2 and a coap one does not (RFC 9177 section 11 does not
// recommend Q-Block in the NoSec security mode); QBlock asks over coap
// too, NoQBlock over neither. A server that does Q-Block2 is asked for
// its bursts (a Continue per set: more than one request carries the
// option); one that answers 4.02 is asked with Q-Block2 once, the first
// block, and then with Block2. Every download ends with the exact bytes.
func TestQBlockDefault(t *testing.T) {
	const many = -1 // more than one request with Q-Block2: bursts were asked for
	data := testrig.Bytes(32<<10, 61)
	want := sha256.Sum256(data)
	for _, tc := range []struct {
		name    string
		scheme  string
		opts    download.Options
		serverQ bool // the server does Q-Block2
		asked   int  // requests with Q-Block2: 0, 1 (the first block's, answered 4.02) or many
	}{
		{"coaps/default", "coaps", download.Options{}, true, many},
		{"coaps/default/server-without", "coaps", download.Options{}, false, 1},
		{"coaps/QBlock", "coaps", download.Options{QBlock: true}, true, many},
		{"coaps/NoQBlock", "coaps", download.Options{NoQBlock: true}, true, 0},
		{"coap/default", "coap", download.Options{}, true, 0},
		{"coap/QBlock", "coap", download.Options{QBlock: true}, true, many},
		{"coap/QBlock/server-without", "coap", download.Options{QBlock: true}, false, 1},
		{"coap/NoQBlock", "coap", download.Options{NoQBlock: true}, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := qblockServer(t, tc.scheme, data, tc.serverQ)
			var asked qblockRequests
			opts := tc.opts
			opts.SHA256 = want[:]
			opts.Logger = slog.New(slog.NewTextHandler(&asked, &slog.HandlerOptions{Level: client.LevelTrace}))
			if tc.scheme == "coaps" {
				opts.DTLS = pskConfig()
			}
			var sink memSink
			d, err := download.Start(context.Background(), url, &sink, &opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Wait(); err != nil {
				t.Fatal(err)
			}
			if sink.sum() != want {
				t.Fatal("SHA-256 differs")
			}
			n := asked.count()
			if tc.asked == many && n <= 1 || tc.asked != many && n != tc.asked {
				t.Fatalf("%d requests with Q-Block2, want %d (-1: more than one)", n, tc.asked)
			}
		})
	}
}

// TestQBlockAndNoQBlock: asking for Q-Block2 over coap and never asking
// for it cannot both hold; Start says so before any traffic.
func TestQBlockAndNoQBlock(t *testing.T) {
	var sink memSink
	_, err := download.Start(context.Background(), "coap://127.0.0.1:9/fw.bin", &sink, &download.Options{QBlock: true, NoQBlock: true})
	if !errors.Is(err, download.ErrOptions) {
		t.Fatalf("QBlock and NoQBlock: %v, want ErrOptions", err)
	}
}

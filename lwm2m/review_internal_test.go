package lwm2m

import (
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/lwm2m/content"
)

// FuzzReviewServe is FuzzServe with seeds for what FuzzServe's corpus
// does not reach: Block1, FETCH and iPATCH composite requests, Create and
// Delete, and a bootstrap in progress.
func FuzzReviewServe(f *testing.F) {
	b1 := func(num uint32, more bool, szx uint32) coap.Option {
		v := num<<4 | szx
		if more {
			v |= 8
		}
		return uintOpt(coap.Block1, v)
	}
	cf := func(fm content.Format) coap.Option { return uintOpt(coap.ContentFormat, uint32(fm)) }
	seeds := []struct {
		m       *coap.Message
		payload string
	}{
		{request(coap.PUT, "/1/0/1", cf(content.Text), b1(0, true, 0)), "0123456789abcdef"},
		{request(coap.PUT, "/1/0/1", cf(content.Text), b1(1, false, 0)), "1"},
		{request(coap.FETCH, "", cf(content.SenMLJSON)), `[{"n":"/3/0/0"},{"n":"/1/0"}]`},
		{request(coap.FETCH, "", cf(content.SenMLJSON), uintOpt(coap.Observe, 0)), `[{"n":"/3/0/0"}]`},
		{request(coap.FETCH, "", cf(content.SenMLCBOR)), "\x81\xa1\x00\x66/3/0/0"},
		{request(coap.IPATCH, "", cf(content.SenMLJSON)), `[{"n":"/1/0/1","v":60}]`},
		{request(coap.POST, "/3", cf(content.SenMLJSON)), `[{"n":"/3/1/0","vs":"x"}]`},
		{request(coap.DELETE, "/3/0"), ""},
		{request(coap.PUT, "/3/0/13", coap.Option{ID: coap.URIQuery, Value: []byte("gt=5")}, coap.Option{ID: coap.URIQuery, Value: []byte("st=1")}), ""},
		{request(coap.POST, "/bs"), ""},
		{request(coap.PUT, "/0/1", cf(content.SenMLJSON)), `[{"n":"/0/1/0","vs":"coap://x"}]`},
	}
	for _, s := range seeds {
		s.m.Type, s.m.MessageID, s.m.Payload = coap.Confirmable, 1, []byte(s.payload)
		b, err := coap.AppendUDP(nil, s.m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
		f.Add(b, true)
	}
	c, err := New(Config{Endpoint: "fuzz", ServerURL: "coap://127.0.0.1:5683", Device: Device{Manufacturer: "m"}, MaxRequestSize: 4096})
	if err != nil {
		f.Fatal(err)
	}
	bs := &bootstrapping{finished: make(chan []*account, 1)}
	f.Fuzz(func(t *testing.T, b []byte, bootstrap bool) {
		var m coap.Message
		if coap.DecodeUDP(b, &m) != nil || m.Code == coap.Empty || m.Code>>5 != 0 {
			return
		}
		if bootstrap {
			c.bsNow.Store(bs)
			defer c.bsNow.Store(nil)
			select {
			case <-bs.finished:
			default:
			}
		}
		resp := c.serve(&m)
		if !coap.IsResponse(resp.Code) {
			t.Fatalf("answered %v", coap.CodeString(resp.Code))
		}
		if len(c.obs) > maxObservations {
			t.Fatalf("%d observations", len(c.obs))
		}
	})
}

// TestReviewFirmwareLockOrder: observe holds obsMu while it reads the
// observed path again (observe.go:66-82 -> collect -> firmwareObject.Read
// -> f.mu), and moveLocked holds f.mu while it tells observers
// (firmware.go moveLocked -> changedTo -> obsMu). An Observe of /5 that
// meets a /5 move made off the reader (downloadEnded, install: neither
// holds objCall) deadlocks both, and the client with them (the reader
// never returns; Stop waits for it). Here the move is made by Write
// called off serve, as the download's goroutine makes it; it deadlocks
// within a few hundred rounds. Not deterministic (a race between two
// goroutines), so it runs only with REVIEW_STRESS=1, in a child process
// bounded in real time.
func TestReviewFirmwareLockOrder(t *testing.T) {
	if os.Getenv("REVIEW_STRESS") == "" {
		t.Skip("a stress test: REVIEW_STRESS=1 runs it")
	}
	if os.Getenv("REVIEW_CHILD") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestReviewFirmwareLockOrder$", "-test.count=1", "-test.timeout=30s")
		cmd.Env = append(os.Environ(), "REVIEW_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			text := string(out)
			if i := strings.Index(text, "--- FAIL"); i >= 0 {
				text = text[i:min(len(text), i+300)]
			}
			t.Fatalf("child: %v\n%s", err, text)
		}
		return
	}
	c := testClient(t)
	c.firmware.writeState = func(string, []byte, os.FileMode) error { return nil } // a fast disk
	var observes, moves atomic.Int64
	stop := make(chan struct{})
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			m := request(coap.GET, "/5/0/5", uintOpt(coap.Observe, 0))
			m.Token = []byte{byte(i), byte(i >> 8)}
			c.serve(m)
			observes.Add(1)
		}
	}()
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			c.firmware.Write(0, resPackageURI, []content.Record{{Value: content.StringValue("gopher://x/y")}}) // Result 9
			c.firmware.Write(0, resPackageURI, []content.Record{{Value: content.StringValue("")}})             // Result 0
			moves.Add(1)
		}
	}()
	var lo, lm int64
	for range 10 {
		time.Sleep(300 * time.Millisecond)
		o, m := observes.Load(), moves.Load()
		if o == lo && m == lm {
			t.Fatalf("deadlock: no progress after %d Observes of /5/0/5 and %d rounds of /5 moves", o, m)
		}
		lo, lm = o, m
	}
	close(stop)
}

// TestReviewEventQueueUnbounded: every request the server sends emits an
// event, which waits in events.queue while OnEvent runs; the queue has no
// bound (events.go:28). OnEvent stuck for a while (tether device's --json
// to a pipe nobody reads, a log shipper that blocks) and a server that
// keeps asking (or anyone who can reach the port with junk: 4.0x answers
// are events too) grow the client's memory without limit. Served here
// directly, as the reader does.
func TestReviewEventQueueUnbounded(t *testing.T) {
	c := testClient(t)
	gate := make(chan struct{})
	c.events = &events{fn: func(Event) { <-gate }} // the queue an OnEvent has
	defer func() { close(gate); c.events.flush() }()
	const n = 50000
	for i := range n {
		m := request(coap.GET, "/3/0/0")
		m.MessageID = int32(i)
		c.serve(m)
	}
	c.events.mu.Lock()
	queued := len(c.events.queue)
	c.events.mu.Unlock()
	if queued > 10000 {
		t.Errorf("%d events queued behind a stuck OnEvent after %d requests; want a bound (drop, and say how many)", queued, n)
	}
}

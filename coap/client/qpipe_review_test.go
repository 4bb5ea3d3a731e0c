package client_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/client"
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/simnet"
)

// A hostile review of Q-Block2's narrow-link mode (qpipe.go): a server
// and a network that misbehave while the client asks for blocks as
// blocks come. The link is qgetNarrow's (64 kbit/s, 300 ms one way); the
// server is a qserver whose answers a test may bend.

// narrowRig is a client and a server behind a narrow link (8000 B/s, 300
// ms one way, a queue of queue bytes).
func narrowRig(t *testing.T, queue int, handle func(*coap.Message, net.Addr) [][]byte) (*client.Conn, *narrowLink) {
	r := newSimRig(t, 1, "")
	r.dev.SetLink(simnet.LinkConfig{Delay: 150 * time.Millisecond})
	r.srv.SetLink(simnet.LinkConfig{Delay: 150 * time.Millisecond})
	l := startNarrow(t, r.srv, handle, 8000, queue)
	c := r.dial(t, "udp", &client.Config{Rand: rand.New(rand.NewPCG(1, 2))})
	return c, l
}

// exactly is a chunk callback for an Unordered transfer that fails the
// test on a byte delivered twice or wrong, and counts what came.
type exactly struct {
	t    *testing.T
	body []byte
	seen []bool
	n    int
}

func newExactly(t *testing.T, body []byte) *exactly {
	return &exactly{t: t, body: body, seen: make([]bool, len(body))}
}

func (e *exactly) chunk(ch client.Chunk) error {
	for i, b := range ch.Payload {
		off := int(ch.Offset) + i
		if off >= len(e.body) || b != e.body[off] {
			e.t.Errorf("byte %d wrong", off)
			return errors.New("wrong byte")
		}
		if e.seen[off] {
			e.t.Errorf("byte %d delivered twice", off)
			return errors.New("byte twice")
		}
		e.seen[off] = true
		e.n++
	}
	return nil
}

// TestReviewQPipeDuplicatesAfterSilence: a server that goes silent once
// the client asks for blocks as blocks come, and then, after
// NON_RECEIVE_TIMEOUT has made the client ask for what is missing, replays
// a block the client has 1,000 times with the latest request's token.
// Duplicates are no progress and make no room in the window: the client
// must not answer each with a request for every missing block.
func TestReviewQPipeDuplicatesAfterSilence(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, body := testrig.RandomFile(t, "x", 60*1024, 3)
		srv := &qserver{t: t, body: body, start: time.Now()}
		var (
			mu   sync.Mutex
			tok  []byte
			from net.Addr
			reqs int
		)
		handle := func(req *coap.Message, addr net.Addr) [][]byte {
			mu.Lock()
			defer mu.Unlock()
			tok, from = bytes.Clone(req.Token), addr
			reqs++
			if reqs > 8 {
				srv.mu.Lock()
				srv.silent = true
				srv.mu.Unlock()
			}
			return srv.handle(req, addr)
		}
		c, l := narrowRig(t, 64<<10, handle)
		replayed := make(chan int, 1)
		go func() {
			// By now the server has been silent for over
			// NON_RECEIVE_TIMEOUT: the client asked for what is missing.
			time.Sleep(16 * time.Second)
			mu.Lock()
			req := &coap.Message{Type: coap.NonConfirmable, Token: tok}
			before := reqs
			for i := range 1000 {
				l.pc.WriteTo(qblockAnswer(t, req, body, 0, true, true, int32(40000+i)), from)
			}
			mu.Unlock()
			time.Sleep(time.Second)
			mu.Lock()
			n := reqs - before
			mu.Unlock()
			replayed <- n
		}()
		ex := newExactly(t, body)
		err := c.GetBlocks(context.Background(), client.BlockRequest{Path: "x", QBlock: true, Unordered: true}, ex.chunk)
		if !errors.Is(err, sock.ErrTimeout) {
			t.Errorf("%v, want a timeout", err)
		}
		if n := <-replayed; n > 2 {
			t.Errorf("1,000 duplicates drew %d requests from the client", n)
		}
	})
}

// TestReviewQPipeNoSize2: a Q-Block2 server that gives an ETag but no
// Size2 (RFC 7959 and 9177 make Size2 optional) answers a request for
// nothing the body has 4.02 Bad Option, as tether's file server and RFC
// 7959 2.2 do; the body's second last block is lost once. The client,
// asking for blocks as blocks come, must not ask past a body whose end it
// does not know: the transfer completes.
func TestReviewQPipeNoSize2(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, body := testrig.RandomFile(t, "x", 40*1024+100, 3)
		nblk := uint32((len(body) + 1023) / 1024)
		srv := &qserver{t: t, body: body, start: time.Now(), drop: map[uint32]int{nblk - 2: 1}}
		// 4.02 for a request that names no block of the body.
		handle := withoutSize2(t, srv, func(asked []uint32) bool { return slices.Min(asked) >= nblk })
		c, _ := narrowRig(t, 64<<10, handle)
		ex := newExactly(t, body)
		err := c.GetBlocks(context.Background(), client.BlockRequest{Path: "x", QBlock: true, Unordered: true}, ex.chunk)
		if err != nil || ex.n != len(body) {
			t.Fatalf("%v, %d bytes of %d; requests:\n\t%s", err, ex.n, len(body), strings.Join(srv.requests(), "\n\t"))
		}
	})
}

// TestReviewQPipeTotalLoss: every block after block 5 is lost once the
// client asks for blocks as blocks come. With nothing arriving the client
// does not go on asking for new blocks: it asks for what is missing
// NON_MAX_RETRANSMIT times after NON_RECEIVE_TIMEOUT and gives up, within
// the time those take after the last block came.
func TestReviewQPipeTotalLoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, body := testrig.RandomFile(t, "x", 120*1024, 3)
		drop := map[uint32]int{}
		for n := uint32(6); n < 120; n++ {
			drop[n] = 1 << 20
		}
		srv := &qserver{t: t, body: body, start: time.Now(), drop: drop}
		var lastBlock time.Time
		c, _ := narrowRig(t, 64<<10, srv.handle)
		ex := newExactly(t, body)
		err := c.GetBlocks(context.Background(), client.BlockRequest{Path: "x", QBlock: true, Unordered: true}, func(ch client.Chunk) error {
			lastBlock = time.Now()
			return ex.chunk(ch)
		})
		if !errors.Is(err, sock.ErrTimeout) {
			t.Fatalf("%v, want a timeout", err)
		}
		took := time.Since(lastBlock)
		reqs := srv.requests()
		fresh := newBlocks(reqs)
		var after []string
		for i, line := range reqs {
			d, _ := time.ParseDuration(strings.Fields(line)[0])
			if d-300*time.Millisecond > lastBlock.Sub(srv.start) { // sent after the last block came
				after = append(after, line)
				if len(fresh[i]) > 0 {
					t.Errorf("request %d (%s) asks for new blocks %v with nothing arriving", i, line, fresh[i])
				}
			}
		}
		// 4+8+16+32+64 s, and a few round trips of asking again by name.
		if took > 124*time.Second+10*time.Second {
			t.Errorf("gave up %v after the last block", took)
		}
		// Each block in flight asked for again by name twice at most (two
		// per request), then NON_MAX_RETRANSMIT requests.
		if len(after) > 20+4 {
			t.Errorf("%d requests after the last block came:\n\t%s", len(after), strings.Join(after, "\n\t"))
		}
	})
}

// TestReviewQPipeKeepsTheRules: an ETag, a Size2 or a block size that
// changes while blocks are asked for as blocks come ends the transfer
// with its error, having delivered only good bytes, each once.
func TestReviewQPipeKeepsTheRules(t *testing.T) {
	for how, want := range map[string]error{
		"etag":  client.ErrETagChanged,
		"size2": client.ErrSizeMismatch,
		"szx":   client.ErrBlockSize,
	} {
		synctest.Test(t, func(t *testing.T) {
			_, body := testrig.RandomFile(t, "x", 60*1024, 3)
			srv := &qserver{t: t, body: body, start: time.Now(), breakAt: 30, how: how}
			c, _ := narrowRig(t, 64<<10, srv.handle)
			ex := newExactly(t, body)
			err := c.GetBlocks(context.Background(), client.BlockRequest{Path: "x", QBlock: true, Unordered: true}, ex.chunk)
			if !errors.Is(err, want) {
				t.Fatalf("%s: %v, want %v", how, err, want)
			}
		})
	}
}

// TestReviewQPipeSometimesOneBlock: a server that answers every other
// request for several blocks with its first block only. The client,
// asking for blocks as blocks come, takes the others for lost and asks
// again: the body arrives exactly, with at most three blocks asked for
// per block that came.
func TestReviewQPipeSometimesOneBlock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, body := testrig.RandomFile(t, "x", 80*1024, 3)
		srv := &qserver{t: t, body: body, start: time.Now()}
		n := 0
		handle := func(req *coap.Message, addr net.Addr) [][]byte {
			out := srv.handle(req, addr)
			if n++; n > 3 && n%2 == 0 && len(out) > 1 {
				out = out[:1]
			}
			return out
		}
		c, _ := narrowRig(t, 64<<10, handle)
		ex := newExactly(t, body)
		err := c.GetBlocks(context.Background(), client.BlockRequest{Path: "x", QBlock: true, Unordered: true}, ex.chunk)
		if err != nil || ex.n != len(body) {
			t.Fatalf("%v, %d bytes of %d", err, ex.n, len(body))
		}
		asked := 0
		for _, line := range srv.requests() {
			asked += strings.Count(line, "QB2:")
		}
		if asked > 3*80 {
			t.Errorf("%d blocks asked for by name for 80", asked)
		}
	})
}

// TestReviewQPipeRateChanges: the link's rate falls a hundredfold, or
// rises so, a third of the way through. The transfer completes exactly
// (or, after the fall, ends with a timeout), within bounded requests.
func TestReviewQPipeRateChanges(t *testing.T) {
	for _, rate := range []int{80, 800000} {
		synctest.Test(t, func(t *testing.T) {
			_, body := testrig.RandomFile(t, "x", 40*1024, 3)
			srv := &qserver{t: t, body: body, start: time.Now()}
			var l *narrowLink
			n := 0
			handle := func(req *coap.Message, addr net.Addr) [][]byte {
				if n++; n == 12 {
					l.mu.Lock()
					l.rate = rate
					l.mu.Unlock()
				}
				return srv.handle(req, addr)
			}
			c, link := narrowRig(t, 64<<10, handle)
			l = link
			ex := newExactly(t, body)
			err := c.GetBlocks(context.Background(), client.BlockRequest{Path: "x", QBlock: true, Unordered: true}, ex.chunk)
			// A block every 13 s after the fall: NON_RECEIVE_TIMEOUT's
			// requests fill the queue with blocks asked for again, and a
			// timeout is a clear end; anything else must be the body.
			if (err != nil || ex.n != len(body)) && !(rate == 80 && errors.Is(err, sock.ErrTimeout)) {
				t.Fatalf("rate %d: %v, %d bytes of %d", rate, err, ex.n, len(body))
			}
			if r := len(srv.requests()); r > 3*40 {
				t.Errorf("rate %d: %d requests for 40 blocks", rate, r)
			}
		})
	}
}

// TestReviewQPipeCancel: a transfer cancelled while blocks are asked for
// as blocks come stops at once with context.Canceled; the bytes so far
// are right, and the Conn then fetches the rest from block 7, which the
// caller holds with those after it (Have): the transfer moves past them
// and asks for the rest, rather than asking for nothing until it times
// out.
func TestReviewQPipeCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, body := testrig.RandomFile(t, "x", 60*1024, 3)
		srv := &qserver{t: t, body: body, start: time.Now()}
		c, _ := narrowRig(t, 64<<10, srv.handle)
		ex := newExactly(t, body)
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(4*time.Second, cancel)
		start := time.Now()
		err := c.GetBlocks(ctx, client.BlockRequest{Path: "x", QBlock: true, Unordered: true}, ex.chunk)
		if !errors.Is(err, context.Canceled) || time.Since(start) > 5*time.Second {
			t.Fatalf("%v after %v, want context.Canceled at 4 s", err, time.Since(start))
		}
		held := func(off int64, n int) bool {
			for i := off; i < off+int64(n); i++ {
				if !ex.seen[i] {
					return false
				}
			}
			return true
		}
		first := srv.requests()
		err = c.GetBlocks(context.Background(), client.BlockRequest{Path: "x", QBlock: true, Unordered: true, Offset: 7 * 1024, Have: held}, ex.chunk)
		if err != nil {
			n := 0
			for _, ok := range ex.seen {
				if ok {
					n++
				}
			}
			t.Fatalf("%v (%d bytes held); first:\n\t%s\nthen:\n\t%s", err, n, strings.Join(first, "\n\t"), strings.Join(srv.requests(), "\n\t"))
		}
		for i, ok := range ex.seen[7*1024:] {
			if !ok {
				t.Fatalf("byte %d never delivered", 7*1024+i)
			}
		}
	})
}

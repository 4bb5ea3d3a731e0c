package fileserver

import (
	"context"
	"log/slog"
	"net/netip"
	"strconv"
	"time"

	"github.com/tether-iot/tether/coap"
)

// The access log (package doc, Access log). A block-wise transfer is
// stateless on the server: each block is a request of its own. So that
// the log can say how a transfer went, each serving loop (a UDP socket, a
// DTLS session, a TCP or TLS connection) keeps a small record per body it
// is serving to a client, from its first block to the line that ends it.

const (
	// transferSettle is how long, over UDP and DTLS, a transfer whose last
	// block was served waits for its line: blocks a client asks for again
	// meanwhile (lost ones, of a window or a Q-Block2 burst) count with
	// it. Over TCP and TLS nothing is lost, and the line comes at once.
	transferSettle = 2 * time.Second
	// transferIdle ends, incomplete, a transfer of which no block was
	// served for that long.
	transferIdle = time.Minute
	// maxTracked bounds the transfers one serving loop follows; past it,
	// the one served least recently ends incomplete.
	maxTracked = 4096
)

// xferKey names a transfer within its serving loop: the client (over UDP;
// a session or connection has one) and the file version served.
type xferKey struct {
	peer netip.AddrPort
	addr string
	of   *openFile
}

type xfer struct {
	remote      string
	path        string
	bytes       int64
	blocks      int
	start, last time.Time
	done        bool // the block holding the body's last byte was served
	deadline    time.Time
}

// tracker follows the transfers of one serving loop, which alone uses it.
type tracker struct {
	s        *Server
	tr       Transport
	identity string
	onePeer  bool          // a session or connection: the key ignores the peer
	settle   time.Duration // 0: a finished transfer is logged at once
	m        map[xferKey]*xfer
	next     time.Time // the earliest deadline; zero for none
}

func (s *Server) newTracker(tr Transport, identity string) *tracker {
	tk := &tracker{s: s, tr: tr, identity: identity, m: make(map[xferKey]*xfer)}
	switch tr {
	case UDP:
		tk.settle = s.settle
	case DTLS:
		tk.settle, tk.onePeer = s.settle, true
	default:
		tk.onePeer = true
	}
	return tk
}

func (tk *tracker) key(to client, of *openFile) xferKey {
	k := xferKey{of: of}
	if tk.onePeer {
		return k
	}
	k.peer = to.ap
	if to.addr != nil {
		k.addr = to.addr.String()
	}
	return k
}

// has reports whether a transfer of of to the client is in flight: what a
// draining server still serves.
func (tk *tracker) has(to client, of *openFile) bool {
	x, ok := tk.m[tk.key(to, of)]
	return ok && !x.done
}

// sent records a response about to be sent to a client: a part of the
// body of of, or an error, which is a line of its own. It is called
// before the write, so that a client holding a block finds its transfer
// in flight; ended reports that the transfer is no longer in flight, which
// the caller tells with s.transferEnded after the write, so that a
// draining Shutdown does not close the socket under the last block.
func (tk *tracker) sent(m *coap.Message, of *openFile, name []byte, to client) (ended bool) {
	s := tk.s
	switch {
	case m.Code>>5 == 4 || m.Code>>5 == 5:
		now := time.Now()
		s.logTransfer(Transfer{Transport: tk.tr, Remote: to.String(), Identity: tk.identity,
			Path: "/" + string(name), Result: codeResult(m.Code)}, now, now)
		return false
	case m.Code != coap.Content || of == nil:
		return false
	}
	s.obs.Block(tk.tr, len(m.Payload))
	now := time.Now()
	k := tk.key(to, of)
	x := tk.m[k]
	if x == nil {
		if len(tk.m) >= maxTracked {
			tk.evict()
		}
		x = &xfer{remote: to.String(), path: "/" + string(name), start: now}
		tk.m[k] = x
		s.inflight.Add(1)
	}
	x.bytes += int64(len(m.Payload))
	x.blocks++
	x.last = now
	if !x.done && lastBlock(m.Options) {
		x.done, ended = true, true
	}
	if x.done && tk.settle == 0 {
		delete(tk.m, k)
		tk.log(x)
		return ended
	}
	x.deadline = now.Add(transferIdle)
	if x.done {
		x.deadline = now.Add(tk.settle)
	}
	tk.next = earlier(tk.next, x.deadline)
	return ended
}

// lastBlock reports whether a response with a body carries its end: no
// block option (the body whole), or one whose M bit is clear.
func lastBlock(opts coap.Options) bool {
	v, ok := coap.Uint(opts, coap.Block2)
	if !ok {
		v, ok = coap.Uint(opts, coap.QBlock2)
	}
	return !ok || v&0x8 == 0
}

// sweep logs the transfers whose time is up.
func (tk *tracker) sweep(now time.Time) {
	if tk.next.IsZero() || now.Before(tk.next) {
		return
	}
	tk.next = time.Time{}
	for k, x := range tk.m {
		if now.Before(x.deadline) {
			tk.next = earlier(tk.next, x.deadline)
			continue
		}
		delete(tk.m, k)
		tk.end(x)
	}
}

// evict ends the transfer served least recently.
func (tk *tracker) evict() {
	var oldest xferKey
	var at time.Time
	for k, x := range tk.m {
		if at.IsZero() || x.last.Before(at) {
			oldest, at = k, x.last
		}
	}
	if x := tk.m[oldest]; x != nil {
		delete(tk.m, oldest)
		tk.end(x)
	}
}

// close ends every transfer: the serving loop is ending.
func (tk *tracker) close() {
	for k, x := range tk.m {
		delete(tk.m, k)
		tk.end(x)
	}
	tk.next = time.Time{}
}

// end logs a transfer that leaves the tracker, in flight or not.
func (tk *tracker) end(x *xfer) {
	if !x.done {
		tk.s.transferEnded()
	}
	tk.log(x)
}

func (tk *tracker) log(x *xfer) {
	result := "2.05"
	if !x.done {
		result = "incomplete"
	}
	tk.s.logTransfer(Transfer{Transport: tk.tr, Remote: x.remote, Identity: tk.identity, Path: x.path,
		Bytes: x.bytes, Blocks: x.blocks, Result: result}, x.start, x.last)
}

// logTransfer tells the observer and writes the access log's line.
func (s *Server) logTransfer(x Transfer, start, last time.Time) {
	x.Duration = last.Sub(start)
	s.obs.Transfer(x)
	if !s.log.Enabled(context.Background(), slog.LevelInfo) {
		return
	}
	attrs := make([]slog.Attr, 0, 8)
	attrs = append(attrs, slog.String("transport", string(x.Transport)), slog.String("remote", x.Remote))
	if x.Identity != "" {
		attrs = append(attrs, slog.String("identity", x.Identity))
	}
	attrs = append(attrs, slog.String("path", x.Path), slog.Int64("bytes", x.Bytes), slog.Int("blocks", x.Blocks),
		slog.Duration("duration", x.Duration), slog.String("result", x.Result))
	s.log.LogAttrs(context.Background(), slog.LevelInfo, "transfer", attrs...)
}

// codeResult formats a response code as the access log writes it: "4.04".
func codeResult(c coap.Code) string {
	b := strconv.AppendUint(make([]byte, 0, 4), uint64(c>>5), 10)
	b = append(b, '.', byte('0'+(c&31)/10), byte('0'+(c&31)%10))
	return string(b)
}

// transferEnded counts a transfer out of those in flight, and wakes a
// draining Shutdown.
func (s *Server) transferEnded() {
	s.inflight.Add(-1)
	select {
	case s.drainWake <- struct{}{}:
	default:
	}
}

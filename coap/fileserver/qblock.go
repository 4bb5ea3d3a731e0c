package fileserver

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/tether-iot/tether/coap"
)

// Q-Block2 (RFC 9177) over UDP and DTLS, as the package doc describes it.
// Each request is answered at once and statelessly: handle puts its first
// block in the response and the others in a qplan, which the serving loop
// sends. The only state kept per transfer is its pacing (qtransfer): which
// set comes next unasked, the last request's token, when the set is due,
// bounded to maxTransfers per socket (the least recently heard forgotten
// first). The serving loop wakes for it through the socket's read
// deadline, so pacing needs no goroutine and no lock. A transfer's pacing:
//
//	               whole body or Continue
//	  (none) ──────────────────────────► paced ───┐ the next set, unasked,
//	                                     │  ▲     │ NON_TIMEOUT_RANDOM·2^n later
//	    NON_MAX_RETRANSMIT sets unasked  │  │ ◄───┘ (n: sets since the client's last word)
//	                                     ▼  │ any request for the resource
//	                                    paused
//	                                     │ NON_PARTIAL_TIMEOUT without a word
//	                                     ▼
//	                                   (none)   also once the last set is sent, or the file changed

// maxTransfers bounds the transfers paced on one socket.
const maxTransfers = 1024

// qplan is what handle leaves for the serving loop when a request asks
// with Q-Block2: the first block is in the response; these follow.
type qplan struct {
	active bool
	of     *openFile
	szx    uint8
	rest   []uint32 // the blocks to send after the first, in increasing order
	cont   int64    // whole body or Continue: the first block of the set after those sent; -1 otherwise
	nblk   int64    // blocks in the body
}

// qkey names a transfer: the client and the resource (path and query).
type qkey struct {
	peer     netip.AddrPort
	addr     string // the peer, when the PacketConn has no netip form
	resource string
}

// qtransfer is the pacing of one Q-Block2 transfer.
type qtransfer struct {
	to         client
	req        coap.Message // a copy of the request's options, to resolve the resource again
	token      []byte
	szx        uint8
	etag       [8]byte
	next       uint32 // the first block of the next set to send unasked
	due        time.Time
	unanswered int // sets sent unasked since the client was last heard from
	heard      time.Time
	paused     bool
}

// qpacer is the pacing of every Q-Block2 transfer of one socket.
type qpacer struct {
	p     coap.NonParams
	xfers map[qkey]*qtransfer
}

// transferKey names the transfer a request belongs to.
func transferKey(to client, r *response, req *coap.Message) qkey {
	k := qkey{peer: to.ap, resource: string(r.name) + "?" + queryOf(req)}
	if to.addr != nil {
		k.addr = to.addr.String()
	}
	return k
}

// planQBlock answers a Q-Block2 request: the first block asked for goes in
// the response, the rest in r.plan. Options out of increasing order or of
// different sizes are 4.00 (RFC 9177 4.4); a request for nothing the body
// has is 4.02, as Block2's past the end is.
func (s *Server) planQBlock(req *coap.Message, r *response, lim limits, of *openFile) {
	m := &r.m
	p := &r.plan
	*p = qplan{of: of, rest: p.rest[:0], cont: -1}
	mp := uint32(s.non.MaxPayloads)
	maxBlock := min(lim.maxPayload, s.maxBlock)
	var (
		szx, asked uint8 = 255, 255
		prev       int64 = -1
		bs         int64 // the server's block size
		nblk       int64 // blocks in the body at bs
		list       = p.rest
	)
	for _, o := range req.Options {
		if o.ID != coap.QBlock2 {
			continue
		}
		blk, err := coap.ParseBlock(uintValue(o.Value), false)
		if err != nil {
			m.Code, m.Payload = coap.BadOption, append(r.payload[:0], "bad Q-Block2 value"...)
			return
		}
		if asked == 255 {
			asked, szx = blk.SZX, blk.SZX
			for szx > 0 && 16<<szx > maxBlock {
				szx--
			}
			bs = int64(16) << szx
			nblk = max(1, (of.size+bs-1)/bs)
		} else if blk.SZX != asked {
			m.Code, m.Payload = coap.BadRequest, append(r.payload[:0], "Q-Block2 options of different sizes"...)
			return
		}
		if int64(blk.Num) <= prev {
			m.Code, m.Payload = coap.BadRequest, append(r.payload[:0], "Q-Block2 options out of increasing order"...)
			return
		}
		prev = int64(blk.Num)
		start := blk.Offset() / bs
		end := start + max(1, int64(blk.Size())/bs) // a block of the size asked, in blocks of ours
		if blk.More {
			end = (start/int64(mp) + 1) * int64(mp)
			if start%int64(mp) == 0 {
				p.cont = end // the whole body (start 0) or a Continue
			}
		}
		for n := start; n < end && n < nblk && len(list) < 2*int(mp); n++ {
			if len(list) == 0 || int64(list[len(list)-1]) < n {
				list = append(list, uint32(n))
			}
		}
	}
	p.rest = list
	if len(list) == 0 {
		m.Code, m.Payload = coap.BadOption, append(r.payload[:0], "no such block"...) // RFC 7959 2.2
		p.rest = list[:0]
		return
	}
	p.active, p.szx, p.nblk = true, szx, nblk
	first := list[0]
	p.rest = list[1:]
	s.fillQBlock(r, of, first, szx)
}

// fillQBlock fills the response with block num of the body, at size szx,
// with Q-Block2, ETag and Size2 (on every block, so that any one of them
// tells the body's size).
func (s *Server) fillQBlock(r *response, of *openFile, num uint32, szx uint8) {
	blk := coap.Block{Num: num, SZX: szx}
	off := blk.Offset()
	n := int(min(int64(blk.Size()), of.size-off))
	blk.More = off+int64(n) < of.size
	s.fill(r, of, off, n, coap.QBlock2, &blk, true)
}

// uintValue decodes an option's unsigned value (at most 3 bytes here:
// checkOptions has checked the length).
func uintValue(b []byte) uint32 {
	var v uint32
	for _, c := range b {
		v = v<<8 | uint32(c)
	}
	return v
}

// The serving loop's side: sending the rest of a plan, and pacing.

// sender sends one response to one client.
type sender func(m *coap.Message, to client)

// afterQBlock sends the rest of a plan and starts, moves or wakes the
// transfer's pacing. It is called after the first block went out.
func (s *Server) afterQBlock(q *qpacer, req *coap.Message, r *response, to client, mid *uint16, send sender) {
	p := &r.plan
	for _, num := range p.rest {
		s.sendQBlock(r, p.of, num, p.szx, req.Token, to, mid, send)
	}
	now := time.Now()
	k := transferKey(to, r, req)
	x := q.xfers[k]
	if x != nil && x.paused && now.Sub(x.heard) >= q.p.PartialTimeout() {
		delete(q.xfers, k) // forgotten: this request starts afresh
		x = nil
	}
	if p.cont >= p.nblk {
		delete(q.xfers, k) // the last set is sent: nothing left to pace
		return
	}
	if x == nil && p.cont < 0 {
		return // a request for single blocks of a transfer not paced
	}
	if x == nil {
		if len(q.xfers) >= maxTransfers {
			q.evict()
		}
		x = &qtransfer{to: to}
		q.xfers[k] = x
	}
	x.heard, x.unanswered, x.paused = now, 0, false
	x.token = append(x.token[:0], req.Token...)
	x.req.Options = copyOptions(x.req.Options[:0], req.Options)
	if x.szx != p.szx && p.cont < 0 {
		// Another block size, and no Continue to say where the transfer
		// stands: the same byte, in blocks of the new size, so that
		// pacing neither sends again what went nor skips what did not.
		x.next = uint32(int64(x.next) << x.szx >> p.szx)
	}
	x.szx, x.etag = p.szx, p.of.etag
	if p.cont >= 0 {
		x.next = uint32(p.cont)
	}
	x.due = now.Add(q.p.TimeoutRandom(rand.Float64()))
}

// sendQBlock sends block num as a Non-confirmable response.
func (s *Server) sendQBlock(r *response, of *openFile, num uint32, szx uint8, token []byte, to client, mid *uint16, send sender) {
	s.fillQBlock(r, of, num, szx)
	m := &r.m
	*mid++
	m.Type, m.MessageID, m.Token = coap.NonConfirmable, int32(*mid), token
	send(m, to)
}

// fire sends the sets that are due, and returns when the next one is
// (zero: none).
func (s *Server) fire(q *qpacer, r *response, mid *uint16, send sender) time.Time {
	now := time.Now()
	var next time.Time
	for k, x := range q.xfers {
		if x.paused {
			if forget := x.heard.Add(q.p.PartialTimeout()); !forget.After(now) {
				delete(q.xfers, k)
			} else if next.IsZero() || forget.Before(next) {
				next = forget
			}
			continue
		}
		if x.due.After(now) {
			if next.IsZero() || x.due.Before(next) {
				next = x.due
			}
			continue
		}
		of, ok := s.resolve(&x.req, r, limits{wait: waitNot}, x.to)
		if !ok || of.etag != x.etag {
			delete(q.xfers, k) // gone or changed: the client learns it when it asks
			continue
		}
		bs := int64(16) << x.szx
		nblk := max(1, (of.size+bs-1)/bs)
		mp := uint32(q.p.MaxPayloads)
		for n := x.next; n < x.next+mp && int64(n) < nblk; n++ {
			s.sendQBlock(r, of, n, x.szx, x.token, x.to, mid, send)
		}
		x.next += mp
		x.unanswered++
		switch {
		case int64(x.next) >= nblk:
			delete(q.xfers, k) // all sent: what is missing is asked for, statelessly
			continue
		case x.unanswered >= q.p.NonMaxRetransmit:
			x.paused = true // the client has gone quiet: wait for it
			continue
		}
		x.due = now.Add(q.p.TimeoutRandom(rand.Float64()) << x.unanswered)
		if next.IsZero() || x.due.Before(next) {
			next = x.due
		}
	}
	return next
}

// evict forgets the transfer heard from least recently.
func (q *qpacer) evict() {
	var oldest qkey
	var at time.Time
	for k, x := range q.xfers {
		if at.IsZero() || x.heard.Before(at) {
			oldest, at = k, x.heard
		}
	}
	delete(q.xfers, oldest)
}

// queryOf joins a request's Uri-Query values, to tell apart listings with
// different filters.
func queryOf(m *coap.Message) string {
	var b []byte
	for _, o := range m.Options {
		if o.ID == coap.URIQuery {
			b = append(append(b, o.Value...), '&')
		}
	}
	return string(b)
}

// copyOptions copies options and their values into dst, which the copy
// owns.
func copyOptions(dst coap.Options, src coap.Options) coap.Options {
	for _, o := range src {
		dst = append(dst, coap.Option{ID: o.ID, Value: slices.Clone(o.Value)})
	}
	return dst
}

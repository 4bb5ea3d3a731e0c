package coaprig

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-iot/tether/coap"
)

// Requests is a log of the blocks a CoAP server over UDP is asked for: its
// Conn wraps the server's socket and records every GET request the server
// reads. A request asks for its Block2 (block 0 without one), or for what
// each of its Q-Block2 options names: one block, or with M set that block
// and the rest of its set of MAX_PAYLOADS (the file server's default, 10),
// up to the end of the body when SetSize gave its size. The sets a server
// sends unasked (Q-Block2 pacing) are not requests, and are not counted.
//
// It can also make the server slow (Delay) or hold it at a block (Hold),
// so that a test interrupts a download where it wants, however fast the
// machine. The log outlives the sockets it wraps: a restarted server keeps
// its count.
type Requests struct {
	// Delay is how long every datagram the server sends waits first.
	// Set it before the server starts.
	Delay time.Duration

	hold atomic.Int64 // see Hold

	mu    sync.Mutex
	m     coap.Message   // the request being logged
	size  int            // the body's size, see SetSize
	gets  int            // GET requests read
	order []coap.Block   // every Block2 or Q-Block2 asked for, in order
	count map[uint32]int // block number -> times asked
}

// SetSize gives the size of the body the server serves, where a Q-Block2
// set asked for ends; 0, the default, leaves sets whole.
func (r *Requests) SetSize(n int) {
	r.mu.Lock()
	r.size = n
	r.mu.Unlock()
}

// Hold holds the server at byte offset off: from now on a GET that asks
// for a block starting at or past off goes unread by the server (it is
// logged all the same), until Hold(0) serves every request again.
func (r *Requests) Hold(off int64) { r.hold.Store(off) }

// Conn returns pc recording into r, for the server to read and write.
func (r *Requests) Conn(pc net.PacketConn) net.PacketConn {
	return &requestsConn{PacketConn: pc, r: r}
}

// GETs returns how many GET requests the server read, one however many
// blocks it asked for.
func (r *Requests) GETs() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gets
}

// Asked returns how many times block num was asked for.
func (r *Requests) Asked(num uint32) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count[num]
}

// Total returns how many blocks were asked for, a block asked for twice
// counting twice.
func (r *Requests) Total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, k := range r.count {
		n += k
	}
	return n
}

// Refetched returns how many times a block was asked for again, and how
// many blocks were asked for at all.
func (r *Requests) Refetched() (again, blocks int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.count {
		again += n - 1
	}
	return again, len(r.count)
}

// Mark returns a position in the log, for Since.
func (r *Requests) Mark() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.order)
}

// Since returns the Block2 and Q-Block2 values asked for since mark, in
// the order the server read them.
func (r *Requests) Since(mark int) []coap.Block {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]coap.Block(nil), r.order[mark:]...)
}

// record logs the datagram b if it is a GET request, and returns the
// offset of the first block it asks for; false if it is none.
func (r *Requests) record(b []byte) (int64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := &r.m
	if coap.DecodeUDP(b, m) != nil || m.Code != coap.GET {
		return 0, false
	}
	if r.count == nil {
		r.count = make(map[uint32]int)
	}
	r.gets++
	first := int64(-1)
	set := uint32(coap.NonParams{}.WithDefaults().MaxPayloads)
	for _, o := range m.Options {
		if o.ID != coap.QBlock2 {
			continue
		}
		blk, _ := coap.ParseBlock(optUint(o.Value), false)
		r.order = append(r.order, blk)
		if first < 0 {
			first = blk.Offset()
		}
		end := blk.Num + 1
		if blk.More {
			end = (blk.Num/set + 1) * set
		}
		if r.size > 0 { // not past the end of the body
			end = min(end, uint32((r.size+blk.Size()-1)/blk.Size()))
		}
		for num := blk.Num; num < end; num++ {
			r.count[num]++
		}
	}
	if first >= 0 {
		return first, true
	}
	v, _ := coap.Uint(m.Options, coap.Block2)
	blk, _ := coap.ParseBlock(v, false)
	r.count[v>>4]++
	r.order = append(r.order, blk)
	return blk.Offset(), true
}

func optUint(b []byte) uint32 {
	var v uint32
	for _, c := range b {
		v = v<<8 | uint32(c)
	}
	return v
}

// requestsConn is a server's socket that logs into r.
type requestsConn struct {
	net.PacketConn
	r *Requests
}

func (c *requestsConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, from, err := c.PacketConn.ReadFrom(b)
		if err != nil {
			return n, from, err
		}
		off, get := c.r.record(b[:n])
		if hold := c.r.hold.Load(); !get || hold == 0 || off < hold {
			return n, from, nil
		}
	}
}

func (c *requestsConn) WriteTo(b []byte, to net.Addr) (int, error) {
	if c.r.Delay > 0 {
		time.Sleep(c.r.Delay)
	}
	return c.PacketConn.WriteTo(b, to)
}

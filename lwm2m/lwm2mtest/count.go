package lwm2mtest

import (
	"net"
	"net/netip"
	"sync"
)

// countingConn counts the datagrams and bytes that cross a PacketConn, in
// all and per remote address; an address is tagged with the endpoint that
// registered from it, so an endpoint's traffic can be summed.
type countingConn struct {
	net.PacketConn
	max int // addresses counted one by one; more count in the totals only

	mu     sync.Mutex
	total  counts
	byAddr map[netip.AddrPort]*counts
}

type counts struct {
	ep          string // the endpoint the address belongs to, if known
	dgIn, dgOut int
	bIn, bOut   int64
}

func newCountingConn(pc net.PacketConn, max int) *countingConn {
	return &countingConn{PacketConn: pc, max: max, byAddr: make(map[netip.AddrPort]*counts)}
}

// ReadFrom implements net.PacketConn.
func (c *countingConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := c.PacketConn.ReadFrom(b)
	if err == nil {
		c.count(addr, func(k *counts) { k.dgIn++; k.bIn += int64(n) })
	}
	return n, addr, err
}

// WriteTo implements net.PacketConn. The datagram is counted before it
// is sent, so that the receiver never sees it before the counters do; a
// failed send is taken back.
func (c *countingConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	c.count(addr, func(k *counts) { k.dgOut++; k.bOut += int64(len(b)) })
	n, err := c.PacketConn.WriteTo(b, addr)
	if err != nil {
		c.count(addr, func(k *counts) { k.dgOut--; k.bOut -= int64(len(b)) })
	}
	return n, err
}

func (c *countingConn) count(addr net.Addr, f func(*counts)) {
	key, ok := addrKey(addr)
	c.mu.Lock()
	defer c.mu.Unlock()
	f(&c.total)
	if !ok {
		return
	}
	k := c.byAddr[key]
	if k == nil {
		if len(c.byAddr) >= c.max {
			return
		}
		k = &counts{}
		c.byAddr[key] = k
	}
	f(k)
}

// tag records that addr is ep's.
func (c *countingConn) tag(addr net.Addr, ep string) {
	key, ok := addrKey(addr)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if k := c.byAddr[key]; k != nil {
		k.ep = ep
	}
}

func (c *countingConn) totals() (int, int, int64, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total.dgIn, c.total.dgOut, c.total.bIn, c.total.bOut
}

// endpoint sums the counts of the addresses tagged with ep.
func (c *countingConn) endpoint(ep string) (din, dout int, bin, bout int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range c.byAddr {
		if k.ep == ep {
			din, dout, bin, bout = din+k.dgIn, dout+k.dgOut, bin+k.bIn, bout+k.bOut
		}
	}
	return
}

package coap

// Dedup remembers the last messages received from one peer by message ID,
// so that a duplicate (RFC 7252 4.5) is answered as the original was
// rather than processed twice: a confirmable response acknowledged is
// acknowledged again, a request answered gets the same answer. It holds a
// fixed number of entries, the oldest overwritten first: RFC 7252 asks to
// remember an ID for EXCHANGE_LIFETIME, and its owner sizes the cache for
// what a peer sends in that time. The client and coap/peer use it.
type Dedup struct {
	ids   []uint16
	kinds []DedupKind
	wires [][]byte
	next  int
}

// DedupKind says what a remembered message ID was; an ID is looked up
// under one kind.
type DedupKind uint8

const (
	// DedupAcked is a confirmable message this side acknowledged (a
	// separate response, a notification).
	DedupAcked DedupKind = 1 + iota
	// DedupAnswered is a request this side answered, with the reply kept
	// (nil for a non-confirmable request, which is not answered twice).
	DedupAnswered
)

// NewDedup returns a cache of n entries.
func NewDedup(n int) *Dedup {
	return &Dedup{ids: make([]uint16, n), kinds: make([]DedupKind, n), wires: make([][]byte, n)}
}

// Add remembers mid as kind, with the reply given to it (or nil).
func (d *Dedup) Add(mid uint16, kind DedupKind, reply []byte) {
	d.ids[d.next], d.kinds[d.next], d.wires[d.next] = mid, kind, reply
	d.next = (d.next + 1) % len(d.ids)
}

// Get reports whether mid is remembered as kind, and the reply kept.
func (d *Dedup) Get(mid uint16, kind DedupKind) ([]byte, bool) {
	for i, id := range d.ids {
		if id == mid && d.kinds[i] == kind {
			return d.wires[i], true
		}
	}
	return nil, false
}

// Has reports whether mid is remembered as kind.
func (d *Dedup) Has(mid uint16, kind DedupKind) bool {
	_, ok := d.Get(mid, kind)
	return ok
}

package coap

// Dedup remembers the last messages received from one peer by message ID,
// so that a duplicate (RFC 7252 4.5) is answered as the original was
// rather than processed twice: a confirmable response acknowledged is
// acknowledged again, a request answered gets the same answer. It holds at
// most a fixed number of entries, the oldest overwritten first: RFC 7252
// asks to remember an ID for EXCHANGE_LIFETIME, and its owner sizes the
// cache for what a peer sends in that time. It grows to that size as
// messages come, so an idle peer of a hundred thousand costs next to
// nothing. The client and coap/peer use it.
type Dedup struct {
	ids   []uint16
	kinds []DedupKind
	wires [][]byte
	size  int // the most entries kept
	next  int // where the next entry goes once the cache is full
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
func NewDedup(n int) *Dedup { return &Dedup{size: max(n, 1)} }

// Add remembers mid as kind, with the reply given to it (or nil).
func (d *Dedup) Add(mid uint16, kind DedupKind, reply []byte) {
	if len(d.ids) < d.size {
		d.ids, d.kinds, d.wires = append(d.ids, mid), append(d.kinds, kind), append(d.wires, reply)
		return
	}
	d.ids[d.next], d.kinds[d.next], d.wires[d.next] = mid, kind, reply
	d.next = (d.next + 1) % d.size
}

// Get reports whether mid is remembered as kind, and the reply kept.
func (d *Dedup) Get(mid uint16, kind DedupKind) ([]byte, bool) {
	if d == nil {
		return nil, false // a nil Dedup remembers nothing
	}
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

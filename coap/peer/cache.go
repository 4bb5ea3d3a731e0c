package peer

import "bytes"

// cacheSize bounds what a Peer remembers of the other side's messages. RFC
// 7252 asks to remember a message ID for EXCHANGE_LIFETIME (247 s); a
// device's server sends a handful of requests in that time, so the last 32
// cover it with room to spare, in a fixed amount of memory per Peer.
const cacheSize = 32

// replyCache remembers the answers given to the last requests, by message
// ID, so a retransmitted request is answered again rather than run twice;
// and the message IDs of separate responses already acknowledged.
type replyCache struct {
	ids   [cacheSize]uint16
	wires [cacheSize][]byte
	kind  [cacheSize]uint8 // 0 unused, 1 reply, 2 ack of a separate response
	next  int
}

func (c *replyCache) find(mid uint16, kind uint8) int {
	for i := range c.ids {
		if c.kind[i] == kind && c.ids[i] == mid {
			return i
		}
	}
	return -1
}

// get returns the reply to the request mid, if it was answered (a nil
// reply: a non-confirmable request, which is not answered twice).
func (c *replyCache) get(mid uint16) ([]byte, bool) {
	if i := c.find(mid, 1); i >= 0 {
		return c.wires[i], true
	}
	return nil, false
}

func (c *replyCache) put(mid uint16, wire []byte) { c.store(mid, wire, 1) }

func (c *replyCache) ack(mid uint16) { c.store(mid, nil, 2) }

func (c *replyCache) acked(mid uint16) bool { return c.find(mid, 2) >= 0 }

func (c *replyCache) store(mid uint16, wire []byte, kind uint8) {
	c.ids[c.next], c.wires[c.next], c.kind[c.next] = mid, wire, kind
	c.next = (c.next + 1) % cacheSize
}

// nonRing remembers the tokens of the last non-confirmable messages sent,
// by message ID, so a Reset of one reaches Config.OnReset.
type nonRing struct {
	ids    [cacheSize]uint16
	tokens [cacheSize][]byte
	used   [cacheSize]bool
	next   int
}

func (r *nonRing) add(mid uint16, token []byte) {
	r.ids[r.next], r.tokens[r.next], r.used[r.next] = mid, append(r.tokens[r.next][:0], token...), true
	r.next = (r.next + 1) % cacheSize
}

func (r *nonRing) token(mid uint16) ([]byte, bool) {
	for i := range r.ids {
		if r.used[i] && r.ids[i] == mid {
			return bytes.Clone(r.tokens[i]), true
		}
	}
	return nil, false
}

func (r *nonRing) remove(mid uint16) {
	for i := range r.ids {
		if r.used[i] && r.ids[i] == mid {
			r.used[i] = false
		}
	}
}

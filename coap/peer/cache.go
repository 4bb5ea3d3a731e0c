package peer

import "bytes"

// cacheSize bounds what a Peer remembers of the other side's messages (the
// answers given to its last requests and the separate responses
// acknowledged, in a coap.Dedup) and of its own non-confirmable ones. RFC
// 7252 asks to remember a message ID for EXCHANGE_LIFETIME (247 s); a
// device's server sends a handful of requests in that time, so the last 32
// cover it with room to spare, in a bounded amount of memory per Peer
// that grows only as messages come.
const cacheSize = 32

// nonRing remembers the tokens of the last non-confirmable messages sent,
// by message ID, so a Reset of one reaches Config.OnReset.
type nonRing struct {
	ids    []uint16 // up to cacheSize, grown as messages are sent
	tokens [][]byte
	used   []bool
	next   int
}

func (r *nonRing) add(mid uint16, token []byte) {
	if len(r.ids) < cacheSize {
		r.ids, r.tokens, r.used = append(r.ids, mid), append(r.tokens, bytes.Clone(token)), append(r.used, true)
		return
	}
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

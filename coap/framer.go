package coap

import "errors"

// Framer splits a CoAP-over-TCP byte stream into frames, with a fixed
// buffer: a frame longer than the limit is refused before it is read.
//
//	for {
//		ok, err := f.Next(&m)
//		if ok { ... use m until the next call ... }
//		n, err := conn.Read(f.Space())
//		f.Advance(n)
//	}
type Framer struct {
	buf   []byte
	r, w  int // unread bytes are buf[r:w]
	limit int
}

// NewFramer returns a Framer for frames of at most limit bytes.
func NewFramer(limit int) *Framer {
	return &Framer{buf: make([]byte, limit+4096), limit: limit}
}

// Next decodes the next complete frame into m, which then aliases the
// Framer's buffer until the next call to Space. It reports false when more
// bytes are needed; a malformed or oversized frame is an error after which
// the stream cannot be resynchronised.
func (f *Framer) Next(m *Message) (bool, error) {
	if f.w == f.r {
		return false, nil
	}
	n, err := DecodeTCP(f.buf[f.r:f.w], m, f.limit)
	if errors.Is(err, ErrShortFrame) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	f.r += n
	return true, nil
}

// Space returns where to read the next bytes of the stream into, moving
// unread bytes to the front when the buffer's tail runs short.
func (f *Framer) Space() []byte {
	if f.r == f.w {
		f.r, f.w = 0, 0
	} else if len(f.buf)-f.w < 4096 {
		f.w = copy(f.buf, f.buf[f.r:f.w])
		f.r = 0
	}
	return f.buf[f.w:]
}

// Buffered returns how many bytes of the stream are held and not yet
// decoded: the start of a frame, or frames not yet asked for with Next.
func (f *Framer) Buffered() int { return f.w - f.r }

// Reset drops what the Framer holds, to start on another stream.
func (f *Framer) Reset() { f.r, f.w = 0, 0 }

// Advance records n bytes read into the slice Space returned.
func (f *Framer) Advance(n int) { f.w += n }

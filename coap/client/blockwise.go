package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/sock"
)

// Errors of a block-wise transfer. Each is permanent (sock.IsPermanent):
// the server broke the rules of the transfer, and asking again the same way
// would not make it keep them.
var (
	// ErrETagChanged reports a block whose ETag differs from the first
	// block's, or that has none where the first had one: the resource
	// changed, and blocks of two versions must never be mixed. (Across
	// transfers, a resumed download compares the first block's ETag with
	// the one it saved.)
	ErrETagChanged = sock.Permanent(errors.New("coap: ETag changed during the transfer"))
	// ErrUnexpectedBlock reports a response for another block than asked.
	ErrUnexpectedBlock = sock.Permanent(errors.New("coap: response carries another block than requested"))
	// ErrBlockSize reports a block larger than negotiated, a short block
	// that claims more follow, or a server that raised the block size.
	ErrBlockSize = sock.Permanent(errors.New("coap: block of the wrong size"))
	// ErrSizeMismatch reports a body that runs past, or stops short of, the
	// size the server announced with Size2.
	ErrSizeMismatch = sock.Permanent(errors.New("coap: body does not match the announced Size2"))
)

// BlockRequest describes a block-wise GET (RFC 7959 Block2).
type BlockRequest struct {
	// Path is the resource path ("/fw/image.bin").
	Path string
	// Offset is the first byte wanted: the bytes a resumed download
	// already has. Any offset works: the transfer asks for the block that
	// contains it and delivers from the exact byte.
	Offset int64
	// BlockSize is the size to ask for, 16..1024 (default 1024). The
	// server may answer with a smaller one, at the start or later, which
	// the transfer then uses (Chunk.Block says which). Over TCP with a
	// peer that offers BERT, 1024 asks for BERT blocks.
	BlockSize int
	// Host, when set, is sent as Uri-Host: the host name of the URL when it
	// is not an IP literal (RFC 7252 6.4), for a server with virtual hosts.
	Host string
	// Query are the Uri-Query options, in order: the URL's query split at
	// "&" and percent-decoded.
	Query []string
	// Window, above 1, keeps that many block requests outstanding over
	// UDP once the first block has told the block size and the body's
	// Size2 (a server that sends no Size2 is asked in lockstep). Each is a
	// confirmable exchange with its own retransmissions; blocks are
	// delivered in order. RFC 7252 4.7 sets NSTART to 1 unless the
	// client knows the server and the path can take more, so it is off
	// by default: a window is for servers you run, on long round trips.
	// Ignored over TCP, where BERT does the same. At most MaxWindow.
	Window int
	// QBlock asks with Q-Block2 (RFC 9177) over UDP: the first block in
	// a confirmable exchange, which tells whether the server does
	// Q-Block2, then the rest in bursts of Non-confirmable responses,
	// asking only for what is missing (see Config.QBlock). A server that
	// answers 4.02 Bad Option or with Block2 is asked with Block2, in
	// lockstep or with the Window. Ignored over TCP.
	QBlock bool
	// Unordered, with QBlock, hands each block to the callback as it
	// arrives, in any order, each byte once: for a destination that
	// writes at offsets. Otherwise blocks that arrive early wait in
	// memory (at most four bursts' worth) and are delivered in order.
	Unordered bool
	// Have, with QBlock and Unordered, reports the blocks the caller
	// holds already past Offset (from an earlier transfer of the same
	// resource, with the same ETag): those are neither asked for nor
	// delivered. It is called with each block's offset and size.
	Have func(off int64, n int) bool
}

// Chunk is one block of a transfer, handed to the callback. Its slices
// alias the Conn's buffers and are valid only during the call.
type Chunk struct {
	Offset  int64      // where Payload belongs in the body
	Block   coap.Block // as the server sent it; Payload may start inside it (the first one of a transfer)
	Payload []byte
	ETag    []byte // nil when the server sent none
	Size2   int64  // the body's size as announced so far; -1 if unknown
	More    bool   // more blocks follow
}

// GetBlocks fetches a resource block by block from req.Offset to its end,
// calling fn with each block in order (with req.Unordered, a Q-Block2
// transfer calls it as blocks arrive, each byte once); the bytes before
// req.Offset are never delivered, so in order the chunks follow each other
// byte for byte. It stops
// at the first error: fn's, an exchange's, a response other than 2.05
// Content (a *ResponseError), or a block that breaks the transfer's rules
// (ErrETagChanged, ErrUnexpectedBlock, ErrBlockSize, ErrSizeMismatch). A
// server that ignores Block2 and sends the whole body is handled: the part
// before req.Offset is skipped.
func (c *Conn) GetBlocks(ctx context.Context, req BlockRequest, fn func(Chunk) error) error {
	size := req.BlockSize
	if size == 0 {
		size = 1024
	}
	szx, err := coap.SZXFor(size)
	if err != nil {
		return err
	}
	if req.Offset < 0 {
		return fmt.Errorf("%w: negative offset %d", coap.ErrBadBlock, req.Offset)
	}
	bert := c.stream && c.peerBERT
	if bert && szx == 6 {
		szx = coap.BERT
	}
	path := splitPath(req.Path)
	c.host, c.query = nil, c.query[:0] // as option values, made once per transfer
	if req.Host != "" {
		c.host = []byte(req.Host)
	}
	for _, q := range req.Query {
		c.query = append(c.query, []byte(q))
	}
	var etag []byte // the first block's: every later one must carry it
	var size2 int64 = -1
	want := req.Offset // the first byte not delivered yet
	offset := want - want%int64(size)
	qblock := req.QBlock && !c.stream
	for first := true; ; first = false {
		blockSize := int64(coap.Block{SZX: szx}.Size())
		num := offset / blockSize
		if num > coap.MaxBlockNum {
			return fmt.Errorf("%w: offset %d is past the largest block number", coap.ErrBadBlock, offset)
		}
		id := coap.Block2
		if first && qblock {
			id = coap.QBlock2 // M unset: this block only, as a test of the server
		}
		m := c.buildGet(path, id, coap.Block{Num: uint32(num), SZX: szx}, first)
		sent := time.Now()
		resp, err := c.Do(ctx, m)
		if err != nil {
			return err
		}
		if id == coap.QBlock2 {
			if _, ok := coap.Bytes(resp.Options, coap.QBlock2); ok && resp.Code == coap.Content {
				return c.getQBlock(ctx, &req, path, szx, offset, resp, time.Since(sent), fn)
			}
			if resp.Code == coap.BadOption {
				// The server does not do Q-Block2 (RFC 9177 4.1): Block2.
				c.log.Debug("coap: no Q-Block2 at the server; Block2", "path", req.Path)
				qblock = false
				m = c.buildGet(path, coap.Block2, coap.Block{Num: uint32(num), SZX: szx}, true)
				if resp, err = c.Do(ctx, m); err != nil {
					return err
				}
			}
		}
		blk, hasBlock, err := checkResponse(resp, &etag, &size2, first, offset, c.stream, coap.Block2)
		if err != nil {
			return err
		}
		tag, hasTag := coap.Bytes(resp.Options, coap.ETag)
		ch := Chunk{ETag: tag, Size2: size2}
		if !hasTag {
			ch.ETag = nil
		}
		if !hasBlock {
			// The whole body in one response: skip what we have.
			body := resp.Payload
			if int64(len(body)) < want {
				return fmt.Errorf("%w: whole body of %d bytes, resuming at %d", ErrSizeMismatch, len(body), want)
			}
			ch.Offset, ch.Payload = want, body[want:]
			if size2 >= 0 && int64(len(body)) != size2 {
				return fmt.Errorf("%w: %d bytes, Size2 %d", ErrSizeMismatch, len(body), size2)
			}
			return fn(ch)
		}
		if err := checkBlockEnd(blk, szx, offset, len(resp.Payload), size2); err != nil {
			return err
		}
		szx = blk.SZX
		end := offset + int64(len(resp.Payload))
		if !blk.More && end < want {
			return fmt.Errorf("%w: the body ends at %d, resuming at %d", ErrSizeMismatch, end, want)
		}
		if end > want { // a smaller block than asked may end before the first byte wanted
			ch.Offset, ch.Block, ch.Payload, ch.More = want, blk, resp.Payload[want-offset:], blk.More
			if err := fn(ch); err != nil {
				return err
			}
			want = end
		}
		if !blk.More {
			return nil
		}
		offset = end
		if first && req.Window > 1 && !c.stream && size2 >= 0 {
			st := windowState{path: path, szx: szx, etag: etag, size2: size2, want: want}
			err := c.getWindow(ctx, &st, min(req.Window, MaxWindow), fn)
			if !errors.Is(err, errSizeChanged) {
				return err
			}
			// The server changed its block size: on in lockstep, from the
			// block (of the old size, and so of every smaller one) that
			// holds the first byte not delivered; st.want is inside a block
			// when the window delivered nothing of a resumed transfer.
			want = st.want
			offset = want - want%int64(coap.Block{SZX: szx}.Size())
		}
	}
}

// checkResponse checks a response of a block-wise GET, for the block at
// offset, against what the transfer knows: a 2.05, the same Size2 as
// before (recorded when first announced), the same ETag (recorded from
// the first block when the request gave none). It returns the Block2
// option; ok is false when the server sent the whole body instead.
func checkResponse(resp *coap.Message, etag *[]byte, size2 *int64, first bool, offset int64, bert bool, id coap.OptionID) (blk coap.Block, ok bool, err error) {
	if resp.Code != coap.Content {
		return blk, false, responseError(resp)
	}
	if v, ok := coap.Uint(resp.Options, coap.Size2); ok {
		if *size2 >= 0 && int64(v) != *size2 {
			return blk, false, fmt.Errorf("%w: Size2 %d, then %d at offset %d", ErrSizeMismatch, *size2, v, offset)
		}
		*size2 = int64(v)
	}
	tag, hasTag := coap.Bytes(resp.Options, coap.ETag)
	if first && *etag == nil && hasTag {
		*etag = append([]byte(nil), tag...)
	}
	if *etag != nil && !bytes.Equal(tag, *etag) {
		return blk, false, fmt.Errorf("%w: %x, then %x at offset %d", ErrETagChanged, *etag, tag, offset)
	}
	return coap.GetBlock(resp.Options, id, bert)
}

// checkBlockEnd is checkBlock, and then where the block ends against the
// announced Size2 (-1: none).
func checkBlockEnd(blk coap.Block, asked uint8, offset int64, n int, size2 int64) error {
	if err := checkBlock(blk, asked, offset, n); err != nil {
		return err
	}
	if end := offset + int64(n); size2 >= 0 && (end > size2 || (!blk.More && end != size2)) {
		return fmt.Errorf("%w: block %v ends at %d, Size2 %d", ErrSizeMismatch, blk, end, size2)
	}
	return nil
}

// checkBlock verifies a Block2 response against the request.
func checkBlock(blk coap.Block, asked uint8, offset int64, n int) error {
	switch {
	case blk.SZX == coap.BERT && asked != coap.BERT:
		return fmt.Errorf("%w: BERT block to a non-BERT request", ErrBlockSize)
	case blk.SZX != coap.BERT && blk.SZX > asked:
		return fmt.Errorf("%w: server raised the block size to %d", ErrBlockSize, blk.Size())
	case blk.Offset() != offset:
		return fmt.Errorf("%w: block %v (offset %d), asked for offset %d", ErrUnexpectedBlock, blk, blk.Offset(), offset)
	}
	size := blk.Size()
	switch {
	case blk.SZX == coap.BERT && blk.More && (n == 0 || n%1024 != 0):
		return fmt.Errorf("%w: BERT block %v of %d bytes", ErrBlockSize, blk, n)
	case blk.SZX != coap.BERT && n > size:
		return fmt.Errorf("%w: block %v carries %d bytes", ErrBlockSize, blk, n)
	case blk.SZX != coap.BERT && blk.More && n != size:
		return fmt.Errorf("%w: block %v carries %d bytes and says more follow", ErrBlockSize, blk, n)
	}
	return nil
}

// buildGet fills the Conn's request message for one block, asked for with
// option id (Block2 or Q-Block2).
func (c *Conn) buildGet(path [][]byte, id coap.OptionID, blk coap.Block, askSize bool) *coap.Message {
	m := &c.req
	m.Code, m.Token, m.Payload = coap.GET, nil, nil
	m.Options = m.Options[:0]
	if c.host != nil {
		m.Options = m.Options.Add(coap.Option{ID: coap.URIHost, Value: c.host})
	}
	for _, seg := range path {
		m.Options = m.Options.Add(coap.Option{ID: coap.URIPath, Value: seg})
	}
	for _, q := range c.query {
		m.Options = m.Options.Add(coap.Option{ID: coap.URIQuery, Value: q})
	}
	m.Options, c.optBuf = coap.AppendUint(m.Options, c.optBuf[:0], id, blk.Value())
	if askSize {
		m.Options, c.optBuf = coap.AppendUint(m.Options, c.optBuf, coap.Size2, 0)
	}
	return m
}

func splitPath(p string) [][]byte {
	var out [][]byte
	for _, seg := range strings.Split(strings.Trim(p, "/"), "/") {
		if seg != "" {
			out = append(out, []byte(seg))
		}
	}
	return out
}

func diagnostic(m *coap.Message) string {
	if len(m.Payload) > 128 {
		return string(m.Payload[:128]) + "..."
	}
	return string(m.Payload)
}

package client

import (
	"errors"
	"strings"

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

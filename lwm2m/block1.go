package lwm2m

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"github.com/tether-iot/tether/coap"
)

// DefaultMaxRequestSize is Config.MaxRequestSize's default: 64 KiB, far
// more than a Write of the client's objects needs.
const DefaultMaxRequestSize = 64 << 10

// block1 reassembles a request the server sends block by block (RFC 7959
// Block1, LwM2M 1.1 6.3.3 for a Write larger than a datagram): one at a
// time, in order, up to Config.MaxRequestSize. It is touched only with
// c.objCall held (serve's), one request at a time.
type block1 struct {
	key  string // what identifies the request across its blocks
	next uint32 // the block number expected next
	szx  uint8
	body []byte
}

// block1Key is what the blocks of one request share (RFC 7959 2.5: the
// same endpoint and the same request, less its Block1 and message ID):
// the method and every option but Block1 and Size1, which may vary.
func block1Key(req *coap.Message) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%d", req.Code)
	for _, o := range req.Options {
		if o.ID == coap.Block1 || o.ID == coap.Size1 {
			continue
		}
		fmt.Fprintf(&b, "|%d=%x", o.ID, o.Value)
	}
	return b.String()
}

// reassemble takes a request with a Block1 option. It returns either the
// answer to send now (2.31 Continue for a block that more follow, 4.08
// for a block out of order, 4.13 beyond the bound, 4.00 for a malformed
// option), or, with the last block, the whole request to serve and the
// Block1 option its answer carries.
func (c *Client) reassemble(req *coap.Message) (whole *coap.Message, echo coap.Option, answer *coap.Message) {
	blk, _, err := coap.GetBlock(req.Options, coap.Block1, false)
	if err != nil {
		return nil, coap.Option{}, &coap.Message{Code: coap.BadRequest, Payload: []byte(err.Error())}
	}
	limit := c.cfg.MaxRequestSize
	tooLarge := func() *coap.Message {
		c.b1 = nil
		var opts optionList
		opts.uint(coap.Size1, uint32(limit))
		return &coap.Message{Code: coap.RequestEntityTooLarge, Options: opts.sorted()}
	}
	if size1, ok := coap.Uint(req.Options, coap.Size1); ok && int64(size1) > int64(limit) {
		return nil, coap.Option{}, tooLarge()
	}
	key := block1Key(req)
	t := c.b1
	if blk.Num == 0 {
		t = &block1{key: key, szx: blk.SZX}
		c.b1 = t
	}
	if t == nil || t.key != key || blk.Num != t.next || blk.SZX != t.szx && blk.Num > 0 {
		// Not the block that comes next of the request in progress (RFC
		// 7959 2.9.2: 4.08 Request Entity Incomplete).
		return nil, coap.Option{}, &coap.Message{Code: coap.RequestEntityIncomplete}
	}
	if blk.More && len(req.Payload) != blk.Size() {
		return nil, coap.Option{}, &coap.Message{Code: coap.BadRequest, Payload: []byte("a block that more follow must be whole")}
	}
	if len(t.body)+len(req.Payload) > limit {
		return nil, coap.Option{}, tooLarge()
	}
	t.body = append(t.body, req.Payload...)
	t.next++
	var opts optionList
	opts.uint(coap.Block1, blk.Value())
	echo = opts[0]
	if blk.More {
		return nil, coap.Option{}, &coap.Message{Code: coap.Continue, Options: coap.Options{echo}}
	}
	c.b1 = nil
	whole = &coap.Message{Code: req.Code, Type: req.Type, MessageID: req.MessageID, Token: req.Token, Payload: t.body}
	whole.Options = slices.DeleteFunc(slices.Clone(req.Options), func(o coap.Option) bool { return o.ID == coap.Block1 || o.ID == coap.Size1 })
	return whole, echo, nil
}

// blockSize is the Block1 block size a Register or Update that does not
// fit one datagram is sent in.
const blockSize = 1024

// doBlockwise sends a request, block by block (RFC 7959 Block1, LwM2M 1.1
// 6.2.1 for a Register whose object links do not fit) when its payload is
// larger than a block: every block but the last must be answered 2.31
// Continue; the last block's answer is the request's.
func (c *Client) doBlockwise(ctx context.Context, req *coap.Message) (*coap.Message, error) {
	if len(req.Payload) <= blockSize {
		return c.conn.p.Do(ctx, req)
	}
	body := req.Payload
	szx, _ := coap.SZXFor(blockSize)
	for num := 0; ; num++ {
		off := num * blockSize
		end := min(off+blockSize, len(body))
		more := end < len(body)
		var opts optionList
		opts = append(opts, req.Options...)
		opts.uint(coap.Block1, coap.Block{Num: uint32(num), More: more, SZX: szx}.Value())
		if num == 0 {
			opts.uint(coap.Size1, uint32(len(body)))
		}
		part := &coap.Message{Code: req.Code, Options: opts.sorted(), Payload: body[off:end]}
		resp, err := c.conn.p.Do(ctx, part)
		if err != nil || !more {
			return resp, err
		}
		if resp.Code != coap.Continue {
			return resp, nil // refused midway: the answer says why
		}
	}
}

package lwm2m

import (
	"bytes"
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

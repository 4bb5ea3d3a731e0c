package lwm2mtest

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/tether-iot/tether/coap"
)

// maxBlock1Body bounds a request a device sends block by block (a
// Register of many object links).
const maxBlock1Body = 1 << 20

// block1 is a request a device is sending block by block (RFC 7959
// Block1): the blocks so far, in order.
type block1 struct {
	key  string
	next uint32
	body []byte
}

// block1Key is what the blocks of one request share: the method and every
// option but Block1 and Size1.
func block1Key(req *coap.Message) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%d", req.Code)
	for _, o := range req.Options {
		if o.ID != coap.Block1 && o.ID != coap.Size1 {
			fmt.Fprintf(&b, "|%d=%x", o.ID, o.Value)
		}
	}
	return b.String()
}

// reassemble takes a request with Block1: an answer to send now (2.31 for
// a block that more follow, 4.08 out of order, 4.13 too large), or the
// whole request, with the Block1 option its answer echoes.
func (s *Server) reassemble(cl *client, req *coap.Message) (whole *coap.Message, echo coap.Option, answer *coap.Message) {
	blk, _, err := coap.GetBlock(req.Options, coap.Block1, false)
	if err != nil {
		return nil, echo, &coap.Message{Code: coap.BadRequest}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key := block1Key(req)
	if blk.Num == 0 {
		cl.b1 = &block1{key: key}
	}
	t := cl.b1
	if t == nil || t.key != key || blk.Num != t.next {
		return nil, echo, &coap.Message{Code: coap.RequestEntityIncomplete}
	}
	if len(t.body)+len(req.Payload) > maxBlock1Body {
		cl.b1 = nil
		return nil, echo, &coap.Message{Code: coap.RequestEntityTooLarge}
	}
	t.body = append(t.body, req.Payload...)
	t.next++
	echo = coap.UintOption(coap.Block1, blk.Value())
	if blk.More {
		return nil, echo, &coap.Message{Code: coap.Continue, Options: coap.Options{echo}}
	}
	cl.b1 = nil
	whole = &coap.Message{Code: req.Code, Type: req.Type, MessageID: req.MessageID, Token: req.Token, Payload: t.body}
	whole.Options = slices.DeleteFunc(slices.Clone(req.Options), func(o coap.Option) bool { return o.ID == coap.Block1 || o.ID == coap.Size1 })
	return whole, echo, nil
}

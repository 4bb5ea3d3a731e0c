package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tether-iot/tether/coap"
)

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
	t, err := c.newTransfer(req, fn) // on the stack: a transfer in lockstep allocates nothing
	if err != nil {
		return err
	}
	return t.lockstep(ctx, req.QBlock && !c.stream)
}

// newTransfer checks req and starts its transfer: the block size asked
// for (BERT over TCP with a peer that offers it), Uri-Host and Uri-Query
// as option values, made once.
func (c *Conn) newTransfer(req BlockRequest, fn func(Chunk) error) (transfer, error) {
	size := req.BlockSize
	if size == 0 {
		size = 1024
	}
	szx, err := coap.SZXFor(size)
	if err != nil {
		return transfer{}, err
	}
	if req.Offset < 0 {
		return transfer{}, fmt.Errorf("%w: negative offset %d", coap.ErrBadBlock, req.Offset)
	}
	if c.stream && c.peerBERT && szx == 6 {
		szx = coap.BERT
	}
	c.host, c.query = nil, c.query[:0]
	if req.Host != "" {
		c.host = []byte(req.Host)
	}
	for _, q := range req.Query {
		c.query = append(c.query, []byte(q))
	}
	return transfer{c: c, req: req, fn: fn, path: splitPath(req.Path), szx: szx, size2: -1, want: req.Offset}, nil
}

// lockstep is the scheduler that asks for one block at a time, each once
// the one before has come, and starts every transfer: its first request
// (with Q-Block2 when qblock is set, which tests the server) tells the
// block size, ETag and Size2, and then a window (BlockRequest.Window) or
// a Q-Block2 transfer takes over, or it goes on alone. A window hands the
// transfer back when the server changes its block size.
func (t *transfer) lockstep(ctx context.Context, qblock bool) error {
	offset := t.want - t.want%t.blockSize()
	for first := true; ; first = false {
		resp, handedOver, err := t.askBlock(ctx, offset, first, &qblock)
		if err != nil || handedOver {
			return err
		}
		end, more, err := t.takeBlock(resp, first, offset)
		if err != nil || !more {
			return err
		}
		offset = end
		if first && t.req.Window > 1 && !t.c.stream && t.size2 >= 0 {
			if offset, err = t.runWindow(ctx); err != nil || offset < 0 {
				return err
			}
		}
	}
}

// askBlock asks for the block at offset and returns the response. The
// first block of a Q-Block2 transfer is asked for with Q-Block2: a server
// that answers with it gets the Q-Block2 scheduler, which runs the rest of
// the transfer (handedOver, its error in err); one that answers 4.02 Bad
// Option is asked again with Block2, as every later block is.
func (t *transfer) askBlock(ctx context.Context, offset int64, first bool, qblock *bool) (resp *coap.Message, handedOver bool, err error) {
	num := offset / t.blockSize()
	if num > coap.MaxBlockNum {
		return nil, false, fmt.Errorf("%w: offset %d is past the largest block number", coap.ErrBadBlock, offset)
	}
	blk := coap.Block{Num: uint32(num), SZX: t.szx}
	if !first || !*qblock {
		resp, err = t.c.Do(ctx, t.c.buildGet(t.path, coap.Block2, blk, first))
		return resp, false, err
	}
	// M unset: this block only, as a test of the server.
	sent := time.Now()
	if resp, err = t.c.Do(ctx, t.c.buildGet(t.path, coap.QBlock2, blk, true)); err != nil {
		return nil, false, err
	}
	if _, ok := coap.Bytes(resp.Options, coap.QBlock2); ok && resp.Code == coap.Content {
		t.rtt.sample(time.Since(sent)) // the first block's exchange is the first measure
		return nil, true, t.getQBlock(ctx, offset, resp)
	}
	if resp.Code == coap.BadOption {
		// The server does not do Q-Block2 (RFC 9177 4.1): Block2.
		t.c.log.Debug("coap: no Q-Block2 at the server; Block2", "path", t.req.Path)
		*qblock = false
		resp, err = t.c.Do(ctx, t.c.buildGet(t.path, coap.Block2, blk, true))
	}
	return resp, false, err
}

// takeBlock checks the response for the block at offset and delivers what
// it carries past the first byte wanted; it returns where the block ends
// and whether more follow. A response that carries the whole body instead
// ends the transfer.
func (t *transfer) takeBlock(resp *coap.Message, first bool, offset int64) (end int64, more bool, err error) {
	blk, hasBlock, err := t.check(resp, first, offset, coap.Block2)
	if err != nil {
		return 0, false, err
	}
	ch := Chunk{Size2: t.size2}
	if tag, ok := coap.Bytes(resp.Options, coap.ETag); ok {
		ch.ETag = tag
	}
	if !hasBlock {
		return 0, false, t.wholeBody(resp, ch)
	}
	if err := t.checkEnd(blk, t.szx, offset, len(resp.Payload)); err != nil {
		return 0, false, err
	}
	t.szx = blk.SZX
	end = offset + int64(len(resp.Payload))
	if !blk.More && end < t.want {
		return 0, false, fmt.Errorf("%w: the body ends at %d, resuming at %d", ErrSizeMismatch, end, t.want)
	}
	if end > t.want { // a smaller block than asked may end before the first byte wanted
		ch.Offset, ch.Block, ch.Payload, ch.More = offset, blk, resp.Payload, blk.More
		if err := t.deliver(ch); err != nil {
			return 0, false, err
		}
	}
	return end, blk.More, nil
}

// wholeBody delivers a response that carries the whole body, from the
// first byte wanted.
func (t *transfer) wholeBody(resp *coap.Message, ch Chunk) error {
	body := resp.Payload
	if int64(len(body)) < t.want {
		return fmt.Errorf("%w: whole body of %d bytes, resuming at %d", ErrSizeMismatch, len(body), t.want)
	}
	if t.size2 >= 0 && int64(len(body)) != t.size2 {
		return fmt.Errorf("%w: %d bytes, Size2 %d", ErrSizeMismatch, len(body), t.size2)
	}
	ch.Offset, ch.Payload = t.want, body[t.want:]
	return t.fn(ch)
}

// runWindow runs the window scheduler from the first byte not delivered.
// It returns -1 when the transfer is over, and otherwise the offset of the
// block lockstep goes on from: the server changed its block size, so the
// block (of the old size, and so of every smaller one) that holds the
// first byte not delivered; t.want is inside a block when the window
// delivered nothing of a resumed transfer.
func (t *transfer) runWindow(ctx context.Context) (int64, error) {
	err := t.window(ctx, min(t.req.Window, MaxWindow))
	if !errors.Is(err, errSizeChanged) {
		return -1, err
	}
	return t.want - t.want%t.blockSize(), nil
}

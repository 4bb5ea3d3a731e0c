package client

import (
	"context"
	"encoding/hex"
	"log/slog"
	"strings"

	"github.com/tether-iot/tether/coap"
)

// LevelTrace is the level of the wire trace: a Conn whose Config.Logger is
// enabled at it logs one record per message it sends or receives, with its
// type, code, message ID, token, Block2, ETag and payload size (tether get
// -vv shows them).
const LevelTrace = slog.LevelDebug - 4

// traceMsg logs m, sent (out) or received, when the trace is on.
func (c *Conn) traceMsg(out bool, m *coap.Message) {
	if !c.trace {
		return
	}
	dir := "recv"
	if out {
		dir = "send"
	}
	attrs := make([]slog.Attr, 0, 8)
	if !c.stream {
		attrs = append(attrs, slog.String("type", coap.TypeString(m.Type)), slog.Int("mid", int(m.MessageID)))
	}
	attrs = append(attrs, slog.String("code", coap.CodeString(m.Code)))
	if len(m.Token) > 0 {
		attrs = append(attrs, slog.String("token", hex.EncodeToString(m.Token)))
	}
	if blk, ok, err := coap.GetBlock(m.Options, coap.Block2, c.stream); ok && err == nil {
		attrs = append(attrs, slog.String("block2", blk.String()))
	}
	var qb2 []string
	for _, o := range m.Options {
		if o.ID == coap.QBlock2 {
			var v uint32
			for _, b := range o.Value {
				v = v<<8 | uint32(b)
			}
			if blk, err := coap.ParseBlock(v, false); err == nil {
				qb2 = append(qb2, blk.String())
			}
		}
	}
	if qb2 != nil {
		attrs = append(attrs, slog.String("qblock2", strings.Join(qb2, ",")))
	}
	if tag, ok := coap.Bytes(m.Options, coap.ETag); ok {
		attrs = append(attrs, slog.String("etag", hex.EncodeToString(tag)))
	}
	attrs = append(attrs, slog.Int("payload", len(m.Payload)))
	c.log.LogAttrs(context.Background(), LevelTrace, "coap "+dir, attrs...)
}

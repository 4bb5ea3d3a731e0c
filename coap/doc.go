// Package coap is tether's CoAP codec: messages for UDP (RFC 7252) and for
// TCP framing (RFC 8323), the Block option of RFC 7959 (and BERT), and the
// transmission parameters of RFC 7252 section 4.8.
//
// The wire format is go-coap's (github.com/plgd-dev/go-coap/v3): its
// message and coder packages decode and encode without allocating when the
// options slice is reused, and decoded tokens and payloads alias the input
// buffer, which is what a block-wise download needs on its hot path. This
// package re-exports the types that tether's API uses, so that its users need
// not import go-coap, and adds what go-coap leaves to the caller: bounds on
// frame sizes, a stream framer, and the Block option as a value.
//
// # Usage
//
//	var m coap.Message
//	m.Options = make(coap.Options, 0, 16) // reused by every decode
//	if err := coap.DecodeUDP(datagram, &m); err != nil { ... } // ErrMalformed
//	blk, ok, err := coap.GetBlock(m.Options, coap.Block2)
//
//	buf, err = coap.AppendUDP(buf[:0], &m)
//
// The exchange engine that runs requests over a sock.Socket is package
// coap/client; the file server is package coap/fileserver.
//
// coap depends on package sock's layer and below only; it must never import
// tether's download or command packages.
package coap

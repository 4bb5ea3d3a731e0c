package lwm2m

import (
	"cmp"
	"encoding/binary"
	"hash/crc32"
	"slices"

	"github.com/tether-iot/tether/coap"
)

// maxResponseBlock is the largest block of an answer this client sends:
// an answer larger than this goes block by block (RFC 7959 Block2), so a
// Read of a large instance, a Discover of a big object or an opaque
// resource such as a certificate fits the datagrams of any path. A server
// may ask for smaller blocks.
const maxResponseBlock = 1024

// inBlocks gives a 2.05 answer larger than a block as the block the
// request asks for (block 0 when it asks for none), with Block2, Size2 and
// an ETag of the whole answer (RFC 7959 2.4). Each block is read anew, as
// nothing of an answer is kept between requests: the ETag, a CRC-32 of the
// whole answer, tells the server when the value changed between two of its
// blocks. A block past the end is 4.02.
func inBlocks(req *coap.Message, resp coap.Message) coap.Message {
	if resp.Code != coap.Content {
		return resp
	}
	b, asked, err := coap.GetBlock(req.Options, coap.Block2, false)
	if err != nil {
		return coap.Message{Code: coap.BadOption, Payload: []byte("Block2: " + err.Error())}
	}
	size, num := maxResponseBlock, 0
	if asked { // SZX 6, 1024 bytes, is the largest there is without BERT
		size, num = b.Size(), int(b.Num)
	}
	whole := resp.Payload
	if !asked && len(whole) <= size {
		return resp
	}
	off := num * size
	if off >= len(whole) && off > 0 {
		return coap.Message{Code: coap.BadOption, Payload: []byte("Block2 past the end of the answer")}
	}
	end := min(off+size, len(whole))
	szx, _ := coap.SZXFor(size)
	var etag [4]byte
	binary.BigEndian.PutUint32(etag[:], crc32.ChecksumIEEE(whole))
	opts := slices.Clone(resp.Options)
	opts = append(opts,
		coap.UintOption(coap.Block2, coap.Block{Num: uint32(num), More: end < len(whole), SZX: szx}.Value()),
		coap.UintOption(coap.Size2, uint32(len(whole))),
		coap.Option{ID: coap.ETag, Value: etag[:]})
	slices.SortStableFunc(opts, func(a, b coap.Option) int { return cmp.Compare(a.ID, b.ID) })
	resp.Options = opts
	resp.Payload = whole[off:end]
	return resp
}

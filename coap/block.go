package coap

import (
	"errors"
	"fmt"

	"github.com/tether-iot/tether/sock"
)

// BERT is the SZX value of a BERT block over TCP (RFC 8323 section 6):
// 1024-byte units, several per message.
const BERT = 7

// MaxBlockNum is the largest block number a Block option can carry.
const MaxBlockNum = 1<<20 - 1

// ErrBadBlock reports a Block option value that is malformed, or a block
// size or offset that cannot be asked for. It is permanent (see
// sock.IsPermanent): the same request would fail again.
var ErrBadBlock = sock.Permanent(errors.New("coap: bad block option"))

// Block is the value of a Block1 or Block2 option (RFC 7959 section 2.2):
// the block number, whether more follow, and the size exponent; the block
// is Size() bytes at offset Num*Size().
type Block struct {
	Num  uint32
	More bool
	SZX  uint8
}

// SZXFor returns the exponent of a block size 16..1024 (a power of two).
func SZXFor(size int) (uint8, error) {
	for szx := uint8(0); szx <= 6; szx++ {
		if 16<<szx == size {
			return szx, nil
		}
	}
	return 0, fmt.Errorf("%w: block size %d is not a power of two in 16..1024", ErrBadBlock, size)
}

// Size returns the block size in bytes: 16<<SZX, 1024 for BERT.
func (b Block) Size() int {
	if b.SZX >= BERT {
		return 1024
	}
	return 16 << b.SZX
}

// Offset returns the byte offset of the block.
func (b Block) Offset() int64 { return int64(b.Num) * int64(b.Size()) }

// Value encodes the block as an option value.
func (b Block) Value() uint32 {
	v := b.Num<<4 | uint32(b.SZX&7)
	if b.More {
		v |= 8
	}
	return v
}

// String formats the block as RFC 7959 does: "num/more/size".
func (b Block) String() string {
	m := 0
	if b.More {
		m = 1
	}
	return fmt.Sprintf("%d/%d/%d", b.Num, m, b.Size())
}

// ParseBlock decodes an option value. SZX 7 (BERT) is accepted only when
// bert is set, as over TCP with a peer that offered it.
func ParseBlock(v uint32, bert bool) (Block, error) {
	if v > MaxBlockNum<<4|0xf {
		return Block{}, fmt.Errorf("%w: value %#x", ErrBadBlock, v)
	}
	b := Block{Num: v >> 4, More: v&8 != 0, SZX: uint8(v & 7)}
	if b.SZX == BERT && !bert {
		return Block{}, fmt.Errorf("%w: SZX 7 (BERT) outside TCP", ErrBadBlock)
	}
	return b, nil
}

// GetBlock reads a Block1 or Block2 option: the block, whether the option is
// present, and an error when it is present but malformed.
func GetBlock(opts Options, id OptionID, bert bool) (Block, bool, error) {
	v, ok := Uint(opts, id)
	if !ok {
		if _, present := Bytes(opts, id); present {
			return Block{}, true, fmt.Errorf("%w: value longer than 3 bytes", ErrBadBlock)
		}
		return Block{}, false, nil
	}
	b, err := ParseBlock(v, bert)
	return b, true, err
}

package download

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding"
	"errors"
	"hash"
	"io"
)

// A download keeps the running SHA-256 of the bytes it wrote, and
// checkpoints along the way: the digest of the first k*Every bytes, for
// k = 1, 2, ... A file left by an earlier run is re-read before the
// download continues (checkPrefix): the running hash of its prefix must
// be the saved one, and where it is not, the last checkpoint that still
// matches is where the download continues from. Everything is one pass of
// SHA-256 over the file, which runs at disk speed.

const (
	// firstCheckpointEvery is the checkpoint spacing of a new download.
	firstCheckpointEvery = 1 << 20
	// maxCheckpoints bounds the list: when it is full, every other
	// checkpoint is dropped and the spacing doubles, so the state stays
	// small (64 digests) whatever the size and a damaged byte costs at
	// most 1/32 of the body.
	maxCheckpoints = 64
)

// checkpoints are the digests of a body's prefixes at regular offsets.
type checkpoints struct {
	every int64    // spacing; 0 means firstCheckpointEvery
	sums  [][]byte // sums[i] is the SHA-256 of the first (i+1)*every bytes
}

func (c *checkpoints) spacing() int64 {
	if c.every == 0 {
		return firstCheckpointEvery
	}
	return c.every
}

// add feeds p, the bytes at off, to h (which holds the digest of the
// first off bytes) and records the checkpoints p crosses.
func (c *checkpoints) add(h hash.Hash, p []byte, off int64) {
	for len(p) > 0 {
		every := c.spacing()
		next := int64(len(c.sums)+1) * every
		if off+int64(len(p)) < next {
			h.Write(p)
			return
		}
		k := next - off
		h.Write(p[:k])
		c.sums = append(c.sums, h.Sum(nil))
		p, off = p[k:], next
		if len(c.sums) >= maxCheckpoints {
			c.thin()
		}
	}
}

// thin keeps every other checkpoint and doubles the spacing.
func (c *checkpoints) thin() {
	kept := c.sums[:0]
	for i := 1; i < len(c.sums); i += 2 {
		kept = append(kept, c.sums[i])
	}
	c.sums, c.every = kept, 2*c.spacing()
}

// verifyBuffer is the read size of checkPrefix.
const verifyBuffer = 256 << 10

// checkPrefix re-reads the first n bytes of r and checks them against the
// checkpoints and against want, the marshalled running hash at n bytes. It
// returns how many bytes are good (n when all are), the running hash at
// that point, and the checkpoints within it. err is a read failure other
// than the file being shorter than n, or ctx's end, checked between reads.
func checkPrefix(ctx context.Context, r io.ReaderAt, n int64, marks checkpoints, want []byte) (good int64, h hash.Hash, kept checkpoints, err error) {
	h = sha256.New()
	every := marks.spacing()
	goodState, _ := h.(encoding.BinaryMarshaler).MarshalBinary()
	buf := make([]byte, verifyBuffer)
	var pos int64
	k := 0 // checkpoints verified
	// lastGood is the result when the check stops early: the prefix up to
	// the last checkpoint that matched, and err.
	lastGood := func(err error) (int64, hash.Hash, checkpoints, error) {
		h := sha256.New()
		if uerr := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(goodState); uerr != nil {
			return 0, sha256.New(), checkpoints{every: marks.every}, uerr
		}
		return good, h, checkpoints{every: marks.every, sums: marks.sums[:k:k]}, err
	}
	for pos < n {
		end := n
		if k < len(marks.sums) {
			end = min(n, int64(k+1)*every)
		}
		for pos < end {
			if err := ctx.Err(); err != nil {
				return lastGood(err)
			}
			m, rerr := r.ReadAt(buf[:min(int64(len(buf)), end-pos)], pos)
			h.Write(buf[:m])
			pos += int64(m)
			if rerr != nil && pos < end {
				if errors.Is(rerr, io.EOF) {
					rerr = nil // shorter than the state says: good up to the last checkpoint
				}
				return lastGood(rerr)
			}
		}
		if k < len(marks.sums) && pos == int64(k+1)*every {
			if !bytes.Equal(h.Sum(nil), marks.sums[k]) {
				return lastGood(nil)
			}
			k++
			good = pos
			goodState, _ = h.(encoding.BinaryMarshaler).MarshalBinary()
		}
	}
	if state, _ := h.(encoding.BinaryMarshaler).MarshalBinary(); !bytes.Equal(state, want) {
		return lastGood(nil)
	}
	return n, h, checkpoints{every: marks.every, sums: marks.sums[:k:k]}, nil
}

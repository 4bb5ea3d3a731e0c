package download

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Blocks past the written prefix. A Q-Block2 transfer delivers blocks out
// of order: a block after a gap is written at its offset at once, and kept
// in memory until the gap is filled, when it joins the prefix and is
// hashed (the running SHA-256 and its checkpoints cover the prefix only,
// in order). The state lists each such block with its own SHA-256, so a
// new process reads it back from the file, checks it, and asks only for
// the gaps: a kill loses what was in flight, not what arrived early.

// PendingBlock is a block written past the contiguous prefix, in a saved
// state.
type PendingBlock struct {
	Offset int64  `json:"offset"`
	Size   int    `json:"size"`
	SHA256 []byte `json:"sha256"`
}

// maxPending bounds the blocks kept past the prefix: a Q-Block2 transfer
// keeps at most four bursts of blocks ahead of the first gap, and a burst
// is at most coap.MaxMaxPayloads (64) blocks; more is a state gone wrong.
const maxPending = 4 * 64

// errPending reports a block the download cannot keep past its prefix.
var errPending = errors.New("too many blocks past the first gap")

// recordAheadLocked keeps a block past the prefix, written already. d.mu
// is held.
func (d *Download) recordAheadLocked(off int64, payload []byte) error {
	if _, ok := d.pending[off]; ok {
		return nil // had already (the transfer never delivers a byte twice; a resume may)
	}
	if len(d.pending) >= maxPending {
		return fmt.Errorf("%w: %d", errPending, len(d.pending))
	}
	if d.pending == nil {
		d.pending = make(map[int64][]byte)
	}
	d.pending[off] = slices.Clone(payload)
	return nil
}

// absorbLocked moves the blocks that now follow the prefix into it, in
// order, hashing them. d.mu is held.
func (d *Download) absorbLocked() {
	for {
		p, ok := d.pending[d.written]
		if !ok {
			break
		}
		delete(d.pending, d.written)
		d.marks.add(d.hash, p, d.written)
		d.written += int64(len(p))
	}
	// Blocks of another size than the transfer's (taken back from a run
	// whose server used other blocks) may now lie inside the prefix, or
	// straddle its end: their bytes are in place, but a state that lists
	// them is unusable. Those past the prefix are asked for again.
	for off := range d.pending {
		if off < d.written {
			delete(d.pending, off)
		}
	}
}

// haveAhead reports whether the block at off, of n bytes, is written:
// held past the prefix, or in the prefix since the transfer started (a
// block it delivered let the prefix take the blocks held after it).
// It is client.BlockRequest.Have.
func (d *Download) haveAhead(off int64, n int) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if off+int64(n) <= d.written {
		return true
	}
	p, ok := d.pending[off]
	return ok && len(p) == n
}

// pendingLocked lists the blocks past the prefix for a state. d.mu is held.
func (d *Download) pendingLocked() []PendingBlock {
	var out []PendingBlock
	for off, p := range d.pending {
		sum := sha256.Sum256(p)
		out = append(out, PendingBlock{Offset: off, Size: len(p), SHA256: sum[:]})
	}
	slices.SortFunc(out, func(a, b PendingBlock) int { return int(min(max(a.Offset-b.Offset, -1), 1)) })
	// Blocks of two sizes may overlap (a block kept past the gap, and one
	// of the transfer's size asked for again at another offset): the
	// state lists none that overlaps the one before, so that the next
	// run can take it; the others are asked for again.
	end := d.written
	kept := out[:0]
	for _, b := range out {
		if b.Offset >= end {
			kept = append(kept, b)
			end = b.Offset + int64(b.Size)
		}
	}
	return kept
}

// takeBackPending reads back from r (nil: the destination cannot be read)
// the blocks a restored state lists past its prefix, keeping those whose
// SHA-256 checks; the others will be asked for again.
func (d *Download) takeBackPending(r io.ReaderAt) {
	d.mu.Lock()
	defer d.mu.Unlock()
	list := d.resumePending
	d.pending, d.resumePending = nil, nil
	dropped := 0
	for _, b := range list {
		p := make([]byte, b.Size)
		if r == nil {
			dropped++
			continue
		}
		if _, err := r.ReadAt(p, b.Offset); err != nil {
			dropped++
			continue
		}
		if sum := sha256.Sum256(p); string(sum[:]) != string(b.SHA256) {
			dropped++
			continue
		}
		if d.pending == nil {
			d.pending = make(map[int64][]byte)
		}
		d.pending[b.Offset] = p
	}
	if dropped > 0 {
		d.log.Warn("download: blocks saved past the first gap cannot be taken back; asking for them again", "blocks", dropped, "of", len(list))
	}
}

// settlePending writes the blocks past the prefix again with w (after a
// truncation; nil: they are in place), and lets the prefix take those
// that follow it.
func (d *Download) settlePending(w io.WriterAt) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if w != nil {
		for off, p := range d.pending {
			if _, err := w.WriteAt(p, off); err != nil {
				return &writeError{err}
			}
		}
	}
	d.absorbLocked()
	return nil
}

// validatePending checks a state's list of blocks past its prefix.
func validatePending(st *State) error {
	if len(st.Pending) > maxPending {
		return fmt.Errorf("%d blocks past the prefix", len(st.Pending))
	}
	end := st.Written
	for i, b := range st.Pending {
		switch {
		case b.Offset < end:
			return fmt.Errorf("block %d at %d overlaps what comes before", i, b.Offset)
		case b.Size <= 0 || b.Size > 1024:
			return fmt.Errorf("block %d of %d bytes", i, b.Size)
		case st.Total >= 0 && b.Offset+int64(b.Size) > st.Total:
			return fmt.Errorf("block %d ends past the %d bytes of the body", i, st.Total)
		case len(b.SHA256) != sha256.Size:
			return fmt.Errorf("block %d has a %d-byte digest", i, len(b.SHA256))
		}
		end = b.Offset + int64(b.Size)
	}
	return nil
}

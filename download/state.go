package download

import (
	"crypto/sha256"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/internal/durable"
	"github.com/tether-iot/tether/sock"
)

const stateVersion = 1

// State is what a new process needs to continue a download: saved next to
// the partial file by ToFile, or by the caller from Download.State.
type State struct {
	Version   int    `json:"version"`
	URL       string `json:"url"`
	ETag      []byte `json:"etag,omitempty"`
	LastMod   string `json:"last_modified,omitempty"` // HTTP, when there is no strong ETag
	Written   int64  `json:"written"`
	BlockSize int    `json:"block_size"` // the CoAP block size the server uses
	Total     int64  `json:"total"`      // -1 while unknown
	Preferred string `json:"preferred_endpoint,omitempty"`
	Hash      []byte `json:"sha256_state"` // the running SHA-256 of the bytes written
	// CheckpointEvery and Checkpoints verify a prefix: Checkpoints[i] is
	// the SHA-256 of the first (i+1)*CheckpointEvery bytes. States saved
	// before they existed have none, which still verifies, all or nothing.
	CheckpointEvery int64    `json:"checkpoint_every,omitempty"`
	Checkpoints     [][]byte `json:"checkpoints,omitempty"`
	// Pending are blocks written past Written, out of order (Q-Block2),
	// in increasing order: a new process reads each back from the file
	// and keeps it if its SHA-256 checks.
	Pending []PendingBlock `json:"pending,omitempty"`
}

// ErrState reports a saved state that cannot be used: unreadable, for
// another URL, or with values no download could have saved.
var ErrState = sock.Permanent(errors.New("download: unusable saved state"))

// validate checks a state for values no download saves: a resume from it
// would go wrong.
func (st *State) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrState, fmt.Sprintf(format, args...))
	}
	switch {
	case st.Version != stateVersion:
		return bad("version %d", st.Version)
	case st.Written < 0:
		return bad("%d bytes written", st.Written)
	case st.Total < -1 || (st.Total >= 0 && st.Written > st.Total):
		return bad("%d bytes written of %d", st.Written, st.Total)
	case st.CheckpointEvery < 0 || (len(st.Checkpoints) > 0 && st.CheckpointEvery == 0):
		return bad("checkpoints every %d bytes", st.CheckpointEvery)
	case len(st.Checkpoints) > maxCheckpoints:
		return bad("%d checkpoints", len(st.Checkpoints))
	case len(st.Checkpoints) > 0 && int64(len(st.Checkpoints)) > st.Written/st.CheckpointEvery:
		return bad("%d checkpoints every %d bytes past %d bytes", len(st.Checkpoints), st.CheckpointEvery, st.Written)
	}
	if err := validatePending(st); err != nil {
		return bad("%v", err)
	}
	if st.BlockSize != 0 {
		if _, err := coap.SZXFor(st.BlockSize); err != nil {
			return bad("block size %d", st.BlockSize)
		}
	}
	for i, c := range st.Checkpoints {
		if len(c) != sha256.Size {
			return bad("checkpoint %d has %d bytes", i, len(c))
		}
	}
	if err := sha256.New().(encoding.BinaryUnmarshaler).UnmarshalBinary(st.Hash); err != nil {
		return bad("running hash: %v", err)
	}
	var pref sock.PreferredEndpoint
	if err := pref.UnmarshalText([]byte(st.Preferred)); err != nil {
		return bad("preferred endpoint: %v", err)
	}
	return nil
}

// restore continues from st, which must be for this download's URL.
func (d *Download) restore(st *State) error {
	if err := st.validate(); err != nil {
		return err
	}
	if st.URL != d.target.String() {
		return fmt.Errorf("%w: it is for %s", ErrState, st.URL)
	}
	if d.opts.tooLarge(st.Written) || (st.Total >= 0 && d.opts.tooLarge(st.Total)) {
		return fmt.Errorf("%w: %d bytes saved, over the limit of %d", ErrTooLarge, max(st.Written, st.Total), d.opts.MaxSize)
	}
	if err := d.hash.(encoding.BinaryUnmarshaler).UnmarshalBinary(st.Hash); err != nil {
		return fmt.Errorf("%w: %w", ErrState, err)
	}
	if err := d.pref.UnmarshalText([]byte(st.Preferred)); err != nil {
		return fmt.Errorf("%w: %w", ErrState, err)
	}
	d.written, d.etag, d.lastMod = st.Written, st.ETag, st.LastMod
	d.marks = checkpoints{every: st.CheckpointEvery, sums: st.Checkpoints}
	d.pending, d.resumePending = nil, st.Pending // read back by start (ToFile) or newDownload
	if st.BlockSize > 0 {
		d.blockSize = st.BlockSize // the server's, which it will use again
	}
	if st.Total >= 0 {
		d.total = st.Total
	}
	return nil
}

// State returns what a new process needs to continue the download.
func (d *Download) State() (*State, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stateLocked()
}

func (d *Download) stateLocked() (*State, error) {
	hs, err := d.hash.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return nil, err
	}
	return &State{
		Version:         stateVersion,
		URL:             d.target.String(),
		ETag:            append([]byte(nil), d.etag...),
		LastMod:         d.lastMod,
		Written:         d.written,
		BlockSize:       d.blockSize,
		Total:           d.total,
		Preferred:       d.pref.String(),
		Hash:            hs,
		CheckpointEvery: d.marks.spacing(),
		Checkpoints:     append([][]byte(nil), d.marks.sums...),
		Pending:         d.pendingLocked(),
	}, nil
}

// LoadState reads a state saved by SaveState; one that cannot be used is
// ErrState.
func LoadState(path string) (*State, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrState, path, err)
	}
	if err := st.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &st, nil
}

// SaveState writes st to path atomically: a temporary file, synced, renamed
// over path, and the directory synced, so that after a power cut path
// holds either the old state or the new one.
func SaveState(path string, st *State) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return durable.WriteFile(path, b, 0o644)
}

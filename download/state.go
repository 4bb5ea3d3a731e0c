package download

import (
	"context"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

const stateVersion = 1

// saveEvery is how often ToFile saves the state of a running download: a
// crash loses at most that much progress.
const saveEvery = 250 * time.Millisecond

// State is what a new process needs to continue a download: saved next to
// the partial file by ToFile, or by the caller from Download.State.
type State struct {
	Version   int    `json:"version"`
	URL       string `json:"url"`
	ETag      []byte `json:"etag,omitempty"`
	LastMod   string `json:"last_modified,omitempty"` // HTTP, when there is no strong ETag
	Written   int64  `json:"written"`
	BlockSize int    `json:"block_size"`
	Total     int64  `json:"total"`
	Preferred string `json:"preferred_endpoint,omitempty"`
	Hash      []byte `json:"sha256_state"` // the running SHA-256 of the bytes written
}

// ErrState reports a saved state that cannot be used.
var ErrState = errors.New("download: unusable saved state")

// restore continues from st.
func (d *Download) restore(st *State) error {
	if st.Version != stateVersion {
		return fmt.Errorf("%w: version %d", ErrState, st.Version)
	}
	if st.URL != d.url.String() {
		return fmt.Errorf("%w: it is for %s", ErrState, st.URL)
	}
	if st.Written < 0 || (st.Written > 0 && st.BlockSize <= 0) {
		return fmt.Errorf("%w: %d bytes written with blocks of %d", ErrState, st.Written, st.BlockSize)
	}
	if st.Written > 0 {
		d.opts.BlockSize = st.BlockSize // offsets are in its blocks
	}
	if err := d.hash.(encoding.BinaryUnmarshaler).UnmarshalBinary(st.Hash); err != nil {
		return fmt.Errorf("%w: %w", ErrState, err)
	}
	if err := d.pref.UnmarshalText([]byte(st.Preferred)); err != nil {
		return fmt.Errorf("%w: %w", ErrState, err)
	}
	d.written, d.etag, d.lastMod = st.Written, st.ETag, st.LastMod
	if st.Total >= 0 {
		d.prog.Total = st.Total
	}
	return nil
}

// Written returns the bytes written so far.
func (d *Download) Written() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.written
}

// PartSuffix and StateSuffix name the files ToFile keeps while a download
// is incomplete: NAME.part and NAME.part.state.
const (
	PartSuffix  = ".part"
	StateSuffix = ".part.state"
)

// FileDownload is a download into a file; see ToFile.
type FileDownload struct {
	*Download
	path string
	f    *os.File
	save sync.Mutex
	done chan struct{}
	err  error
}

// ToFile downloads rawURL into path: the body goes to path+".part" and the
// state to resume to path+".part.state", saved atomically every 250 ms and
// whenever the download is suspended or stops. If both exist and are for the
// same URL, the download continues from them. Only a complete, verified
// body is renamed to path. Wait returns once the files are settled.
func ToFile(ctx context.Context, rawURL, path string, opts *Options) (*FileDownload, error) {
	o := Options{}
	if opts != nil {
		o = *opts
	}
	part := path + PartSuffix
	st, err := LoadState(path + StateSuffix)
	switch {
	case err == nil && st.URL == rawURL:
		o.Resume = st
	case err == nil || errors.Is(err, ErrState):
		o.Resume = nil // another URL's, or unreadable: start over
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	var written int64
	if o.Resume != nil {
		written = o.Resume.Written
	}
	if fi, err := f.Stat(); err != nil || fi.Size() < written {
		o.Resume, written = nil, 0 // the partial file lost bytes: start over
	}
	if err := f.Truncate(written); err != nil { // drop anything past the state
		f.Close()
		return nil, err
	}
	d, err := newDownload(rawURL, f, &o)
	if err != nil {
		f.Close()
		return nil, err
	}
	fd := &FileDownload{Download: d, path: path, f: f, done: make(chan struct{})}
	go d.run(ctx)
	go fd.settle()
	return fd, nil
}

// settle saves the state while the download runs and puts the files in
// order when it ends.
func (fd *FileDownload) settle() {
	defer close(fd.done)
	tick := time.NewTicker(saveEvery)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			fd.saveState()
			continue
		case <-fd.Download.Done():
		}
		break
	}
	err := fd.Download.Err()
	if err == nil {
		err = fd.complete()
	} else if errors.Is(err, ErrResourceChanged) || errors.Is(err, ErrVerify) {
		// What was written cannot be continued: keep it for inspection,
		// but not its state, so the next run starts over.
		os.Remove(fd.path + StateSuffix)
	} else {
		fd.saveState()
	}
	if cerr := fd.f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	fd.err = err
}

// complete makes the verified body the final file.
func (fd *FileDownload) complete() error {
	if err := fd.f.Sync(); err != nil {
		return &writeError{err}
	}
	if err := os.Rename(fd.path+PartSuffix, fd.path); err != nil {
		return &writeError{err}
	}
	os.Remove(fd.path + StateSuffix)
	return nil
}

// Suspend suspends the download and saves its state.
func (fd *FileDownload) Suspend() error {
	err := fd.Download.Suspend()
	fd.saveState()
	return err
}

// Wait waits for the download to end and its files to be settled: renamed
// when complete, the state saved when not.
func (fd *FileDownload) Wait() error {
	<-fd.done
	return fd.err
}

// Path returns the final path.
func (fd *FileDownload) Path() string { return fd.path }

func (fd *FileDownload) saveState() {
	fd.save.Lock()
	defer fd.save.Unlock()
	st, err := fd.Download.State()
	if err == nil {
		err = SaveState(fd.path+StateSuffix, st)
	}
	if err != nil {
		fd.log.Warn("download: saving state", "err", err)
	}
}

// LoadState reads a state saved by SaveState.
func LoadState(path string) (*State, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrState, path, err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("%w: %s: version %d", ErrState, path, st.Version)
	}
	return &st, nil
}

// SaveState writes st to path atomically: a temporary file, synced, then
// renamed over path.
func SaveState(path string, st *State) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

package download

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/tether-iot/tether/internal/durable"
)

// PartSuffix and StateSuffix name the files ToFile keeps while a download
// is incomplete: NAME.part and NAME.part.state.
const (
	PartSuffix  = ".part"
	StateSuffix = ".part.state"
)

// saveEvery is how often a file download saves its state while blocks
// arrive: a crash loses at most that much progress.
const saveEvery = 250 * time.Millisecond

// ToFile downloads rawURL into the file path, crash-safe: the body goes to
// path+".part", locked for the download's whole life (a second download of
// the same path fails at once with ErrLocked), and the state to resume to
// path+".part.state". The state is saved every 250 ms, after the data it
// claims is synced, and replaced atomically.
//
// If both files exist and are for the same URL, the download continues
// from them, after re-reading the .part to check that it still holds what
// was written (see the package documentation): a damaged part is
// downloaded again from the last byte that checks, and bytes past the
// state's are dropped. A state with impossible values is discarded with a
// warning; one for another URL is ErrOutput (with OnChange: Restart, it is
// discarded). Only a complete body whose SHA-256, read back from the disk,
// is the expected one is renamed to path (and the directory synced); Done
// is closed once the files are settled. A failure before the first byte
// leaves no files. A body over MaxSize keeps its state: a run with a larger
// bound continues it.
//
// Options.Resume is ignored: the state comes from the file beside the
// .part. The URL and options are checked before any file is touched. A
// path that is a directory is ErrOutput; one that exists and is not a regular file
// (a device, a FIFO: /dev/stdout) is written in place, with no .part and
// no resume (a FIFO is waited on until a reader opens it); a symbolic link
// is followed, and the file it names replaced. A NAME.part that is not a
// regular file is ErrOutput, never written through.
func ToFile(ctx context.Context, rawURL, path string, opts *Options) (*Download, error) {
	o := Options{}
	if opts != nil {
		o = *opts
	}
	o.Resume = nil // from the state file only
	d, err := newDownload(rawURL, nil, &o)
	if err != nil {
		return nil, err
	}
	final, inPlace, err := resolveOutput(path)
	if err != nil {
		return nil, err
	}
	if inPlace {
		d.file = &partFile{path: final, inPlace: true} // opened by start, which ctx bounds
		go d.run(ctx)
		return d, nil
	}
	part := final + PartSuffix
	f, created, err := openPart(part)
	if err != nil {
		return nil, err
	}
	pf := &partFile{path: final, f: f, savedAt: -1}
	d.dst, d.file = f, pf
	abandon := func(err error) (*Download, error) {
		if created {
			os.Remove(part) // made by this call: a failure before any byte leaves nothing
		}
		f.Close()
		return nil, err
	}
	st, err := LoadState(final + StateSuffix)
	switch {
	case err == nil && st.URL != d.URL() && d.opts.OnChange != Restart:
		return abandon(fmt.Errorf("%w: %s holds %d bytes of another download, %s: remove it, or choose another path", ErrOutput, part, st.Written, st.URL))
	case err == nil && st.URL != d.URL():
		d.log.Warn("download: discarding the partial download of another URL", "state", st.URL, "written", st.Written)
	case err == nil:
		switch err := d.restore(st); {
		case errors.Is(err, ErrTooLarge):
			return abandon(err) // kept, for a run with a larger bound
		case err != nil:
			d.log.Warn("download: the saved state cannot be used; starting over", "err", err)
		default:
			pf.resumed = st
		}
	case errors.Is(err, ErrState):
		d.log.Warn("download: the saved state cannot be used; starting over", "err", err)
	case !errors.Is(err, fs.ErrNotExist):
		return abandon(err)
	}
	if pf.resumed == nil {
		d.resetLocked()
		if err := f.Truncate(0); err != nil {
			return abandon(err)
		}
	}
	go d.run(ctx)
	return d, nil
}

// resolveOutput decides where a file download goes: the path itself, or the
// regular file a symbolic link names; inPlace for a device or a FIFO, which
// is written directly and never renamed over.
func resolveOutput(path string) (final string, inPlace bool, err error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if lfi, lerr := os.Lstat(path); lerr == nil && lfi.Mode()&fs.ModeSymlink != 0 {
			return "", false, fmt.Errorf("%w: %s is a symbolic link to nothing", ErrOutput, path)
		}
		return path, false, nil
	case err != nil:
		return "", false, err
	case fi.IsDir():
		return "", false, fmt.Errorf("%w: %s is a directory", ErrOutput, path)
	case !fi.Mode().IsRegular():
		return path, true, nil
	}
	if lfi, err := os.Lstat(path); err == nil && lfi.Mode()&fs.ModeSymlink != 0 {
		real, err := filepath.EvalSymlinks(path)
		return real, false, err
	}
	return path, false, nil
}

// openPart opens (creating it if needed: created) and locks a .part file,
// which must be a regular file: never a link, a FIFO or a device written
// through. Another download may hold the lock and rename or remove the
// file before this one gets the lock: then the file this one locked is no
// longer the .part, and it tries again.
func openPart(part string) (f *os.File, created bool, err error) {
	for range 3 {
		if fi, err := os.Lstat(part); err == nil && !fi.Mode().IsRegular() {
			return nil, false, fmt.Errorf("%w: %s is a %s, not a regular file", ErrOutput, part, kindOf(fi.Mode()))
		}
		f, err = os.OpenFile(part, os.O_RDWR|os.O_CREATE|os.O_EXCL|noFollow, 0o644)
		created = err == nil
		if errors.Is(err, fs.ErrExist) {
			f, err = os.OpenFile(part, os.O_RDWR|noFollow, 0)
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed between the two opens
			}
		}
		if err != nil {
			return nil, false, err // a directory that does not exist, say
		}
		if err := lockFile(f); err != nil {
			f.Close()
			return nil, false, err
		}
		held, err1 := f.Stat()
		now, err2 := os.Lstat(part)
		if err1 == nil && err2 == nil && os.SameFile(held, now) && held.Mode().IsRegular() {
			return f, created, nil
		}
		f.Close()
	}
	return nil, false, fmt.Errorf("%w: %s keeps being replaced", ErrLocked, part)
}

// partFile is the file side of a ToFile download: NAME.part, locked, and
// the state beside it; or, in place, a device or FIFO. Its methods run on
// the download's goroutine.
type partFile struct {
	path    string   // the final name
	f       *os.File // NAME.part, or the device itself once open
	inPlace bool
	resumed *State // what an earlier run left, until it is verified

	damaged int // times the final check found the disk changed

	// The state is saved by a timer while blocks arrive, and by the
	// engine when it must (suspended, ended).
	sched    sync.Mutex  // guards later, closed, lastSave
	later    *time.Timer // the next save by the timer
	closed   bool        // settle has begun: no saves but its own
	lastSave time.Time
	saving   sync.Mutex // one save at a time, and none while the data is truncated
	savedAt  int64      // the bytes the last state claimed; -1: the next save is due
}

// start opens a device or FIFO written in place (a FIFO waits for its
// reader, as long as ctx lets it), or verifies what an earlier run left in
// NAME.part against its state: the download continues from the last byte
// that checks, and the bytes past it are dropped.
func (pf *partFile) start(ctx context.Context, d *Download) error {
	if pf.inPlace {
		f, err := openInPlace(ctx, pf.path)
		if err != nil {
			return err
		}
		pf.f, d.dst = f, Stream(f)
		return nil
	}
	st := pf.resumed
	pf.resumed = nil
	if st == nil || (st.Written == 0 && len(st.Pending) == 0) {
		return nil
	}
	began := time.Now()
	dropCache(pf.f) // what the disk holds, not what memory remembers
	good, h, marks, err := checkPrefix(ctx, pf.f, st.Written, checkpoints{every: st.CheckpointEvery, sums: st.Checkpoints}, st.Hash)
	if err != nil {
		if ctx.Err() != nil {
			return err // stopped while checking: the state stays as it was
		}
		return &writeError{fmt.Errorf("re-reading %s: %w", pf.f.Name(), err)}
	}
	took := time.Since(began)
	if good == st.Written {
		d.takeBackPending(pf.f) // before the truncation, which cuts them
	} else {
		d.takeBackPending(nil) // past a damaged prefix: asked for again
	}
	err = pf.truncate(good, func() { // what a crash left past the state, or worse
		d.mu.Lock()
		defer d.mu.Unlock()
		switch {
		case good == st.Written: // all of it holds
		case good == 0:
			d.resetLocked()
		default:
			d.written, d.hash, d.marks = good, h, marks
		}
	})
	if err != nil {
		return err
	}
	if err := d.settlePending(pf.f); err != nil { // written again after the truncation
		return err
	}
	if good < st.Written {
		d.log.Warn("download: the partial file does not hold what was written; continuing from the last byte that checks",
			"file", pf.f.Name(), "written", st.Written, "good", good)
		pf.checkpoint(d, true)
	}
	d.log.Info("download: verified the partial file", "bytes", good, "took", took)
	return nil
}

// checkpoint saves the state: the data is synced first, so the state
// never claims bytes the disk may not hold. Forced, it saves now; else a
// timer saves it, off the download's goroutine (an fsync must not stall
// the transfer), at most every saveEvery: progress not saved yet is saved
// even if no block follows, so the state trails the data by a quarter of a
// second at most. A failure is logged; the previous state stays valid.
func (pf *partFile) checkpoint(d *Download, force bool) {
	if pf.inPlace {
		return
	}
	if force {
		pf.saving.Lock()
		pf.saveLocked(d)
		pf.saving.Unlock()
		return
	}
	pf.sched.Lock()
	defer pf.sched.Unlock()
	if pf.closed || pf.later != nil {
		return
	}
	pf.later = time.AfterFunc(max(0, saveEvery-time.Since(pf.lastSave)), func() {
		pf.saving.Lock()
		defer pf.saving.Unlock()
		pf.sched.Lock()
		pf.later = nil
		closed := pf.closed
		pf.sched.Unlock()
		if !closed {
			pf.saveLocked(d)
		}
	})
}

// stopSaving ends the timer's saves, for settle, once a save in flight
// is over.
func (pf *partFile) stopSaving() {
	pf.sched.Lock()
	pf.closed = true
	if pf.later != nil {
		pf.later.Stop()
		pf.later = nil
	}
	pf.sched.Unlock()
	pf.saving.Lock()
	//lint:ignore SA2001 empty on purpose: it waits for a save in flight to end
	pf.saving.Unlock()
}

// saveLocked syncs the data and saves the state. pf.saving is held.
func (pf *partFile) saveLocked(d *Download) {
	pf.sched.Lock()
	pf.lastSave = time.Now()
	pf.sched.Unlock()
	st, err := d.State()
	if err != nil {
		return
	}
	// Blocks join the prefix or the pending list: the sum grows, but
	// when blocks of another size are dropped (pending.go), which the
	// next block's save then records.
	saved := st.Written
	for _, b := range st.Pending {
		saved += int64(b.Size)
	}
	if saved == pf.savedAt {
		return
	}
	if err = pf.f.Sync(); err == nil {
		err = SaveState(pf.path+StateSuffix, st)
	}
	if err != nil {
		d.log.Warn("download: saving the state", "err", err)
		return
	}
	pf.savedAt = saved
}

// truncate cuts the data to n bytes and runs reset, which makes the
// download agree, with no save in between: no state ever claims bytes a
// truncation took.
func (pf *partFile) truncate(n int64, reset func()) error {
	pf.saving.Lock()
	defer pf.saving.Unlock()
	if err := pf.f.Truncate(n); err != nil {
		return &writeError{err}
	}
	reset()
	pf.savedAt = -1 // whatever it claimed, the next save is due
	return nil
}

// verify checks the complete file as it is on disk: synced, then read back
// against the running hash and its checkpoints. A file that differs from
// what was written is truncated to its last good byte (errDamaged: the
// download continues from there); a third time is ErrVerify.
func (pf *partFile) verify(ctx context.Context, d *Download) error {
	if pf.inPlace {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.acceptLocked(d.hash.Sum(nil))
	}
	st, err := d.State()
	if err != nil {
		return err
	}
	if err := pf.truncate(st.Written, func() {}); err != nil { // bytes past the body are not ours
		return err
	}
	if err := pf.f.Sync(); err != nil {
		return &writeError{err}
	}
	dropCache(pf.f) // read back from the disk, not from memory
	good, h, marks, err := checkPrefix(ctx, pf.f, st.Written, checkpoints{every: st.CheckpointEvery, sums: st.Checkpoints}, st.Hash)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return &writeError{fmt.Errorf("reading %s back: %w", pf.f.Name(), err)}
	}
	if good == st.Written {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.acceptLocked(h.Sum(nil))
	}
	if pf.damaged++; pf.damaged >= 3 {
		return fmt.Errorf("%w: %s keeps changing on disk (at byte %d)", ErrVerify, pf.f.Name(), good)
	}
	err = pf.truncate(good, func() {
		d.mu.Lock()
		d.written, d.hash, d.marks = good, h, marks
		d.mu.Unlock()
	})
	if err != nil {
		return err
	}
	pf.checkpoint(d, true)
	return fmt.Errorf("%w after byte %d", errDamaged, good)
}

// settle puts the files in order at the end: a verified body renamed into
// place and the directory synced; a failure before any byte leaves
// nothing; a body that cannot be continued (changed, failed verification)
// is kept without its state, so the next run starts over; anything else
// keeps both, for the next run to continue.
func (pf *partFile) settle(d *Download, err error) error {
	if pf.inPlace {
		if pf.f != nil {
			if cerr := pf.f.Close(); err == nil && cerr != nil {
				err = &writeError{cerr}
			}
		}
		return err
	}
	pf.stopSaving() // no timer saves from here: only the forced ones below
	part, state := pf.path+PartSuffix, pf.path+StateSuffix
	written := d.Written()
	if fi, lerr := os.Lstat(pf.path); err == nil && lerr == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%w: %s became a %s while the download ran; the verified body stays in %s", ErrOutput, pf.path, kindOf(fi.Mode()), part)
		pf.checkpoint(d, true)
	}
	switch {
	case err == nil:
		if rerr := renameHeld(pf.f, part, pf.path); rerr != nil {
			pf.checkpoint(d, true)
			err = &writeError{rerr}
			break
		}
		os.Remove(state)
		if serr := syncDir(filepath.Dir(pf.path)); serr != nil {
			err = &writeError{serr}
		}
	case written == 0:
		os.Remove(part)
		os.Remove(state)
	case errors.Is(err, ErrResourceChanged) || errors.Is(err, ErrUnverified) || errors.Is(err, ErrVerify):
		os.Remove(state)
	case errors.Is(err, ErrOutput):
		// Kept, state and all, for a run once the path is usable again.
	default:
		pf.checkpoint(d, true)
	}
	if cerr := pf.f.Close(); err == nil && cerr != nil && !errors.Is(cerr, os.ErrClosed) {
		err = &writeError{cerr}
	}
	return err
}

// kindOf names a file's type for messages.
func kindOf(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "FIFO"
	case m&fs.ModeDevice != 0:
		return "device"
	case m&fs.ModeSocket != 0:
		return "socket"
	}
	return "special file"
}

// syncDir makes a rename or a creation in dir durable.
func syncDir(dir string) error { return durable.SyncDir(dir) }

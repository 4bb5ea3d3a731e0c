// Package durable writes small files so that they survive a power cut:
// the data goes to a temporary file beside the target, which is synced,
// closed and renamed over the target, and then the folder is synced so
// that the rename itself is on disk. After a crash at any point the
// target holds either its old content or the new one, never a mix, an
// empty file or nothing; and a failure (a full disk) leaves no temporary
// file behind.
//
// It is the one writer of state files for download and lwm2m. It depends
// on the standard library alone.
package durable

import (
	"os"
	"path/filepath"
)

// step names the operations WriteFile carries out, in order, for tests
// that check none is skipped.
type step string

const (
	stepWrite   step = "write"
	stepSync    step = "sync"
	stepClose   step = "close"
	stepRename  step = "rename"
	stepSyncDir step = "syncdir"
)

// trace, when set by a test, is called before each step.
var trace func(step, string)

func note(s step, name string) {
	if trace != nil {
		trace(s, name)
	}
}

// WriteFile writes data to path durably with permissions perm (before the
// umask): a temporary file in path's folder, synced, renamed over path,
// and the folder synced. On error path is unchanged and no temporary file
// remains.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	name := tmp.Name()
	fail := func(err error) error {
		_ = tmp.Close()
		_ = os.Remove(name)
		return err
	}
	note(stepWrite, name)
	if _, err := tmp.Write(data); err != nil {
		return fail(err)
	}
	if err := tmp.Chmod(perm); err != nil {
		return fail(err)
	}
	note(stepSync, name)
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	note(stepClose, name)
	if err := tmp.Close(); err != nil {
		_ = os.Remove(name)
		return err
	}
	note(stepRename, path)
	if err := os.Rename(name, path); err != nil {
		_ = os.Remove(name)
		return err
	}
	return SyncDir(dir)
}

// Remove removes path and syncs its folder, so that the removal survives
// a power cut. A path that does not exist is no error.
func Remove(path string) error {
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// SyncDir makes a rename, a creation or a removal in dir durable. Where
// the platform cannot sync a folder (Windows), it does nothing.
func SyncDir(dir string) error {
	note(stepSyncDir, dir)
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil && !dirSyncSupported {
		return nil
	}
	return err
}

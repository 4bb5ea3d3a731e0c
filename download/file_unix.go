//go:build unix

package download

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// noFollow makes an open fail on a symbolic link: a NAME.part that is a
// link is never written through.
const noFollow = syscall.O_NOFOLLOW

// renameHeld renames the .part into place while its lock is held, so no
// other download can take it between its verification and its rename.
func renameHeld(f *os.File, from, to string) error {
	held, err := f.Stat()
	if err != nil {
		return err
	}
	if now, err := os.Lstat(from); err != nil || !os.SameFile(held, now) {
		return fmt.Errorf("%w: %s is no longer the file this download wrote", ErrOutput, from)
	}
	return os.Rename(from, to)
}

// openInPlace opens a device or FIFO to write the body into. A FIFO's
// open blocks until a reader opens it; here it waits for one without
// blocking (a non-blocking open fails with ENXIO until then), so ctx still
// ends the wait.
func openInPlace(ctx context.Context, path string) (*os.File, error) {
	for {
		f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if !errors.Is(err, syscall.ENXIO) {
			return f, err
		}
		select {
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// lockFile takes an exclusive advisory lock (flock(2)) on f for as long as
// it stays open; held by another open of the file, in this process or
// another, it fails at once with ErrLocked naming the holder.
func lockFile(f *os.File) error {
	err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EWOULDBLOCK) {
		return fmt.Errorf("download: lock %s: %w", f.Name(), err)
	}
	who := "another download"
	if pid := lockHolder(f); pid == os.Getpid() {
		who = "another download in this process"
	} else if pid > 0 {
		who = fmt.Sprintf("process %d", pid)
	}
	return fmt.Errorf("%w: %s is locked by %s", ErrLocked, f.Name(), who)
}

// lockHolder finds the process holding a flock on f in /proc/locks (Linux);
// 0 if it cannot tell.
func lockHolder(f *os.File) int {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return 0
	}
	id := fmt.Sprintf("%02x:%02x:%d", unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev)), st.Ino)
	locks, err := os.Open("/proc/locks")
	if err != nil {
		return 0
	}
	defer locks.Close()
	sc := bufio.NewScanner(locks)
	for sc.Scan() {
		// "1: FLOCK  ADVISORY  WRITE 15199 fe:00:9977871 0 EOF"; waiters
		// have "->" after the number.
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[1] != "FLOCK" || fields[5] != id {
			continue
		}
		if pid, err := strconv.Atoi(fields[4]); err == nil {
			return pid
		}
	}
	return 0
}

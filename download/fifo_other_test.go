//go:build !unix

package download_test

import "errors"

// mkfifo fails where there are no FIFOs (Windows).
func mkfifo(string, uint32) error { return errors.ErrUnsupported }

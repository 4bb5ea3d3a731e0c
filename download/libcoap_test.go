package download_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/tether-iot/tether/download"
	"github.com/tether-iot/tether/internal/peertest"
)

// TestResumeAgainstLibcoap: libcoap's ETag is a per-transfer counter, absent
// from a request for block N > 0 outside an ongoing transfer, so a resume
// from a new process cannot be verified. The default policy reports that
// and never renames the partial file; the Restart policy starts over and
// ends with the right SHA-256.
func TestResumeAgainstLibcoap(t *testing.T) {
	data := randomBytes(256<<10, 20)
	port := peertest.LibcoapServer(t, "fw.bin", data)
	url := "coap://127.0.0.1:" + strconv.Itoa(port) + "/fw.bin"
	path := filepath.Join(t.TempDir(), "fw.bin")

	interrupt := func() {
		ctx, cancel := context.WithCancel(context.Background())
		fd, err := download.ToFile(ctx, url, path, &download.Options{Progress: func(p download.Progress) {
			if p.Written >= int64(len(data)/2) {
				cancel() // the process dies halfway
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		if err := fd.Wait(); !errors.Is(err, context.Canceled) {
			t.Fatalf("first run: %v", err)
		}
		st, err := download.LoadState(path + download.StateSuffix)
		if err != nil || len(st.ETag) == 0 {
			t.Fatalf("first run saved %+v, %v; want libcoap's ETag in it", st, err)
		}
	}

	interrupt()
	fd, err := download.ToFile(context.Background(), url, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = fd.Wait()
	if !errors.Is(err, download.ErrResourceChanged) {
		t.Fatalf("resume that libcoap answers without an ETag: %v, want ErrResourceChanged", err)
	}
	if _, serr := os.Stat(path); !errors.Is(serr, os.ErrNotExist) {
		t.Fatal("an unverifiable download was renamed to its final name")
	}
	t.Logf("default policy: %v", err)

	interrupt()
	fd, err = download.ToFile(context.Background(), url, path, &download.Options{OnChange: download.Restart})
	if err != nil {
		t.Fatal(err)
	}
	if err := fd.Wait(); err != nil {
		t.Fatalf("Restart policy: %v", err)
	}
	got, _ := os.ReadFile(path)
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatal("SHA-256 differs")
	}
}

package download_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/download"
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/internal/testrig/coaprig"
)

// leftovers lists the files of a download of path that exist.
func leftovers(path string) []string {
	var out []string
	for _, f := range []string{path, path + download.PartSuffix, path + download.StateSuffix} {
		if _, err := os.Lstat(f); err == nil {
			out = append(out, filepath.Base(f))
		}
	}
	return out
}

// TestOneWriter: a second download of the same path, while the first runs,
// fails at once with ErrLocked and touches nothing; the first ends with
// exactly the served bytes.
func TestOneWriter(t *testing.T) {
	data := testrig.Bytes(256<<10, 80)
	synctest.Test(t, func(t *testing.T) {
		w, a := serving(t, data, 5*time.Millisecond)
		path := filepath.Join(t.TempDir(), "fw.bin")
		first, err := download.ToFile(context.Background(), fileURL, path, &download.Options{NewSocket: w.socket})
		if err != nil {
			t.Fatal(err)
		}
		for first.Written() < int64(len(data)/4) {
			time.Sleep(10 * time.Millisecond)
		}
		before := a.Total()
		second, err := download.ToFile(context.Background(), fileURL, path, &download.Options{NewSocket: w.socket})
		if !errors.Is(err, download.ErrLocked) || second != nil || !strings.Contains(err.Error(), "this process") {
			t.Fatalf("second download of the same path: %v, want ErrLocked naming this process", err)
		}
		if err := first.Wait(); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(path)
		if !bytes.Equal(got, data) {
			t.Fatal("the first download's file differs from the served one")
		}
		if a.Total()-before > len(data)/1024 {
			t.Fatal("the refused download made requests")
		}
		// Once the first has ended, the path is free again.
		again, err := download.ToFile(context.Background(), fileURL, path, &download.Options{NewSocket: w.socket})
		if err != nil {
			t.Fatal(err)
		}
		if err := again.Wait(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestOutputs: where a file download may and may not go, decided before
// any request and before any file is made.
func TestOutputs(t *testing.T) {
	data := testrig.Bytes(20<<10, 81)
	synctest.Test(t, func(t *testing.T) {
		w, a := serving(t, data, 0)
		dir := t.TempDir()
		opts := &download.Options{NewSocket: w.socket}

		// A directory: an error, no request, nothing created in it.
		sub := filepath.Join(dir, "sub")
		os.Mkdir(sub, 0o755)
		if _, err := download.ToFile(context.Background(), fileURL, sub, opts); !errors.Is(err, download.ErrOutput) {
			t.Errorf("to a directory: %v, want ErrOutput", err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 || a.Total() != 0 {
			t.Errorf("to a directory: %d entries, %d requests", len(entries), a.Total())
		}

		// A bad URL, bad options: no file at all.
		out := filepath.Join(dir, "fw.bin")
		for _, c := range []struct {
			url  string
			opts download.Options
		}{
			{"coap://fw.sim", download.Options{}},
			{"gopher://fw.sim/fw.bin", download.Options{}},
			{fileURL, download.Options{BlockSize: 1000}},
			{fileURL, download.Options{SHA256: []byte{1}}},
			{"coaps://fw.sim/fw.bin", download.Options{}}, // no credentials
		} {
			if _, err := download.ToFile(context.Background(), c.url, out, &c.opts); err == nil {
				t.Errorf("ToFile(%q, %+v) accepted", c.url, c.opts)
			}
			if left := leftovers(out); len(left) > 0 {
				t.Errorf("ToFile(%q) left %v", c.url, left)
			}
		}

		// A 4.04: an error, and no file either.
		d, err := download.ToFile(context.Background(), "coap://fw.sim/missing.bin", out, opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Wait(); err == nil {
			t.Error("a missing resource downloaded")
		}
		if left := leftovers(out); len(left) > 0 {
			t.Errorf("a 4.04 left %v", left)
		}

		// A symbolic link: followed; the file it names is replaced, the
		// link stays a link.
		target := filepath.Join(dir, "real.bin")
		os.WriteFile(target, []byte("old"), 0o644)
		link := filepath.Join(dir, "link.bin")
		os.Symlink(target, link)
		d, err = download.ToFile(context.Background(), fileURL, link, opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Wait(); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(target)
		if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 || !bytes.Equal(got, data) || d.Path() != target {
			t.Errorf("through a symbolic link: link kept %v, target holds the body %v, Path %q", err == nil && fi.Mode()&os.ModeSymlink != 0, bytes.Equal(got, data), d.Path())
		}
		dangling := filepath.Join(dir, "dangling.bin")
		os.Symlink(filepath.Join(dir, "nowhere"), dangling)
		if _, err := download.ToFile(context.Background(), fileURL, dangling, opts); !errors.Is(err, download.ErrOutput) {
			t.Errorf("to a dangling link: %v, want ErrOutput", err)
		}
	})
}

// TestFIFOIsWrittenInPlace: a FIFO (a /dev/stdout that is a pipe, say) is
// written in place, never renamed over, with no .part beside it.
func TestFIFOIsWrittenInPlace(t *testing.T) {
	data := testrig.Bytes(50<<10, 82)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe")
	if err := mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no FIFOs here: %v", err)
	}
	url := coaprig.ServeFile(t, data, nil)
	// A writer of our own keeps the reader's open from blocking, and its
	// close gives the reader its end of file, whatever the download did.
	keep, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	read := make(chan []byte)
	go func() {
		f, err := os.Open(fifo)
		if err != nil {
			read <- nil
			return
		}
		defer f.Close()
		b, _ := io.ReadAll(f)
		read <- b
	}()
	d, err := download.ToFile(context.Background(), url, fifo, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = d.Wait()
	keep.Close()
	got := <-read
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(fifo)
	if err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Fatalf("the FIFO was replaced: %v, %v", fi.Mode(), err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("%d bytes through the FIFO, want the served %d", len(got), len(data))
	}
	if left := leftovers(fifo); len(left) != 1 {
		t.Fatalf("files beside the FIFO: %v", left)
	}
	if sum := sha256.Sum256(data); !bytes.Equal(d.Sum(), sum[:]) {
		t.Fatal("Sum differs")
	}
}

// TestDoneMeansSettled: a file download's Done is closed only once the
// file is in place, and a rename that fails is its error.
func TestDoneMeansSettled(t *testing.T) {
	data := testrig.Bytes(64<<10, 83)
	synctest.Test(t, func(t *testing.T) {
		w, _ := serving(t, data, time.Millisecond)
		var c download.Controller
		path := filepath.Join(t.TempDir(), "fw.bin")
		d, err := c.ToFile(context.Background(), fileURL, path, &download.Options{NewSocket: w.socket})
		if err != nil {
			t.Fatal(err)
		}
		<-d.Done()
		if left := leftovers(path); d.Err() != nil || len(left) != 1 || left[0] != "fw.bin" {
			t.Fatalf("at Done: %v, files %v; want fw.bin alone", d.Err(), left)
		}

		// The final name turns into a directory while the download runs:
		// nothing is renamed over it, and that is the download's error,
		// there at Done.
		blocked := filepath.Join(t.TempDir(), "fw.bin")
		d, err = c.ToFile(context.Background(), fileURL, blocked, &download.Options{NewSocket: w.socket})
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Join(blocked, "x"), 0o755)
		<-d.Done()
		if err := d.Err(); !errors.Is(err, download.ErrOutput) || !strings.Contains(err.Error(), "became a directory") {
			t.Fatalf("a directory in the way at the end: %v", err)
		}
		if st, err := download.LoadState(blocked + download.StateSuffix); err != nil || st.Written != int64(len(data)) {
			t.Fatalf("the complete body's state was not kept for a rerun: %+v, %v", st, err)
		}
	})
}

// TestPartIsNeverWrittenThrough: a NAME.part that is a symbolic link, a
// FIFO or a directory is refused before anything is written: the file a
// link names is never truncated, even by a download that fails.
func TestPartIsNeverWrittenThrough(t *testing.T) {
	data := testrig.Bytes(10<<10, 84)
	synctest.Test(t, func(t *testing.T) {
		w, _ := serving(t, data, 0)
		dir := t.TempDir()
		victim := filepath.Join(dir, "victim")
		os.WriteFile(victim, []byte("precious"), 0o644)
		for name, make := range map[string]func(string) error{
			"link":      func(p string) error { return os.Symlink(victim, p) },
			"fifo":      func(p string) error { return mkfifo(p, 0o600) },
			"directory": func(p string) error { return os.Mkdir(p, 0o755) },
		} {
			for _, url := range []string{fileURL, "coap://fw.sim/missing.bin"} {
				out := filepath.Join(dir, name)
				if err := make(out + download.PartSuffix); err != nil && !errors.Is(err, os.ErrExist) {
					t.Fatal(err)
				}
				d, err := download.ToFile(context.Background(), url, out, &download.Options{NewSocket: w.socket})
				if err == nil {
					err = d.Wait()
				}
				if !errors.Is(err, download.ErrOutput) {
					t.Errorf("%s.part as a %s: %v, want ErrOutput", name, name, err)
				}
				if b, _ := os.ReadFile(victim); string(b) != "precious" {
					t.Fatalf("%s.part: the file it names now holds %q", name, b)
				}
				if _, err := os.Lstat(out); err == nil {
					t.Errorf("%s.part: %s was created", name, out)
				}
			}
		}
	})
}

// TestAnotherURLsPart: a .part and state left by a download of another URL
// are not discarded by mistake: the download is refused, both files stay,
// and with OnChange: Restart they are replaced.
func TestAnotherURLsPart(t *testing.T) {
	data := testrig.Bytes(10<<10, 85)
	synctest.Test(t, func(t *testing.T) {
		w, _ := serving(t, data, 0)
		path := filepath.Join(t.TempDir(), "fw.bin")
		os.WriteFile(path+download.PartSuffix, []byte("half of something else"), 0o644)
		download.SaveState(path+download.StateSuffix, &download.State{Version: 1, URL: "http://elsewhere.sim/x", Written: 22,
			Total: -1, Hash: runningHash([]byte("half of something else"))})
		_, err := download.ToFile(context.Background(), fileURL, path, &download.Options{NewSocket: w.socket})
		if !errors.Is(err, download.ErrOutput) || !strings.Contains(err.Error(), "http://elsewhere.sim/x") {
			t.Fatalf("over another URL's partial download: %v, want ErrOutput naming it", err)
		}
		if st, err := download.LoadState(path + download.StateSuffix); err != nil || st.Written != 22 {
			t.Fatalf("the other download's state was touched: %+v, %v", st, err)
		}
		d, err := download.ToFile(context.Background(), fileURL, path, &download.Options{NewSocket: w.socket, OnChange: download.Restart})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Wait(); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(path); !bytes.Equal(got, data) {
			t.Fatal("with Restart: the file differs")
		}
	})
}

// TestFailuresBeforeAnyFileWork: a state path that cannot be read, or a
// context that ends before anything happens, leaves no .part behind and
// an earlier run's files as they were.
func TestFailuresBeforeAnyFileWork(t *testing.T) {
	data := testrig.Bytes(10<<10, 86)
	synctest.Test(t, func(t *testing.T) {
		w, _ := serving(t, data, 0)
		dir := t.TempDir()
		out := filepath.Join(dir, "x")
		os.Mkdir(out+download.StateSuffix, 0o755)
		if _, err := download.ToFile(context.Background(), fileURL, out, &download.Options{NewSocket: w.socket}); err == nil {
			t.Fatal("a state path that is a directory was accepted")
		}
		if _, err := os.Lstat(out + download.PartSuffix); err == nil {
			t.Fatal("an empty .part was left behind")
		}

		// A resumable pair, and a run stopped while it re-reads them: the
		// state is the same afterwards.
		path := filepath.Join(dir, "fw.bin")
		os.WriteFile(path+download.PartSuffix, data[:4096], 0o644)
		st := &download.State{Version: 1, URL: fileURL, Written: 4096, BlockSize: 1024, Total: int64(len(data)), Hash: runningHash(data[:4096])}
		download.SaveState(path+download.StateSuffix, st)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		d, err := download.ToFile(ctx, fileURL, path, &download.Options{NewSocket: w.socket})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Wait(); !errors.Is(err, context.Canceled) {
			t.Fatalf("stopped at once: %v", err)
		}
		if again, err := download.LoadState(path + download.StateSuffix); err != nil || again.Written != 4096 {
			t.Fatalf("the state after a stop at once: %+v, %v", again, err)
		}
	})
}

// TestFIFOWithoutReader: a FIFO nobody reads is waited on, but no longer
// than the context allows.
func TestFIFOWithoutReader(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "pipe")
	if err := mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no FIFOs here: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	d, err := download.ToFile(ctx, "coap://127.0.0.1:1/fw.bin", fifo, nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("still waiting for a reader 30 s after its context ended")
	}
	if err := d.Err(); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "waits for its reader") {
		t.Fatalf("%v, want the context's deadline, while waiting for a reader", err)
	}
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Fatal("the FIFO was replaced")
	}
}

// TestOutputBecomesSpecial: the final name turns into a FIFO while the
// download runs: it is not renamed over, and the verified body and its
// state stay for a later run.
func TestOutputBecomesSpecial(t *testing.T) {
	data := testrig.Bytes(64<<10, 87)
	synctest.Test(t, func(t *testing.T) {
		w, _ := serving(t, data, time.Millisecond)
		path := filepath.Join(t.TempDir(), "fw.bin")
		d, err := download.ToFile(context.Background(), fileURL, path, &download.Options{NewSocket: w.socket})
		if err != nil {
			t.Fatal(err)
		}
		if err := mkfifo(path, 0o600); err != nil {
			t.Skipf("no FIFOs here: %v", err)
		}
		if err := d.Wait(); !errors.Is(err, download.ErrOutput) {
			t.Fatalf("%v, want ErrOutput", err)
		}
		if fi, err := os.Lstat(path); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
			t.Fatal("the FIFO was replaced")
		}
		if st, err := download.LoadState(path + download.StateSuffix); err != nil || st.Written != int64(len(data)) {
			t.Fatalf("the verified body's state: %+v, %v", st, err)
		}
		os.Remove(path)
		d, err = download.ToFile(context.Background(), fileURL, path, &download.Options{NewSocket: w.socket})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Wait(); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(path); !bytes.Equal(got, data) {
			t.Fatal("the file differs")
		}
	})
}

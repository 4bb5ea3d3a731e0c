package durable

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestWriteFileSyncsBeforeAndAfterTheRename: the data is synced before the
// rename (else a power cut can leave an empty file under the new name) and
// the folder after it (else the rename itself can be lost).
func TestWriteFileSyncsBeforeAndAfterTheRename(t *testing.T) {
	var steps []step
	trace = func(s step, _ string) { steps = append(steps, s) }
	defer func() { trace = nil }()
	path := filepath.Join(t.TempDir(), "state.json")
	if err := WriteFile(path, []byte(`{"a":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	want := []step{stepWrite, stepSync, stepClose, stepRename, stepSyncDir}
	if !slices.Equal(steps, want) {
		t.Fatalf("steps %v, want %v", steps, want)
	}
	b, err := os.ReadFile(path)
	if err != nil || string(b) != `{"a":1}` {
		t.Fatalf("read back %q, %v", b, err)
	}
	if fi, _ := os.Stat(path); dirSyncSupported && fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
}

// TestWriteFileFailureLeavesNothing: when the rename fails (the target is
// a folder) the old target is untouched and no temporary file remains.
func TestWriteFileFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "state.json")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, "keep"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(target, []byte("x"), 0o644); err == nil {
		t.Fatal("WriteFile over a non-empty folder succeeded")
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Fatalf("a temporary file stayed: %s", e.Name())
		}
	}
	if fi, err := os.Stat(target); err != nil || !fi.IsDir() {
		t.Fatalf("the target changed: %v %v", fi, err)
	}
}

func TestRemove(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("still there: %v", err)
	}
	if err := Remove(path); err != nil {
		t.Fatalf("removing what is gone: %v", err)
	}
}

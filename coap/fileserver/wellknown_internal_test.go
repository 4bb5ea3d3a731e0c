package fileserver

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mkfiles(t *testing.T, dir string, n int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d", i)), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestListingScanBound: making a listing reads at most maxScan directory
// entries, all directories together, however many there are; which ones
// past the bound is the file system's order, so only counts are checked.
func TestListingScanBound(t *testing.T) {
	dir := t.TempDir()
	mkfiles(t, dir, 3)                      // f000 f001 f002, and "z": 4 entries
	mkfiles(t, filepath.Join(dir, "z"), 50) // 50 more
	s, err := New(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range []struct {
		scan, links int
		truncated   bool
	}{
		{10, 3 + 6, true}, // the root's 4 entries, then 6 of z's 50
		{4, 3, true},      // the root only
		{2, 2, true},      // two of the root's entries, perhaps both files
		{1000, 3 + 50, false},
	} {
		body, truncated, err := s.makeListing(1<<20, tc.scan)
		if err != nil {
			t.Fatal(err)
		}
		links := strings.Count(string(body), ",") + 1
		if tc.scan == 2 {
			// "z" may be among the two: then one link, or none.
			if links > 2 || !truncated {
				t.Errorf("scan %d: %d links, truncated %v", tc.scan, links, truncated)
			}
			continue
		}
		if links != tc.links || truncated != tc.truncated {
			t.Errorf("scan %d: %d links (want %d), truncated %v\n%s", tc.scan, links, tc.links, truncated, body)
		}
	}
}

// TestListingByteBound: the listing is a prefix of whole links of the
// unbounded one, never longer than the bound.
func TestListingByteBound(t *testing.T) {
	dir := t.TempDir()
	mkfiles(t, dir, 40)
	s, err := New(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	full, truncated, err := s.makeListing(1<<20, maxScan)
	if err != nil || truncated {
		t.Fatal(err, truncated)
	}
	for bound := 0; bound <= len(full)+1; bound++ {
		body, truncated, err := s.makeListing(bound, maxScan)
		if err != nil {
			t.Fatal(err)
		}
		want := string(full)
		for len(want) > bound {
			want = want[:max(0, strings.LastIndex(want, ","))]
		}
		if string(body) != want || truncated != (len(want) < len(full)) {
			t.Fatalf("bound %d: %q (truncated %v), want %q", bound, body, truncated, want)
		}
	}
}

// TestListingFollowsTheDirectory: the listing is kept for listingTTL, then
// made again; its ETag follows its content.
func TestListingFollowsTheDirectory(t *testing.T) {
	dir := t.TempDir()
	mkfiles(t, dir, 1)
	s, err := New(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, err := s.wellKnown(nil)
	if err != nil {
		t.Fatal(err)
	}
	mkfiles(t, dir, 2)
	b, _ := s.wellKnown(nil)
	if b != a {
		t.Fatal("the listing was made again within its TTL")
	}
	s.listing.ttl = 0
	c, _ := s.wellKnown(nil)
	if string(c.data) != "</f000>;ct=42;sz=1,</f001>;ct=42;sz=1" || c.etag == a.etag {
		t.Fatalf("after a new file: %q, ETag %x then %x", c.data, a.etag, c.etag)
	}
}

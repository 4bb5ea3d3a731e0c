package download

import (
	"net/http"
	"testing"
	"time"
)

func TestContentRange(t *testing.T) {
	for _, tt := range []struct {
		in           string
		start, total int64
		ok           bool
	}{
		{"bytes 0-99/100", 0, 100, true},
		{"bytes 100-199/*", 100, -1, true},
		{"bytes 5-4/100", 0, 0, false},
		{"bytes 0-99/99", 0, 0, false},
		{"bytes -1-5/10", 0, 0, false},
		{"items 0-1/2", 0, 0, false},
		{"bytes 0-99", 0, 0, false},
		{"", 0, 0, false},
	} {
		start, total, ok := contentRange(tt.in)
		if ok != tt.ok || (ok && (start != tt.start || total != tt.total)) {
			t.Errorf("contentRange(%q) = %d, %d, %v", tt.in, start, total, ok)
		}
	}
}

func TestRetryAfterHeader(t *testing.T) {
	for in, want := range map[string]time.Duration{"": 0, "120": 2 * time.Minute, "-3": 0, "soon": 0, "99999999999": 0,
		"Mon, 02 Jan 2006 15:04:05 GMT": 0} { // a date in the past: no wait
		if got := retryAfterHeader(in); got != want {
			t.Errorf("retryAfterHeader(%q) = %v, want %v", in, got, want)
		}
	}
	future := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
	if got := retryAfterHeader(future); got < 59*time.Minute || got > time.Hour {
		t.Errorf("retryAfterHeader(%q) = %v, want about an hour", future, got)
	}
}

func FuzzContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-99/100", "bytes 100-199/*", "bytes 9223372036854775806-9223372036854775807/*", "bytes 1-0/5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		start, total, ok := contentRange(s)
		if !ok {
			return
		}
		if start < 0 || total < -1 || (total >= 0 && total <= start) {
			t.Fatalf("contentRange(%q) = %d, %d: not a range a body can have", s, start, total)
		}
	})
}

func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"120", "Mon, 02 Jan 2006 15:04:05 GMT", "", "-1", "1e9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if d := retryAfterHeader(s); d < 0 {
			t.Fatalf("retryAfterHeader(%q) = %v", s, d)
		}
	})
}

package coap_test

import (
	"testing"

	"github.com/tether-iot/tether/coap"
)

// TestFramerBuffered: Buffered counts what is held and not decoded (a
// partial frame, frames not yet taken), and Reset drops it.
func TestFramerBuffered(t *testing.T) {
	ping, err := coap.AppendTCP(nil, &coap.Message{Code: coap.Ping, Token: []byte{7}})
	if err != nil {
		t.Fatal(err)
	}
	two := append(append([]byte(nil), ping...), ping...)
	for _, tc := range []struct {
		name     string
		in       []byte
		frames   int // taken with Next
		buffered int
	}{
		{"nothing", nil, 0, 0},
		{"a partial frame", ping[:1], 0, 1},
		{"a whole frame, not taken", ping, 0, len(ping)},
		{"a whole frame, taken", ping, 1, 0},
		{"two frames, one taken", two, 1, len(ping)},
		{"a frame and a partial one, one taken", two[:len(ping)+1], 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := coap.NewFramer(1024)
			f.Advance(copy(f.Space(), tc.in))
			var m coap.Message
			for range tc.frames {
				if ok, err := f.Next(&m); !ok || err != nil {
					t.Fatalf("Next: %v %v", ok, err)
				}
			}
			if got := f.Buffered(); got != tc.buffered {
				t.Errorf("Buffered = %d, want %d", got, tc.buffered)
			}
			f.Reset()
			if ok, _ := f.Next(&m); ok || f.Buffered() != 0 {
				t.Errorf("after Reset: a frame %v, %d buffered", ok, f.Buffered())
			}
		})
	}
}

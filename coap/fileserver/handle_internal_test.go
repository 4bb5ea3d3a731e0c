package fileserver

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/tether-iot/tether/coap"
)

// TestHandleAllocatesNothingPerBlock: checking a request's options and
// serving a block, of a file or of the listing, allocate nothing.
func TestHandleAllocatesNothingPerBlock(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "fw.bin"), bytes.Repeat([]byte("x"), 8192), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := New(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := newResponse(udpMaxPayload)
	for _, path := range [][]string{{"fw.bin"}, {".well-known", "core"}} {
		req := &coap.Message{Code: coap.GET}
		req.Options = req.Options.Add(coap.Option{ID: coap.URIHost, Value: []byte("fw.example")})
		for _, seg := range path {
			req.Options = req.Options.Add(coap.Option{ID: coap.URIPath, Value: []byte(seg)})
		}
		req.Options, _ = coap.AppendUint(req.Options, nil, coap.Block2, coap.Block{Num: 0, SZX: 0}.Value())
		req.Options = req.Options.Add(coap.Option{ID: 65000, Value: []byte("elective")})
		s.handle(req, r, limits{maxPayload: udpMaxPayload}, client{})
		if r.m.Code != coap.Content {
			t.Fatalf("%v: %v", path, coap.CodeString(r.m.Code))
		}
		if n := testing.AllocsPerRun(100, func() { s.handle(req, r, limits{maxPayload: udpMaxPayload}, client{}) }); n != 0 {
			t.Errorf("%v: %v allocations per block", path, n)
		}
	}
}

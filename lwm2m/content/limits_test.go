package content

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// allocated returns the bytes that f allocates, on average over runs.
func allocated(runs int, f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / uint64(runs)
}

// TestDecodeAllocationBound: the worst payloads for each decoder (the
// most records, links or parameters per byte, braces that a cheap count
// takes for records) allocate at most 64 bytes per payload byte, and a
// few KiB. A Record is 80 bytes and a TLV record 2: 40 per byte.
func TestDecodeAllocationBound(t *testing.T) {
	anyString := func(p Path) (Type, bool) { return String, true }
	var tlv, json, cbor bytes.Buffer
	for id := range 256 {
		tlv.Write([]byte{0xC0, byte(id)}) // an empty String
	}
	json.WriteString(`[{"bn":"/1/0/","n":"0","vs":""}`)
	cbor.Write([]byte{0x99, 0x01, 0x00}) // 256 records
	cbor.Write([]byte{0xA3, 0x21, 0x65, '/', '1', '/', '0', '/', 0x00, 0x61, '0', 0x03, 0x60})
	for id := 1; id < 256; id++ {
		fmt.Fprintf(&json, `,{"n":"%d","vs":""}`, id)
		n := fmt.Sprint(id)
		cbor.Write(append([]byte{0xA2, 0x00, 0x60 + byte(len(n))}, append([]byte(n), 0x03, 0x60)...))
	}
	json.WriteString("]")
	tests := []struct {
		name    string
		payload []byte
		decode  func([]byte) error
	}{
		{"TLV empty strings", tlv.Bytes(), func(b []byte) error { _, err := Decode(TLV, InstancePath(1, 0), b, anyString); return err }},
		{"SenML JSON empty strings", json.Bytes(), func(b []byte) error { _, err := Decode(SenMLJSON, InstancePath(1, 0), b, anyString); return err }},
		{"SenML JSON braces in a string", []byte(`[{"bn":"/1/0/0","vs":"` + strings.Repeat("{", 4000) + `"}]`), func(b []byte) error {
			_, err := Decode(SenMLJSON, InstancePath(1, 0), b, anyString)
			return err
		}},
		{"SenML CBOR empty strings", cbor.Bytes(), func(b []byte) error { _, err := Decode(SenMLCBOR, InstancePath(1, 0), b, anyString); return err }},
		{"links", []byte(strings.Repeat("<>,", 1000) + "<>"), func(b []byte) error { _, err := ParseLinks(b); return err }},
		{"link parameters", []byte("<>" + strings.Repeat(";a", 2000)), func(b []byte) error { _, err := ParseLinks(b); return err }},
		{"text", []byte(strings.Repeat("x", 4000)), func(b []byte) error { _, err := Decode(Text, ResourcePath(1, 0, 0), b, anyString); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.decode(tt.payload); err != nil {
				t.Fatal(err)
			}
			got := allocated(20, func() { tt.decode(tt.payload) })
			limit := 64*uint64(len(tt.payload)) + 4096
			t.Logf("%d bytes allocated for %d bytes, %.1f per byte", got, len(tt.payload), float64(got)/float64(len(tt.payload)))
			if got > limit {
				t.Errorf("%d bytes allocated for %d bytes of payload, over %d", got, len(tt.payload), limit)
			}
		})
	}
}

// TestDecodeRefusesBeforeAllocating: a length or count that the payload
// cannot hold is refused, not allocated.
func TestDecodeRefusesBeforeAllocating(t *testing.T) {
	for name, c := range map[string]struct {
		f       Format
		payload []byte
	}{
		"TLV 24-bit length":     {TLV, []byte{0xD8, 0x00, 0xFF, 0xFF, 0xFF}},
		"CBOR 2^32 records":     {SenMLCBOR, []byte{0x9A, 0xFF, 0xFF, 0xFF, 0xFF, 0xA0}},
		"CBOR 2^64 records":     {SenMLCBOR, []byte{0x9B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xA0}},
		"CBOR 2^32-byte string": {SenMLCBOR, []byte{0x81, 0xA1, 0x03, 0x7A, 0xFF, 0xFF, 0xFF, 0xFF}},
		"CBOR 2^32 map entries": {SenMLCBOR, []byte{0x81, 0xBA, 0xFF, 0xFF, 0xFF, 0xFF}},
	} {
		var err error
		got := allocated(5, func() { _, err = Decode(c.f, InstancePath(3, 0), c.payload, testModel) })
		wantErr(t, err, ErrMalformed)
		if got > 16<<10 {
			t.Errorf("%s: %d bytes allocated", name, got)
		}
	}
}

package content

import (
	"errors"
	"testing"
)

func TestDecodePaths(t *testing.T) {
	cborOf := func(recs []Record) []byte {
		b, err := Encode(SenMLCBOR, Path{}, recs)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name    string
		f       Format
		payload []byte
		want    []Path
		err     error
	}{
		{"JSON names", SenMLJSON, []byte(`[{"n":"/3/0/0"},{"n":"/1/0"},{"n":"/5"}]`), []Path{ResourcePath(3, 0, 0), InstancePath(1, 0), ObjectPath(5)}, nil},
		{"JSON base name", SenMLJSON, []byte(`[{"bn":"/3/0/","n":"0"},{"n":"1"}]`), []Path{ResourcePath(3, 0, 0), ResourcePath(3, 0, 1)}, nil},
		{"JSON empty", SenMLJSON, []byte(`[]`), []Path{}, nil},
		{"JSON a value", SenMLJSON, []byte(`[{"n":"/3/0/0","vs":"x"}]`), nil, ErrMalformed},
		{"JSON not a path", SenMLJSON, []byte(`[{"n":"/x"}]`), nil, ErrMalformed},
		{"TLV", TLV, []byte{0}, nil, ErrUnsupported},
		{"CBOR with values is refused", SenMLCBOR, cborOf([]Record{{Path: ResourcePath(3, 0, 0), Value: IntValue(1)}}), nil, ErrMalformed},
	}
	for _, tc := range tests {
		got, err := DecodePaths(tc.f, tc.payload)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("%s: %v, want %v", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || len(got) != len(tc.want) {
			t.Errorf("%s: %v, %v; want %v", tc.name, got, err, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
				break
			}
		}
	}
}

// FuzzDecodePaths: any payload gives paths or an error, never a panic.
func FuzzDecodePaths(f *testing.F) {
	f.Add([]byte(`[{"bn":"/3/0/","n":"0"},{"n":"1"}]`), true)
	f.Add([]byte{0x81, 0xa1, 0x00, 0x66, '/', '3', '/', '0', '/', '0'}, false)
	f.Fuzz(func(t *testing.T, payload []byte, json bool) {
		format := SenMLCBOR
		if json {
			format = SenMLJSON
		}
		paths, err := DecodePaths(format, payload)
		if err == nil {
			for _, p := range paths {
				if !p.valid() {
					t.Fatalf("invalid path %v", p)
				}
			}
		}
	})
}

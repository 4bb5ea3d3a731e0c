package content

import (
	"testing"
)

// The Device instance of the TS's examples, /3/0, in each hierarchical
// format: what a Read of /3/0 costs the client (Encode) and a Write to
// it (Decode).

var benchFormats = []struct {
	name string
	f    Format
}{{"TLV", TLV}, {"SenMLJSON", SenMLJSON}, {"SenMLCBOR", SenMLCBOR}}

func BenchmarkEncodeDevice(b *testing.B) {
	recs := deviceRecords()
	base := InstancePath(3, 0)
	for _, bf := range benchFormats {
		b.Run(bf.name, func(b *testing.B) {
			payload, err := Encode(bf.f, base, recs)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Encode(bf.f, base, recs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecodeDevice(b *testing.B) {
	base := InstancePath(3, 0)
	for _, bf := range benchFormats {
		b.Run(bf.name, func(b *testing.B) {
			payload, err := Encode(bf.f, base, deviceRecords())
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decode(bf.f, base, payload, testModel); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

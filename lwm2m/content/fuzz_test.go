package content

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// The fuzz targets, one per decoder, run by scripts/fuzz with a bounded
// budget. Each is seeded with the table vectors and checks, beyond "no
// panic", that what decodes re-encodes, decodes to the same records and
// re-encodes to the same bytes.

// maxSeed keeps the long vectors (the 24-bit TLV length) out of the
// corpus: they would slow every execution that picks them.
const maxSeed = 4096

// fuzzTypeOf knows the test model and, for any other resource, a type
// from its id: every type is reachable (TypeNone too), and ids from 200
// up are unknown.
func fuzzTypeOf(p Path) (Type, bool) {
	if t, ok := testModel(p); ok {
		return t, true
	}
	if r := p.Resource(); r < 200 {
		return Type(r % 10), true
	}
	return TypeNone, false
}

func isSentinel(err error) bool {
	for _, s := range []error{ErrBadPath, ErrMalformed, ErrUnsupported, ErrNotFound} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// roundTrip decodes payload and checks what comes out; it returns the
// re-encoded payload, nil when payload did not decode.
func roundTrip(t *testing.T, f Format, base Path, payload []byte) []byte {
	recs, err := Decode(f, base, payload, fuzzTypeOf)
	if err != nil {
		if !isSentinel(err) {
			t.Fatalf("Decode: an error that wraps no sentinel: %v", err)
		}
		if recs != nil {
			t.Fatalf("Decode: records with an error")
		}
		return nil
	}
	for _, r := range recs {
		if r.Path.Len() < 3 || !base.Contains(r.Path) || !r.Path.valid() {
			t.Fatalf("Decode at %v: record at %v", base, r.Path)
		}
		if typ, _ := fuzzTypeOf(r.Path); typ != r.Value.Type {
			t.Fatalf("Decode: %v is %v, not %v", r.Path, r.Value.Type, typ)
		}
		if err := r.Value.check(); err != nil {
			t.Fatalf("Decode: %v: %v", r.Path, err)
		}
	}
	enc, err := Encode(f, base, recs)
	if err != nil {
		t.Fatalf("Encode of decoded records %v: %v", recs, err)
	}
	again, err := Decode(f, base, enc, fuzzTypeOf)
	if err != nil {
		t.Fatalf("Decode of % X: %v", enc, err)
	}
	if !sameRecords(recs, again) {
		t.Fatalf("round trip:\n first  %v\n second %v", recs, again)
	}
	if enc2, err := Encode(f, base, again); err != nil || !bytes.Equal(enc, enc2) {
		t.Fatalf("Encode is not stable: % X then % X (%v)", enc, enc2, err)
	}
	return enc
}

func parseBase(s string) (Path, bool) {
	p, err := ParsePath(s)
	if err != nil && !errors.Is(err, ErrBadPath) {
		panic(err)
	}
	return p, err == nil
}

func addSeed(f *testing.F, payload []byte, base string) {
	if len(payload) <= maxSeed {
		f.Add(payload, base)
	}
}

func seedHex(f *testing.F, h, base string) {
	b, err := hex.DecodeString(strings.ReplaceAll(h, " ", ""))
	if err != nil {
		panic(err)
	}
	addSeed(f, b, base)
}

func FuzzTLV(f *testing.F) {
	for _, v := range tlvVectors {
		seedHex(f, v.tlv, v.base)
	}
	for _, v := range tlvLenient {
		seedHex(f, v.tlv, v.base)
	}
	for _, v := range tlvDecodeErrors {
		seedHex(f, v.tlv, v.base)
	}
	f.Fuzz(func(t *testing.T, payload []byte, baseStr string) {
		if base, ok := parseBase(baseStr); ok {
			roundTrip(t, TLV, base, payload)
		}
	})
}

func FuzzSenMLJSON(f *testing.F) {
	for _, v := range jsonVectors {
		addSeed(f, []byte(v.json), v.base)
	}
	for _, v := range jsonDecodes {
		addSeed(f, []byte(v.json), v.base)
	}
	for _, v := range jsonDecodeErrors {
		addSeed(f, []byte(v.json), v.base)
	}
	f.Fuzz(func(t *testing.T, payload []byte, baseStr string) {
		base, ok := parseBase(baseStr)
		if !ok {
			return
		}
		if enc := roundTrip(t, SenMLJSON, base, payload); enc != nil {
			// The scanner accepts only JSON, and writes only JSON.
			if !json.Valid(payload) && len(bytes.TrimSpace(payload)) > 0 {
				t.Fatalf("decoded what encoding/json says is no JSON: %q", payload)
			}
			if !json.Valid(enc) {
				t.Fatalf("encoded no JSON: %q", enc)
			}
		}
	})
}

func FuzzSenMLCBOR(f *testing.F) {
	for _, v := range cborVectors {
		seedHex(f, v.cbor, v.base)
	}
	for _, v := range cborDecodes {
		seedHex(f, v.cbor, v.base)
	}
	for _, v := range cborDecodeErrors {
		seedHex(f, v.cbor, v.base)
	}
	f.Fuzz(func(t *testing.T, payload []byte, baseStr string) {
		base, ok := parseBase(baseStr)
		if !ok {
			return
		}
		if enc := roundTrip(t, SenMLCBOR, base, payload); enc != nil {
			if err := cborDec.Wellformed(enc); err != nil {
				t.Fatalf("encoded CBOR that is not well-formed: %x: %v", enc, err)
			}
		}
	})
}

func FuzzText(f *testing.F) {
	for _, v := range textVectors {
		addSeed(f, []byte(v.text), v.base)
	}
	for _, v := range textLenient {
		addSeed(f, []byte(v.text), v.base)
	}
	for _, v := range textDecodeErrors {
		addSeed(f, []byte(v.text), v.base)
	}
	f.Fuzz(func(t *testing.T, payload []byte, baseStr string) {
		base, ok := parseBase(baseStr)
		if !ok {
			return
		}
		roundTrip(t, Text, base, payload)
		roundTrip(t, OpaqueFormat, base, payload)
	})
}

func FuzzLinks(f *testing.F) {
	for _, v := range linkVectors {
		f.Add([]byte(v.text))
	}
	f.Add([]byte(`</foo>;param=" \\ \" \x ",</bar>`))
	f.Add([]byte("</3/0>;a=\"b\\"))
	f.Fuzz(func(t *testing.T, b []byte) {
		links, err := ParseLinks(b)
		if (err == nil) != (checkLinks(b) == nil) {
			t.Fatalf("ParseLinks says %v, checkLinks %v", err, checkLinks(b))
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("an error that is not ErrMalformed: %v", err)
			}
			return
		}
		out := AppendLinks(nil, links)
		again, err := ParseLinks(out)
		if err != nil {
			t.Fatalf("ParseLinks(AppendLinks(%q)) = %q: %v", b, out, err)
		}
		if !reflect.DeepEqual(links, again) {
			t.Fatalf("round trip of %q:\n first  %#v\n second %#v", b, links, again)
		}
		if out2 := AppendLinks(nil, again); !bytes.Equal(out, out2) {
			t.Fatalf("AppendLinks is not stable: %q then %q", out, out2)
		}
	})
}

func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"", "/", "/3", "/3/0", "/3/0/1", "/3/0/6/1", "3/0/", "/65534/65534/65534/65534", "/65535", "//", "/3//0", "/1/2/3/4/5", "/00012"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePath(s)
		if err != nil {
			if !errors.Is(err, ErrBadPath) {
				t.Fatalf("ParsePath(%q): an error that is not ErrBadPath: %v", s, err)
			}
			return
		}
		if !p.valid() || p.Len() > 4 {
			t.Fatalf("ParsePath(%q) = %v", s, p)
		}
		q, err := ParsePath(p.String())
		if err != nil || q != p {
			t.Fatalf("ParsePath(%q) = %v, and ParsePath(%q) = %v, %v", s, p, p.String(), q, err)
		}
		if !p.Parent().Contains(p) || (p.Len() > 0 && p.Contains(p.Parent())) {
			t.Fatalf("%v and its parent %v", p, p.Parent())
		}
		if p.Len() < 4 && p.Append(7).Parent() != p {
			t.Fatalf("%v.Append(7).Parent() = %v", p, p.Append(7).Parent())
		}
	})
}

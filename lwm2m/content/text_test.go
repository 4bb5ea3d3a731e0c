package content

import (
	"bytes"
	"math"
	"testing"
)

// text/plain (TS 1.1 Core 7.4.1) and opaque (7.4.2).
var textVectors = []struct {
	name, base, text string
	v                Value
}{
	// TS 1.1 7.4.1: Read /3/0/0.
	{"TS 7.4.1 manufacturer", "/3/0/0", "Open Mobile Alliance", StringValue("Open Mobile Alliance")},
	// Leshan text_battery_resource.
	{"Integer", "/3/0/9", "100", IntValue(100)},
	{"negative Integer", "/1024/0/1", "-9223372036854775808", IntValue(math.MinInt64)},
	{"Unsigned", "/1024/0/2", "18446744073709551615", UintValue(math.MaxUint64)},
	// Leshan text_encode_single_resource_float.
	{"Float", "/1024/0/3", "56.4", FloatValue(56.4)},
	{"Float integral", "/1024/0/3", "20", FloatValue(20)},
	{"Float large, no exponent", "/1024/0/3", "100000000000000000000000", FloatValue(1e23)},
	{"Float small, no exponent", "/1024/0/3", "0.000000125", FloatValue(1.25e-7)},
	{"Boolean true", "/1024/0/4", "1", BoolValue(true)},
	{"Boolean false", "/1024/0/4", "0", BoolValue(false)},
	// Leshan text_encode_opaque_as_base64_string.
	{"Opaque as base64", "/5/0/0", "AQIDBAU=", OpaqueValue([]byte{1, 2, 3, 4, 5})},
	{"empty Opaque", "/5/0/0", "", OpaqueValue(nil)},
	// Leshan text_encode_single_resource_date.
	{"Time", "/3/0/13", "1367491215", Value{Type: Time, Int: 1367491215}},
	{"Objlnk", "/1024/0/7", "66:0", LinkValue(ObjLink{66, 0})},
	{"null Objlnk", "/1024/0/7", "65535:65535", LinkValue(ObjLink{65535, 65535})},
	{"Corelnk", "/1024/0/8", `</1/0>;ct="110"`, CoreLinkValue(`</1/0>;ct="110"`)},
	{"empty String", "/3/0/0", "", StringValue("")},
	{"resource instance", "/3/0/6/1", "5", IntValue(5)},
}

func TestTextVectors(t *testing.T) {
	tests := textVectors
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, _ := ParsePath(tt.base)
			recs := []Record{{base, tt.v}}
			got, err := Encode(Text, base, recs)
			wantErr(t, err, nil)
			if string(got) != tt.text {
				t.Errorf("Encode: %q, want %q", got, tt.text)
			}
			if s := tt.v.Text(); s != tt.text {
				t.Errorf("Text: %q, want %q", s, tt.text)
			}
			dec, err := Decode(Text, base, []byte(tt.text), testModel)
			wantErr(t, err, nil)
			checkRecords(t, dec, recs)
		})
	}
}

var textLenient = []struct {
	name, base, text string
	v                Value
}{
	{"Float with an exponent", "/1024/0/3", "1.5e3", FloatValue(1500)},
	{"Float with a sign and no integer part", "/1024/0/3", "+.5", FloatValue(0.5)},
	{"Float ending with a point", "/1024/0/3", "5.", FloatValue(5)},
	{"Integer with a plus", "/3/0/9", "+7", IntValue(7)},
	{"Opaque without padding", "/5/0/0", "AQIDBAU", OpaqueValue([]byte{1, 2, 3, 4, 5})},
	{"Integer 0 for a leading zero", "/3/0/9", "007", IntValue(7)},
}

func TestTextDecodeLenient(t *testing.T) {
	tests := textLenient
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, _ := ParsePath(tt.base)
			dec, err := Decode(Text, base, []byte(tt.text), testModel)
			wantErr(t, err, nil)
			checkRecords(t, dec, []Record{{base, tt.v}})
		})
	}
}

var textDecodeErrors = []struct {
	name, base, text string
	err              error
}{
	{"Integer with a fraction", "/3/0/9", "1.5", ErrMalformed},
	{"Integer with spaces", "/3/0/9", " 1", ErrMalformed},
	{"Integer too big", "/3/0/9", "9223372036854775808", ErrMalformed},
	{"empty Integer", "/3/0/9", "", ErrMalformed},
	{"negative Unsigned", "/0/0/16", "-1", ErrMalformed},
	{"Float NaN", "/6/0/0", "NaN", ErrMalformed},
	{"Float Inf", "/6/0/0", "Inf", ErrMalformed},
	{"Float hexadecimal", "/6/0/0", "0x1p-2", ErrMalformed},
	{"Float with underscores", "/6/0/0", "1_000", ErrMalformed},
	{"Float out of range", "/6/0/0", "1e999", ErrMalformed},
	{"Float exponent without digits", "/6/0/0", "1e", ErrMalformed},
	{"Float point alone", "/6/0/0", ".", ErrMalformed},
	{"Boolean true", "/1/0/6", "true", ErrMalformed},
	{"Boolean 2", "/1/0/6", "2", ErrMalformed},
	// Leshan text_decode_should_throw_an_exception_for_invalid_base64.
	{"bad base64", "/5/0/0", "!,-INVALID$_'", ErrMalformed},
	{"base64 with a line break", "/5/0/0", "AQID\nBAU=", ErrMalformed},
	{"Objlnk without colon", "/65/0/0/0", "66", ErrMalformed},
	{"Objlnk out of range", "/65/0/0/0", "66:65536", ErrMalformed},
	{"Objlnk negative", "/65/0/0/0", "-1:0", ErrMalformed},
	{"String not UTF-8", "/3/0/0", "\xff", ErrMalformed},
	{"Corelnk not links", "/3442/0/180", "x", ErrMalformed},
	{"executable resource", "/3/0/4", "", ErrMalformed},
	{"unknown resource", "/3/0/99", "1", ErrNotFound},
	{"an instance", "/3/0", "1", ErrUnsupported},
	{"the root", "/", "1", ErrUnsupported},
}

func TestTextDecodeErrors(t *testing.T) {
	tests := textDecodeErrors
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, _ := ParsePath(tt.base)
			recs, err := Decode(Text, base, []byte(tt.text), testModel)
			wantErr(t, err, tt.err)
			if recs != nil {
				t.Errorf("records %v with the error", recs)
			}
		})
	}
}

func TestTextEncodeErrors(t *testing.T) {
	tests := []struct {
		name, base string
		recs       []Record
		err        error
	}{
		// Leshan text_encode_multiple_instances.
		{"multiple resource", "/3/0/6", deviceRecords()[4:6], ErrUnsupported},
		{"one instance of a multiple resource", "/3/0/6", deviceRecords()[4:5], ErrUnsupported},
		{"instance", "/3/0", deviceRecords(), ErrUnsupported},
		{"no record", "/3/0/9", nil, ErrUnsupported},
		{"NaN", "/6/0/0", []Record{rec("/6/0/0", FloatValue(math.NaN()))}, ErrUnsupported},
		{"Inf", "/6/0/0", []Record{rec("/6/0/0", FloatValue(math.Inf(-1)))}, ErrUnsupported},
		{"String not UTF-8", "/3/0/0", []Record{rec("/3/0/0", Value{Type: String, Bytes: []byte{0xC0}})}, ErrMalformed},
		{"record outside the base", "/3/0/9", []Record{rec("/3/0/10", IntValue(1))}, ErrBadPath},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, _ := ParsePath(tt.base)
			_, err := Encode(Text, base, tt.recs)
			wantErr(t, err, tt.err)
		})
	}
}

func TestOpaque(t *testing.T) {
	firmware := []byte{0x7F, 'E', 'L', 'F', 0, 1, 2}
	b, err := Encode(OpaqueFormat, ResourcePath(5, 0, 0), []Record{rec("/5/0/0", OpaqueValue(firmware))})
	wantErr(t, err, nil)
	if !bytes.Equal(b, firmware) {
		t.Errorf("Encode: % X", b)
	}
	recs, err := Decode(OpaqueFormat, ResourcePath(5, 0, 0), firmware, testModel)
	wantErr(t, err, nil)
	checkRecords(t, recs, []Record{rec("/5/0/0", OpaqueValue(firmware))})

	_, err = Encode(OpaqueFormat, ResourcePath(3, 0, 0), deviceRecords()[:1])
	wantErr(t, err, ErrUnsupported) // a String
	_, err = Encode(OpaqueFormat, InstancePath(5, 0), []Record{rec("/5/0/0", OpaqueValue(firmware))})
	wantErr(t, err, ErrUnsupported)
	_, err = Decode(OpaqueFormat, ResourcePath(3, 0, 0), firmware, testModel)
	wantErr(t, err, ErrUnsupported)
	_, err = Decode(OpaqueFormat, InstancePath(5, 0), firmware, testModel)
	wantErr(t, err, ErrUnsupported)
	_, err = Decode(OpaqueFormat, ResourcePath(5, 0, 99), firmware, testModel)
	wantErr(t, err, ErrNotFound)
}

func TestFormats(t *testing.T) {
	for _, f := range []Format{LinkFormat, 60, 11543} {
		_, err := Encode(f, InstancePath(3, 0), deviceRecords())
		wantErr(t, err, ErrUnsupported)
		_, err = Decode(f, InstancePath(3, 0), []byte("</3/0>"), testModel)
		wantErr(t, err, ErrUnsupported)
	}
	names := map[Format]string{Text: "text/plain", LinkFormat: "application/link-format", OpaqueFormat: "application/octet-stream",
		SenMLJSON: "application/senml+json", SenMLCBOR: "application/senml+cbor", TLV: "application/vnd.oma.lwm2m+tlv", 60: "Format(60)"}
	for f, want := range names {
		if f.String() != want {
			t.Errorf("Format(%d).String() = %q, want %q", uint16(f), f.String(), want)
		}
	}
	// A nil TypeOf knows nothing.
	_, err := Decode(Text, ResourcePath(3, 0, 0), []byte("x"), nil)
	wantErr(t, err, ErrNotFound)
}

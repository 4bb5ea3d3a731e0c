package content

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

var obj65 = model(map[res]Type{{65, 0}: String, {65, 1}: Integer, {65, 2}: Boolean})

// The SenML CBOR examples of TS 1.1 Core 7.4.5, as Wakaama's
// tests/senml_cbor_tests.c (eclipse/wakaama) carries them.
const (
	// Table 7.4.4-2 in CBOR: Read /3/0 (senml_cbor_test_1).
	tsDeviceCBOR = "90a321652f332f302f00613003744f70656e204d6f62696c6520416c6c69616e6365a200613103764c69676874776569676874204d324d20436c69656e74a20061320369333435303030313233a20061330363312e30a20063362f300201a20063362f310205a20063372f3002190ed8a20063372f3102191388a20063382f3002187da20063382f3102190384a2006139021864a200623130020fa2006431312f300200a200623133021a5182428fa20062313403662b30323a3030a200623136036155"
	// Table 7.4.4-4: object links, at the root (senml_cbor_test_3).
	tsObjLinksCBOR = "8ca321612f006836352f302f302f3063766c6f6436363a30a2006836352f302f302f3163766c6f6436363a31a2006636352f302f31036d38363133383030373535353030a2006636352f302f320201a2006636362f302f30036a6d795365727669636531a2006636362f302f31036f496e7465726e65742e31352e323334a2006636362f302f3263766c6f6436373a30a2006636362f312f30036a6d795365727669636532a2006636362f312f31036f496e7465726e65742e31352e323335a2006636362f312f3263766c6f6b36353533353a3635353335a2006636372f302f30036b38352e37362e37362e3834a2006636372f302f31036d38352e37362e3235352e323535"
	// Table 7.4.4-5: Read /3/0/0 (senml_cbor_test_4).
	tsSingleCBOR = "81a221662f332f302f3003744f70656e204d6f62696c6520416c6c69616e6365"
)

var cborVectors = []struct {
	name, base, cbor string
	recs             []Record
}{
	{"TS Table 7.4.4-2 device instance", "/3/0", tsDeviceCBOR, deviceRecords()},
	{"TS Table 7.4.4-4 object links at the root", "/", tsObjLinksCBOR, objLinkRecords()},
	{"TS Table 7.4.4-5 single resource", "/3/0/0", tsSingleCBOR, deviceRecords()[:1]},
	// Leshan LwM2mNodeEncoderTest senml_cbor_encode_opaque_resource:
	// [{-2: "/0/0/3", 8: h'ABCDEF'}].
	{"Leshan opaque", "/0/0/3", "81a221662f302f302f330843abcdef", []Record{rec("/0/0/3", OpaqueValue([]byte{0xAB, 0xCD, 0xEF}))}},
	// Leshan's senml_cbor_empty_multi_resource: [].
	{"empty multiple resource", "/3/0/6", "80", nil},
	// One of each type, written out by hand from RFC 8949.
	{"multiple resource", "/3/0/7", "82a321672f332f302f372f00613002190ed8a200613102191388", deviceRecords()[6:8]},
	{"Unsigned max", "/1024/0/2", "81a221692f313032342f302f32021bffffffffffffffff", []Record{rec("/1024/0/2", UintValue(math.MaxUint64))}},
	{"Integer min", "/1024/0/1", "81a221692f313032342f302f31023b7fffffffffffffff", []Record{rec("/1024/0/1", IntValue(math.MinInt64))}},
	{"Integer -1", "/1024/0/1", "81a221692f313032342f302f310220", []Record{rec("/1024/0/1", IntValue(-1))}},
	{"Float", "/1024/0/3", "81a221692f313032342f302f3302fb3ff8000000000000", []Record{rec("/1024/0/3", FloatValue(1.5))}},
	{"Boolean", "/1024/0/4", "81a221692f313032342f302f3404f5", []Record{rec("/1024/0/4", BoolValue(true))}},
	{"empty Opaque", "/1024/0/5", "81a221692f313032342f302f350840", []Record{rec("/1024/0/5", OpaqueValue(nil))}},
	{"empty String", "/1024/0/0", "81a221692f313032342f302f300360", []Record{rec("/1024/0/0", StringValue(""))}},
	{"Time", "/1024/0/6", "81a221692f313032342f302f36021a5182428f", []Record{rec("/1024/0/6", Value{Type: Time, Int: 1367491215})}},
	{"Objlnk", "/1024/0/7", "81a221692f313032342f302f3763766c6f63333a30", []Record{rec("/1024/0/7", LinkValue(ObjLink{3, 0}))}},
	{"Corelnk", "/1024/0/8", "81a221692f313032342f302f3803663c2f312f303e", []Record{rec("/1024/0/8", CoreLinkValue("</1/0>"))}},
}

func TestSenMLCBORVectors(t *testing.T) {
	tests := cborVectors
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, _ := ParsePath(tt.base)
			want := unhex(t, tt.cbor)
			got, err := Encode(SenMLCBOR, base, tt.recs)
			wantErr(t, err, nil)
			if !bytes.Equal(got, want) {
				t.Errorf("Encode:\n got  %x\n want %x", got, want)
			}
			recs, err := Decode(SenMLCBOR, base, want, testModel)
			wantErr(t, err, nil)
			checkRecords(t, recs, tt.recs)
		})
	}
}

// TestSenMLCBORAgreesWithJSON: the TS's examples say the same in both.
func TestSenMLCBORAgreesWithJSON(t *testing.T) {
	for _, base := range []Path{InstancePath(3, 0), ObjectPath(3), {}} {
		j, err := Encode(SenMLJSON, base, deviceRecords())
		wantErr(t, err, nil)
		c, err := Encode(SenMLCBOR, base, deviceRecords())
		wantErr(t, err, nil)
		fromJ, err := Decode(SenMLJSON, base, j, testModel)
		wantErr(t, err, nil)
		fromC, err := Decode(SenMLCBOR, base, c, testModel)
		wantErr(t, err, nil)
		checkRecords(t, fromJ, deviceRecords())
		checkRecords(t, fromC, deviceRecords())
	}
}

// TestSenMLCBORDecode: what other implementations write, and what RFC
// 8428 and RFC 8949 allow. The hand-made payloads were written with a
// few lines of Python from RFC 8949's rules, not with fxamacker/cbor.
var cborDecodes = []struct {
	name, base, cbor string
	typeOf           TypeOf
	recs             []Record
}{
	// Wakaama senml_cbor_test_8: labels in any order.
	{"labels in any order", "/65/543", "84a321682f36352f3534332f00613003654c574d324da2021907df006131a20063322f3004f5a204f40063322f31", obj65,
		[]Record{rec("/65/543/0", StringValue("LWM2M")), rec("/65/543/1", IntValue(2015)), rec("/65/543/2/0", BoolValue(true)), rec("/65/543/2/1", BoolValue(false))}},
	// Wakaama senml_cbor_test_10: the base name after the name, a base time.
	{"base name after the name, base time", "/12/0", "84a4006131021904d221662f31322f302f221a0012d687a200613302fb404c64fdf3b645a2a20063322f3002fb3fcd70a3d70a3d71a20063322f3102fbc04a0013a92a3055", testModel,
		[]Record{rec("/12/0/1", IntValue(1234)), rec("/12/0/3", FloatValue(56.789)), rec("/12/0/2/0", FloatValue(0.23)), rec("/12/0/2/1", FloatValue(-52.0006))}},
	// Wakaama senml_cbor_test_14, 16: "/5/0/1" + "/1", and "n":"".
	{"base name without its slash", "/5/0/1", "81a321662f352f302f3100622f31036468747470", testModel, []Record{rec("/5/0/1/1", StringValue("http"))}},
	{"empty name", "/5/0/1", "81a321662f352f302f310060036468747470", testModel, []Record{rec("/5/0/1", StringValue("http"))}},
	// Leshan senml_cbor_empty_multi_resource.
	{"empty payload", "/3/0/6", "", testModel, nil},
	{"indefinite-length array", "/3/0/9", "9fa200662f332f302f39021864ff", testModel, []Record{rec("/3/0/9", IntValue(100))}},
	{"indefinite-length map and text", "/3/0", "9fbf21652f332f302f006130037f624f7062656effffff", testModel, []Record{rec("/3/0/0", StringValue("Open"))}},
	{"unknown labels", "/3/0/9", "81a521662f332f302f39021864186361780164756e697463666f6f01", testModel, []Record{rec("/3/0/9", IntValue(100))}},
	{"base value", "/3/0/9", "81a321662f332f302f392401021863", testModel, []Record{rec("/3/0/9", IntValue(100))}},
	{"half-precision float", "/6/0/0", "81a221662f362f302f3002f93e00", testModel, []Record{rec("/6/0/0", FloatValue(1.5))}},
	{"bignum that fits", "/3/0/9", "81a221662f332f302f3902c24164", testModel, []Record{rec("/3/0/9", IntValue(100))}},
	{"bver 10", "/3/0/9", "81a3200a21662f332f302f39021864", testModel, []Record{rec("/3/0/9", IntValue(100))}},
	{"Time from a float", "/3/0/13", "81a221672f332f302f313302fb41d86a222e000000", testModel, []Record{rec("/3/0/13", Value{Type: Time, Int: 1638435000})}},
	// Leshan writes "bt" as a decimal fraction (tag 4).
	{"base time as a decimal fraction", "/3/0/9", "81a321662f332f302f3922c482001a1dcd6504021864", testModel, []Record{rec("/3/0/9", IntValue(100))}},
}

func TestSenMLCBORDecode(t *testing.T) {
	tests := cborDecodes
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, _ := ParsePath(tt.base)
			recs, err := Decode(SenMLCBOR, base, unhex(t, tt.cbor), tt.typeOf)
			wantErr(t, err, nil)
			checkRecords(t, recs, tt.recs)
		})
	}
}

var cborDecodeErrors = []struct {
	name, base, cbor string
	err              error
}{
	{"not an array", "/3/0", "a10201", ErrMalformed},
	{"truncated", "/3/0", "81a221662f33", ErrMalformed},
	{"more records than bytes", "/3/0", "9affffffff00", ErrMalformed},
	{"bad array head", "/3/0", "9c", ErrMalformed},
	{"array head truncated", "/3/0", "9a0000", ErrMalformed},
	{"trailing byte", "/3/0", "8000", ErrMalformed},
	{"indefinite without break", "/3/0", "9fa221662f332f302f390201", ErrMalformed},
	{"record not a map", "/3/0", "8101", ErrMalformed},
	{"label twice", "/3/0", "81a321662f332f302f3902010202", ErrMalformed},
	{"v as text", "/3/0", "81a221662f332f302f39026131", ErrMalformed},
	{"vs as bytes", "/3/0", "81a221662f332f302f30034131", ErrMalformed},
	{"vd as text", "/0/0", "81a221662f302f302f33086131", ErrMalformed},
	{"vb as an integer", "/1/0", "81a221662f312f302f360401", ErrMalformed},
	{"bn as an integer", "/3/0", "81a221010201", ErrMalformed},
	{"bignum too big", "/3/0", "81a221662f332f302f3902c249010000000000000000", ErrMalformed},
	{"negative Unsigned", "/0/0", "81a221672f302f302f31360220", ErrMalformed},
	{"fraction for an Integer", "/3/0", "81a221662f332f302f3902fb3ff8000000000000", ErrMalformed},
	{"tagged number", "/3/0", "81a221662f332f302f3902c11a5182428f", ErrMalformed},
	{"path outside the base", "/3/0", "81a221662f332f312f390201", ErrMalformed},
	{"unknown resource", "/3/0", "81a221672f332f302f39390201", ErrNotFound},
	{"unknown label nested too deep", "/3/0", "81a321662f332f302f39020109818181818181818181818181818181818181818101", ErrMalformed},
	{"String not UTF-8", "/3/0", "81a221662f332f302f300363fffefd", ErrMalformed},
	{"bver 11", "/3/0", "81a3200b21662f332f302f390201", ErrMalformed},
	{"must-understand label", "/3/0", "81a321662f332f302f39020162785f01", ErrMalformed},
	{"two values", "/3/0", "81a321662f332f302f390201036131", ErrMalformed},
	{"no value", "/3/0", "81a121662f332f302f39", ErrMalformed},
	// TS Table 7.4.4-3's time series: a path twice.
	{"a time series", "/3/0", "82a321662f332f302f3902010624a3006002020623", ErrMalformed},
	{"bad object link", "/65/0", "81a221692f36352f302f302f3063766c6f623636", ErrMalformed},
	{"reserved additional information", "/3/0", "81a221662f332f302f39021c", ErrMalformed},
}

func TestSenMLCBORDecodeErrors(t *testing.T) {
	tests := cborDecodeErrors
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, _ := ParsePath(tt.base)
			recs, err := Decode(SenMLCBOR, base, unhex(t, tt.cbor), testModel)
			wantErr(t, err, tt.err)
			if recs != nil {
				t.Errorf("records %v with the error", recs)
			}
		})
	}
}

// TestSenMLCBOREncodeFloats: CBOR carries what JSON cannot.
func TestSenMLCBOREncodeFloats(t *testing.T) {
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1), math.SmallestNonzeroFloat64, math.Copysign(0, -1)} {
		recs := []Record{rec("/6/0/0", FloatValue(f))}
		b, err := Encode(SenMLCBOR, ResourcePath(6, 0, 0), recs)
		wantErr(t, err, nil)
		got, err := Decode(SenMLCBOR, ResourcePath(6, 0, 0), b, testModel)
		wantErr(t, err, nil)
		checkRecords(t, got, recs)
	}
	if b, _ := Encode(SenMLCBOR, ResourcePath(3, 0, 0), []Record{rec("/3/0/0", StringValue(strings.Repeat("x", 30)))}); !bytes.Contains(b, []byte{0x03, 0x78, 30}) {
		t.Errorf("a 30-byte string is not a text string of 30 bytes: %x", b)
	}
}

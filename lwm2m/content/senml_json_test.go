package content

import (
	"math"
	"testing"
)

var obj4 = model(map[res]Type{{4, 1}: Integer})
var wakaama34 = model(map[res]Type{{34, 2}: Integer})

// The SenML JSON examples of TS 1.1 Core 7.4.4, as Wakaama's
// tests/senml_json_tests.c (eclipse/wakaama) and Leshan's
// LwM2mNodeEncoderTest carry them.
const (
	// Table 7.4.4-2: Read /3/0 (Wakaama senml_json_test_1, Leshan
	// senml_json_encode_device_object_instance).
	tsDeviceJSON = `[{"bn":"/3/0/","n":"0","vs":"Open Mobile Alliance"},` +
		`{"n":"1","vs":"Lightweight M2M Client"},` +
		`{"n":"2","vs":"345000123"},` +
		`{"n":"3","vs":"1.0"},` +
		`{"n":"6/0","v":1},` +
		`{"n":"6/1","v":5},` +
		`{"n":"7/0","v":3800},` +
		`{"n":"7/1","v":5000},` +
		`{"n":"8/0","v":125},` +
		`{"n":"8/1","v":900},` +
		`{"n":"9","v":100},` +
		`{"n":"10","v":15},` +
		`{"n":"11/0","v":0},` +
		`{"n":"13","v":1367491215},` +
		`{"n":"14","vs":"+02:00"},` +
		`{"n":"16","vs":"U"}]`
	// Table 7.4.4-4, object links, read at the root (Wakaama
	// senml_json_test_3, which corrects /66/1/2 from hex to decimal).
	tsObjLinksJSON = `[{"bn":"/","n":"65/0/0/0","vlo":"66:0"},` +
		`{"n":"65/0/0/1","vlo":"66:1"},` +
		`{"n":"65/0/1","vs":"8613800755500"},` +
		`{"n":"65/0/2","v":1},` +
		`{"n":"66/0/0","vs":"myService1"},` +
		`{"n":"66/0/1","vs":"Internet.15.234"},` +
		`{"n":"66/0/2","vlo":"67:0"},` +
		`{"n":"66/1/0","vs":"myService2"},` +
		`{"n":"66/1/1","vs":"Internet.15.235"},` +
		`{"n":"66/1/2","vlo":"65535:65535"},` +
		`{"n":"67/0/0","vs":"85.76.76.84"},` +
		`{"n":"67/0/1","vs":"85.76.255.255"}]`
)

func objLinkRecords() []Record {
	return []Record{
		rec("/65/0/0/0", LinkValue(ObjLink{66, 0})), rec("/65/0/0/1", LinkValue(ObjLink{66, 1})),
		rec("/65/0/1", StringValue("8613800755500")), rec("/65/0/2", IntValue(1)),
		rec("/66/0/0", StringValue("myService1")), rec("/66/0/1", StringValue("Internet.15.234")),
		rec("/66/0/2", LinkValue(ObjLink{67, 0})),
		rec("/66/1/0", StringValue("myService2")), rec("/66/1/1", StringValue("Internet.15.235")),
		rec("/66/1/2", LinkValue(ObjLink{65535, 65535})),
		rec("/67/0/0", StringValue("85.76.76.84")), rec("/67/0/1", StringValue("85.76.255.255")),
	}
}

var jsonVectors = []struct {
	name, base, json string
	typeOf           TypeOf
	recs             []Record
}{
	{"TS Table 7.4.4-2 device instance", "/3/0", tsDeviceJSON, testModel, deviceRecords()},
	{"TS Table 7.4.4-4 object links at the root", "/", tsObjLinksJSON, testModel, objLinkRecords()},
	// Table 7.4.4-5 (Wakaama senml_json_test_4, Leshan
	// senml_json_encode_single_resource).
	{"TS Table 7.4.4-5 single resource", "/3/0/0", `[{"bn":"/3/0/0","vs":"Open Mobile Alliance"}]`, testModel, deviceRecords()[:1]},
	// Leshan senml_json_encode_multiple_resource.
	{"multiple resource", "/3/0/7", `[{"bn":"/3/0/7/","n":"0","v":3800},{"n":"1","v":5000}]`, testModel, deviceRecords()[6:8]},
	// Leshan senml_json_encode_opaque_resource ("q83v" is ABCDEF).
	{"Opaque", "/0/0/3", `[{"bn":"/0/0/3","vd":"q83v"}]`, testModel, []Record{rec("/0/0/3", OpaqueValue([]byte{0xAB, 0xCD, 0xEF}))}},
	// Wakaama senml_json_test_25: a resource instance at each depth.
	{"resource instance under an object", "/4", `[{"bn":"/4/","n":"0/1/0","v":0}]`, obj4, []Record{rec("/4/0/1/0", IntValue(0))}},
	{"resource instance under an instance", "/4/0", `[{"bn":"/4/0/","n":"1/0","v":0}]`, obj4, []Record{rec("/4/0/1/0", IntValue(0))}},
	{"resource instance under a resource", "/4/0/1", `[{"bn":"/4/0/1/","n":"0","v":0}]`, obj4, []Record{rec("/4/0/1/0", IntValue(0))}},
	{"resource instance alone", "/4/0/1/0", `[{"bn":"/4/0/1/0","v":0}]`, obj4, []Record{rec("/4/0/1/0", IntValue(0))}},
	{"empty multiple resource", "/3/0/6", `[]`, testModel, nil},
	// One of each type.
	{"Unsigned max", "/1024/0/2", `[{"bn":"/1024/0/2","v":18446744073709551615}]`, testModel, []Record{rec("/1024/0/2", UintValue(math.MaxUint64))}},
	{"Integer min", "/1024/0/1", `[{"bn":"/1024/0/1","v":-9223372036854775808}]`, testModel, []Record{rec("/1024/0/1", IntValue(math.MinInt64))}},
	{"Float", "/1024/0/3", `[{"bn":"/1024/0/3","v":-52.0006}]`, testModel, []Record{rec("/1024/0/3", FloatValue(-52.0006))}},
	{"Float with exponent", "/1024/0/3", `[{"bn":"/1024/0/3","v":1e+300}]`, testModel, []Record{rec("/1024/0/3", FloatValue(1e300))}},
	{"Float integral", "/1024/0/3", `[{"bn":"/1024/0/3","v":20}]`, testModel, []Record{rec("/1024/0/3", FloatValue(20))}},
	{"Boolean", "/1024/0/4", `[{"bn":"/1024/0/4","vb":true}]`, testModel, []Record{rec("/1024/0/4", BoolValue(true))}},
	{"Time", "/1024/0/6", `[{"bn":"/1024/0/6","v":-5}]`, testModel, []Record{rec("/1024/0/6", Value{Type: Time, Int: -5})}},
	{"Objlnk", "/1024/0/7", `[{"bn":"/1024/0/7","vlo":"3:0"}]`, testModel, []Record{rec("/1024/0/7", LinkValue(ObjLink{3, 0}))}},
	{"Corelnk", "/1024/0/8", `[{"bn":"/1024/0/8","vs":"</1/0>;ct=\"110\""}]`, testModel, []Record{rec("/1024/0/8", CoreLinkValue(`</1/0>;ct="110"`))}},
	{"String with escapes", "/1024/0/0", `[{"bn":"/1024/0/0","vs":"a\"b\\c\n\u0001é"}]`, testModel, []Record{rec("/1024/0/0", StringValue("a\"b\\c\n\x01é"))}},
	{"empty String and Opaque", "/1024/0", `[{"bn":"/1024/0/","n":"0","vs":""},{"n":"5","vd":""}]`, testModel,
		[]Record{rec("/1024/0/0", StringValue("")), rec("/1024/0/5", OpaqueValue(nil))}},
}

func TestSenMLJSONVectors(t *testing.T) {
	tests := jsonVectors
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, _ := ParsePath(tt.base)
			got, err := Encode(SenMLJSON, base, tt.recs)
			wantErr(t, err, nil)
			if string(got) != tt.json {
				t.Errorf("Encode:\n got  %s\n want %s", got, tt.json)
			}
			recs, err := Decode(SenMLJSON, base, []byte(tt.json), tt.typeOf)
			wantErr(t, err, nil)
			checkRecords(t, recs, tt.recs)
		})
	}
}

// TestSenMLJSONDecode: what other implementations write, read.
var jsonDecodes = []struct {
	name, base, json string
	typeOf           TypeOf
	recs             []Record
}{
	// Leshan senml_json_decode_acl_object: several base names.
	{"several base names", "/2", `[{"bn":"/2/3/","n":"0","v":3},{"n":"1","v":1},{"n":"3","v":123},{"bn":"/2/2/","n":"0","v":4},{"n":"1","v":2},{"n":"3","v":124}]`, testModel,
		[]Record{rec("/2/3/0", IntValue(3)), rec("/2/3/1", IntValue(1)), rec("/2/3/3", IntValue(123)), rec("/2/2/0", IntValue(4)), rec("/2/2/1", IntValue(2)), rec("/2/2/3", IntValue(124))}},
	// TS Table 7.4.4-7 (Wakaama senml_json_test_6): names, white space.
	{"TS Table 7.4.4-7 names and white space", "/", "[{\"n\":\"/3/0/0\", \"vs\":\"Open Mobile Alliance\"},\n {\"n\" :\"/3/0/9\", \"v\":95},{\"n\":\"/1/0/1\", \"v\":86400}]", testModel,
		[]Record{rec("/3/0/0", StringValue("Open Mobile Alliance")), rec("/3/0/9", IntValue(95)), rec("/1/0/1", IntValue(86400))}},
	// TS Table 7.4.4-8 (Wakaama senml_json_test_7).
	{"TS Table 7.4.4-8 booleans", "/", `[{"n":"/3311/0/5850", "vb":false},{"n":"/3311/1/5850", "vb":false},{"n":"/3311/2/5851", "v":20},{"n":"/3308/0/5900", "v":18}]`, testModel,
		[]Record{rec("/3311/0/5850", BoolValue(false)), rec("/3311/1/5850", BoolValue(false)), rec("/3311/2/5851", IntValue(20)), rec("/3308/0/5900", FloatValue(18))}},
	// Wakaama senml_json_test_9: "/2/3" + "/0".
	{"base name without its slash", "/2/3", `[{"bn" : "/2/3", "n":"/0","v":1234}]`, testModel, []Record{rec("/2/3/0", IntValue(1234))}},
	// Wakaama senml_json_test_10: bn after n, bt, floats.
	{"labels in any order, base time", "/12/0", `[{"n":"1","v":1234,"bn" : "/12/0/","bt" : 1234567}, {"n":"3","v":56.789}, {"n":"2/0","v":0.23}, {"n":"2/1","v":-52.0006}]`, testModel,
		[]Record{rec("/12/0/1", IntValue(1234)), rec("/12/0/3", FloatValue(56.789)), rec("/12/0/2/0", FloatValue(0.23)), rec("/12/0/2/1", FloatValue(-52.0006))}},
	// Wakaama senml_json_test_17: "bn":"" and a leading zero.
	{"empty base name, leading zero", "/67", `[{"bn":"/67/0/","n":"1","vs":"a"},{"bn":"","n":"/67/0/00","vs":"85.76.76.84"}]`, testModel,
		[]Record{rec("/67/0/1", StringValue("a")), rec("/67/0/0", StringValue("85.76.76.84"))}},
	// Wakaama senml_json_test_18, 20, 22.
	{"bver 10", "/34/0/2", `[{"bver":10,"n":"/34/0/2","v":1}]`, wakaama34, []Record{rec("/34/0/2", IntValue(1))}},
	{"unknown label", "/34/0/2", `[{"test":"good","n":"/34/0/2","v":1}]`, wakaama34, []Record{rec("/34/0/2", IntValue(1))}},
	{"unknown label with a nested value", "/34/0/2", `[{"x":{"a":[1,{"b":null}],"c":true},"n":"/34/0/2","v":1}]`, wakaama34, []Record{rec("/34/0/2", IntValue(1))}},
	{"base value", "/34/0/2", `[{ "bv":1,"n":"/34/0/2","v":1}]`, wakaama34, []Record{rec("/34/0/2", IntValue(2))}},
	{"base value for the next records too", "/34/0", `[{"bv":1.5,"bn":"/34/0/","n":"2","v":1},{"n":"3","v":2}]`, model(map[res]Type{{34, 2}: Float, {34, 3}: Float}),
		[]Record{rec("/34/0/2", FloatValue(2.5)), rec("/34/0/3", FloatValue(3.5))}},
	// Wakaama senml_json_test_23: "vd" in the standard alphabet, padded.
	{"vd standard and padded", "/34/0/2", `[{"bn":"/34/0/2","vd":"AQIDBAU="}]`, model(map[res]Type{{34, 2}: Opaque}), []Record{rec("/34/0/2", OpaqueValue([]byte{1, 2, 3, 4, 5}))}},
	{"vd standard alphabet", "/34/0/2", `[{"bn":"/34/0/2","vd":"+/8"}]`, model(map[res]Type{{34, 2}: Opaque}), []Record{rec("/34/0/2", OpaqueValue([]byte{0xFB, 0xFF}))}},
	{"vd url alphabet", "/34/0/2", `[{"bn":"/34/0/2","vd":"-_8"}]`, model(map[res]Type{{34, 2}: Opaque}), []Record{rec("/34/0/2", OpaqueValue([]byte{0xFB, 0xFF}))}},
	// Wakaama senml_json_test_24: every escape.
	{"escapes", "/34/0/2", `[{"bn":"/34/0/2","vs":"\u0000\u0001\u001a\u001F\u0020\"\\\/\b\f\n\r\t"}]`, model(map[res]Type{{34, 2}: String}),
		[]Record{rec("/34/0/2", StringValue("\x00\x01\x1a\x1f \"\\/\b\f\n\r\t"))}},
	{"escaped label", "/34/0/2", `[{"\u006e":"/34/0/2","\u0076":1}]`, wakaama34, []Record{rec("/34/0/2", IntValue(1))}},
	// Leshan senml_json_decode_single_resource_using_exponantial_notation.
	{"Time with an exponent", "/3/0/13", `[{"bn":"/3/0/13","v":1.638435E9}]`, testModel, []Record{rec("/3/0/13", Value{Type: Time, Int: 1638435000})}},
	// Leshan senml_json_decode_long.
	{"Integer near the top", "/1/0/2", `[{"n":"/1/0/2","v":9223372036854775800}]`, testModel, []Record{rec("/1/0/2", IntValue(9223372036854775800))}},
	// Leshan senml_json_decode_ulong.
	{"Unsigned max", "/0/0/16", `[{"n":"/0/0/16","v":18446744073709551615}]`, testModel, []Record{rec("/0/0/16", UintValue(math.MaxUint64))}},
	{"Unsigned from a float", "/0/0/16", `[{"n":"/0/0/16","v":1.5e3}]`, testModel, []Record{rec("/0/0/16", UintValue(1500))}},
	{"Float from a big integer", "/6/0/0", `[{"n":"/6/0/0","v":100000000000000000000}]`, testModel, []Record{rec("/6/0/0", FloatValue(1e20))}},
	// Leshan senml_json_empty_multi_resource.
	{"empty payload", "/3/0/6", ``, testModel, nil},
	{"white space only", "/3/0/6", " \n", testModel, nil},
	{"trailing slash in a name", "/3/0/9", `[{"bn":"/3/0/9/","v":1}]`, testModel, []Record{rec("/3/0/9", IntValue(1))}},
}

func TestSenMLJSONDecode(t *testing.T) {
	tests := jsonDecodes
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, _ := ParsePath(tt.base)
			recs, err := Decode(SenMLJSON, base, []byte(tt.json), tt.typeOf)
			wantErr(t, err, nil)
			checkRecords(t, recs, tt.recs)
		})
	}
}

var jsonDecodeErrors = []struct {
	name, base, json string
	err              error
}{
	{"not an array", "/3/0", `{"bn":"/3/0/9","v":1}`, ErrMalformed},
	{"truncated", "/3/0", `[{"bn":"/3/0/9","v":1`, ErrMalformed},
	{"trailing comma", "/3/0", `[{"bn":"/3/0/9","v":1},]`, ErrMalformed},
	{"data after the array", "/3/0", `[{"bn":"/3/0/9","v":1}] x`, ErrMalformed},
	{"a NUL after the array", "/3/0", "[]\x00", ErrMalformed},
	{"single quotes", "/3/0", `[{'bn':'/3/0/9','v':1}]`, ErrMalformed},
	{"bad number", "/3/0/9", `[{"bn":"/3/0/9","v":01}]`, ErrMalformed},
	{"number with a plus", "/3/0/9", `[{"bn":"/3/0/9","v":+1}]`, ErrMalformed},
	{"NaN", "/6/0/0", `[{"bn":"/6/0/0","v":NaN}]`, ErrMalformed},
	{"number out of range", "/6/0/0", `[{"bn":"/6/0/0","v":1e999}]`, ErrMalformed},
	{"bad escape", "/3/0/0", `[{"bn":"/3/0/0","vs":"\x"}]`, ErrMalformed},
	{"bad unicode escape", "/3/0/0", `[{"bn":"/3/0/0","vs":"\u12"}]`, ErrMalformed},
	{"control character", "/3/0/0", "[{\"bn\":\"/3/0/0\",\"vs\":\"\n\"}]", ErrMalformed},
	{"control character 0x1f", "/3/0/0", "[{\"bn\":\"/3/0/0\",\"vs\":\"\x1f\"}]", ErrMalformed},
	{"not UTF-8", "/3/0/0", "[{\"bn\":\"/3/0/0\",\"vs\":\"\xff\"}]", ErrMalformed},
	{"label twice", "/3/0/9", `[{"bn":"/3/0/9","v":1,"v":2}]`, ErrMalformed},
	{"two values", "/3/0/9", `[{"bn":"/3/0/9","v":1,"vs":"1"}]`, ErrMalformed},
	{"no value", "/3/0/9", `[{"bn":"/3/0/9"}]`, ErrMalformed},
	{"empty record", "/3/0/9", `[{}]`, ErrMalformed},
	{"name is a number", "/3/0/9", `[{"n":9,"v":1}]`, ErrMalformed},
	{"name is no path", "/3/0", `[{"bn":"/3/0/","n":"x","v":1}]`, ErrMalformed},
	{"name is an instance", "/3/0", `[{"bn":"/3/0","v":1}]`, ErrMalformed},
	{"path outside the base", "/3/0", `[{"bn":"/3/1/9","v":1}]`, ErrMalformed},
	{"a path twice", "/3/0", `[{"bn":"/3/0/","n":"9","v":1},{"n":"9","v":2}]`, ErrMalformed},
	{"single and multiple", "/3/0", `[{"bn":"/3/0/","n":"6/0","v":1},{"n":"6","v":2}]`, ErrMalformed},
	{"a time series", "/72", `[{"bn":"/72/","bt":25462634,"n":"1/2","v":22.4,"t":-5},{"n":"1/2","v":22.9,"t":-30}]`, ErrMalformed},
	{"unknown resource", "/3/0", `[{"bn":"/3/0/99","v":1}]`, ErrNotFound},
	{"value for an executable resource", "/3/0/4", `[{"bn":"/3/0/4","v":1}]`, ErrMalformed},
	{"vs for an Integer", "/3/0/9", `[{"bn":"/3/0/9","vs":"1"}]`, ErrMalformed},
	{"v for a String", "/3/0/0", `[{"bn":"/3/0/0","v":1}]`, ErrMalformed},
	{"v for a Boolean", "/1/0/6", `[{"bn":"/1/0/6","v":1}]`, ErrMalformed},
	{"vb not a boolean", "/1/0/6", `[{"bn":"/1/0/6","vb":"true"}]`, ErrMalformed},
	{"fraction for an Integer", "/3/0/9", `[{"bn":"/3/0/9","v":1.5}]`, ErrMalformed},
	{"Integer too big", "/3/0/9", `[{"bn":"/3/0/9","v":9223372036854775808}]`, ErrMalformed},
	{"Integer too big as a float", "/3/0/9", `[{"bn":"/3/0/9","v":1e19}]`, ErrMalformed},
	{"negative Unsigned", "/0/0/16", `[{"bn":"/0/0/16","v":-1}]`, ErrMalformed},
	{"Unsigned too big", "/0/0/16", `[{"bn":"/0/0/16","v":18446744073709551616}]`, ErrMalformed},
	{"bad base64", "/0/0/3", `[{"bn":"/0/0/3","vd":"!,-INVALID$_'"}]`, ErrMalformed},
	{"mixed base64 alphabets", "/0/0/3", `[{"bn":"/0/0/3","vd":"+_8"}]`, ErrMalformed},
	{"bad object link", "/65/0/0/0", `[{"bn":"/65/0/0/0","vlo":"66-0"}]`, ErrMalformed},
	{"object link out of range", "/65/0/0/0", `[{"bn":"/65/0/0/0","vlo":"66:65536"}]`, ErrMalformed},
	{"Corelnk not links", "/3442/0/180", `[{"bn":"/3442/0/180","vs":"x"}]`, ErrMalformed},
	// Wakaama senml_json_test_19, 21.
	{"bver 11", "/34/0/2", `[{"bver":11,"n":"/34/0/2","v":1}]`, ErrMalformed},
	{"must-understand label", "/34/0/2", `[{ "bn":"/","test_":"fail","n":"34/0/2","v":1}]`, ErrMalformed},
	{"unknown label nested too deep", "/3/0/9", `[{"x":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]],"bn":"/3/0/9","v":1}]`, ErrMalformed},
	{"bt not a number", "/3/0/9", `[{"bn":"/3/0/9","bt":"1","v":1}]`, ErrMalformed},
}

func TestSenMLJSONDecodeErrors(t *testing.T) {
	tests := jsonDecodeErrors
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, _ := ParsePath(tt.base)
			recs, err := Decode(SenMLJSON, base, []byte(tt.json), testModel)
			wantErr(t, err, tt.err)
			if recs != nil {
				t.Errorf("records %v with the error", recs)
			}
		})
	}
}

func TestSenMLJSONEncodeErrors(t *testing.T) {
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		_, err := Encode(SenMLJSON, ResourcePath(6, 0, 0), []Record{rec("/6/0/0", FloatValue(f))})
		wantErr(t, err, ErrUnsupported)
	}
	_, err := Encode(SenMLJSON, InstancePath(3, 0), []Record{rec("/3/1/0", StringValue("x"))})
	wantErr(t, err, ErrBadPath)
}

// TestSenMLJSONEncodeEscapes: what the decoder must read back.
func TestSenMLJSONEncodeEscapes(t *testing.T) {
	s := "\x00\x1f\"\\/\b\f\n\r\té\u2028"
	got, err := Encode(SenMLJSON, ResourcePath(3, 0, 0), []Record{rec("/3/0/0", StringValue(s))})
	wantErr(t, err, nil)
	if want := `[{"bn":"/3/0/0","vs":"\u0000\u001f\"\\/\u0008\u000c\n\r\té` + "\u2028" + `"}]`; string(got) != want {
		t.Errorf("Encode:\n got  %s\n want %s", got, want)
	}
	recs, err := Decode(SenMLJSON, ResourcePath(3, 0, 0), got, testModel)
	wantErr(t, err, nil)
	checkRecords(t, recs, []Record{rec("/3/0/0", StringValue(s))})
}

package content

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

var registerLinks = `</>;rt="oma.lwm2m";ct="60 110 112 1542 1543 11542 11543",</1>;ver=1.1,</1/0>,</2>,</3>;ver=1.1,</3/0>,</3442/0>`
var bigString = strings.Repeat("x", 300)
var hugeOpaque = bytes.Repeat([]byte{0xA5}, 70000)

// The TLV examples of the TS, as Leshan's LwM2mNodeDecoderTest and
// LwM2mNodeEncoderTest carry them (eclipse-leshan/leshan,
// leshan-lwm2m-core/src/test/java/org/eclipse/leshan/core/node/codec/).
const (
	// OMA-TS-LightweightM2M-V1_0 6.4.3.1: Read /3/0, the Device instance
	// as resource TLVs (Leshan's ENCODED_DEVICE_WITHOUT_INSTANCE).
	tsDeviceResources = "C800144F70656E204D6F62696C6520416C6C69616E6365C801164C69676874776569676874204D324D20436C69656E74C80209333435303030313233C303312E30860641000141010588070842000ED842011388870841007D42010384C10964C10A0F830B410000C40D5182428FC60E2B30323A3030C11055"
	// 6.4.3.2 A): Read /3, the same inside an object-instance TLV
	// (ENCODED_DEVICE_WITH_INSTANCE).
	tsDeviceInstance = "080079" + tsDeviceResources
	// 6.4.3.2 B): Read /2, two Access Control instances; a 16-bit
	// resource-instance id, 310 (ENCODED_ACL).
	tsACL = "08000EC10001C101008302417F07C1037F080212C10003C101008702417F0761013601C1037F"
	// 6.4.3.2 C): Read /1, one Server instance (ENCODED_SERVER).
	tsServer = "08000FC10001C40100015180C10601C10755"
	// 6.4.3.3 1): Read /65/0, object links in a multiple resource
	// (ENCODED_OBJ65).
	tsObj65 = "88000C440000420000440100420001C8010D38363133383030373535353030C40212345678"
	// 6.4.3.3 2): Read /66, two instances; the null link 65535:65535
	// (ENCODED_OBJ66).
	tsObj66 = "080026C8000B6D79536572766963652031C8010F496E7465726E65742E31352E323334C40200430000080126C8000B6D79536572766963652032C8010F496E7465726E65742E31352E323335C402FFFFFFFF"
	// Leshan's ENCODED_OBJ3442: an instance whose resource 180 is a
	// Corelnk, a Register payload.
	leshanObj3442 = "080072c8b46f3c2f3e3b72743d226f6d612e6c776d326d223b63743d223630203131302031313220313534322031353433203131353432203131353433222c3c2f313e3b7665723d312e312c3c2f312f303e2c3c2f323e2c3c2f333e3b7665723d312e312c3c2f332f303e2c3c2f333434322f303e"
)

func aclRecords() []Record {
	return []Record{
		rec("/2/0/0", IntValue(1)), rec("/2/0/1", IntValue(0)), rec("/2/0/2/127", IntValue(7)), rec("/2/0/3", IntValue(127)),
		rec("/2/2/0", IntValue(3)), rec("/2/2/1", IntValue(0)), rec("/2/2/2/127", IntValue(7)), rec("/2/2/2/310", IntValue(1)),
		rec("/2/2/3", IntValue(127)),
	}
}

func obj66Records() []Record {
	return []Record{
		rec("/66/0/0", StringValue("myService 1")), rec("/66/0/1", StringValue("Internet.15.234")),
		rec("/66/0/2", LinkValue(ObjLink{67, 0})),
		rec("/66/1/0", StringValue("myService 2")), rec("/66/1/1", StringValue("Internet.15.235")),
		rec("/66/1/2", LinkValue(ObjLink{65535, 65535})),
	}
}

// TestTLVVectors encodes records and compares the bytes, and decodes the
// bytes and compares the records.
var tlvVectors = []struct {
	name string
	base string
	tlv  string // hex
	recs []Record
}{
	{"TS 1.0 6.4.3.1 device instance", "/3/0", tsDeviceResources, deviceRecords()},
	{"TS 1.0 6.4.3.2 A device object", "/3", tsDeviceInstance, deviceRecords()},
	{"TS 1.0 6.4.3.2 B ACL object", "/2", tsACL, aclRecords()},
	{"TS 1.0 6.4.3.2 C server object", "/1", tsServer, []Record{
		rec("/1/0/0", IntValue(1)), rec("/1/0/1", IntValue(86400)), rec("/1/0/6", BoolValue(true)), rec("/1/0/7", StringValue("U")),
	}},
	{"TS 1.0 6.4.3.3 obj65 instance", "/65/0", tsObj65, []Record{
		rec("/65/0/0/0", LinkValue(ObjLink{66, 0})), rec("/65/0/0/1", LinkValue(ObjLink{66, 1})),
		rec("/65/0/1", StringValue("8613800755500")), rec("/65/0/2", IntValue(305419896)),
	}},
	{"TS 1.0 6.4.3.3 obj66 object", "/66", tsObj66, obj66Records()},
	{"Leshan obj3442 corelnk", "/3442", leshanObj3442, []Record{rec("/3442/0/180", CoreLinkValue(registerLinks))}},
	{"single resource (Leshan tlv_manufacturer_resource)", "/3/0/0", "C8 00 14 4F70656E204D6F62696C6520416C6C69616E6365", deviceRecords()[:1]},
	{"multiple resource (Wakaama's Read /3/0/6)", "/3/0/6", "86 06 41 00 01 41 01 05", deviceRecords()[4:6]},
	{"resource instance", "/3/0/6/1", "41 01 05", deviceRecords()[5:6]},
	{"empty instance", "/3/0", "", nil},
	// One resource of each type, each size of integer.
	{"String", "/1024/0/0", "C2 00 68 69", []Record{rec("/1024/0/0", StringValue("hi"))}},
	{"empty String", "/1024/0/0", "C0 00", []Record{rec("/1024/0/0", StringValue(""))}},
	{"Integer 0", "/1024/0/1", "C1 01 00", []Record{rec("/1024/0/1", IntValue(0))}},
	{"Integer -1", "/1024/0/1", "C1 01 FF", []Record{rec("/1024/0/1", IntValue(-1))}},
	{"Integer 127", "/1024/0/1", "C1 01 7F", []Record{rec("/1024/0/1", IntValue(127))}},
	{"Integer 128", "/1024/0/1", "C2 01 00 80", []Record{rec("/1024/0/1", IntValue(128))}},
	{"Integer -129", "/1024/0/1", "C2 01 FF 7F", []Record{rec("/1024/0/1", IntValue(-129))}},
	{"Integer 32768", "/1024/0/1", "C4 01 00 00 80 00", []Record{rec("/1024/0/1", IntValue(32768))}},
	{"Integer 2^31", "/1024/0/1", "C8 01 08 00 00 00 00 80 00 00 00", []Record{rec("/1024/0/1", IntValue(1<<31))}},
	{"Integer min", "/1024/0/1", "C8 01 08 80 00 00 00 00 00 00 00", []Record{rec("/1024/0/1", IntValue(math.MinInt64))}},
	{"Unsigned 255", "/1024/0/2", "C1 02 FF", []Record{rec("/1024/0/2", UintValue(255))}},
	{"Unsigned 65535", "/1024/0/2", "C2 02 FF FF", []Record{rec("/1024/0/2", UintValue(65535))}},
	{"Unsigned 2^32-1", "/1024/0/2", "C4 02 FF FF FF FF", []Record{rec("/1024/0/2", UintValue(math.MaxUint32))}},
	{"Unsigned max", "/1024/0/2", "C8 02 08 FF FF FF FF FF FF FF FF", []Record{rec("/1024/0/2", UintValue(math.MaxUint64))}},
	{"Float single", "/1024/0/3", "C4 03 3F C0 00 00", []Record{rec("/1024/0/3", FloatValue(1.5))}},
	{"Float double", "/1024/0/3", "C8 03 08 3F B9 99 99 99 99 99 9A", []Record{rec("/1024/0/3", FloatValue(0.1))}},
	{"Float NaN", "/1024/0/3", "C8 03 08 7F F8 00 00 00 00 00 01", []Record{rec("/1024/0/3", FloatValue(math.Float64frombits(0x7FF8000000000001)))}},
	{"Boolean true", "/1024/0/4", "C1 04 01", []Record{rec("/1024/0/4", BoolValue(true))}},
	{"Boolean false", "/1024/0/4", "C1 04 00", []Record{rec("/1024/0/4", BoolValue(false))}},
	{"Opaque", "/1024/0/5", "C3 05 01 02 03", []Record{rec("/1024/0/5", OpaqueValue([]byte{1, 2, 3}))}},
	{"empty Opaque", "/1024/0/5", "C0 05", []Record{rec("/1024/0/5", OpaqueValue(nil))}},
	{"Time", "/1024/0/6", "C4 06 51 82 42 8F", []Record{rec("/1024/0/6", Value{Type: Time, Int: 1367491215})}},
	{"Objlnk", "/1024/0/7", "C4 07 00 42 00 00", []Record{rec("/1024/0/7", LinkValue(ObjLink{66, 0}))}},
	{"Corelnk", "/1024/0/8", "C6 08 3C 2F 31 2F 30 3E", []Record{rec("/1024/0/8", CoreLinkValue("</1/0>"))}},
	{"16-bit ids", "/3308/0", "E4 17 0C 41 90 00 00", []Record{rec("/3308/0/5900", FloatValue(18))}},
	{"16-bit length", "/3/0/0", "D0 00 01 2C" + strings.Repeat("78", 300), []Record{rec("/3/0/0", StringValue(bigString))}},
	{"24-bit length", "/5/0/0", "D8 00 01 11 70" + strings.Repeat("A5", 70000), []Record{rec("/5/0/0", OpaqueValue(hugeOpaque))}},
}

func TestTLVVectors(t *testing.T) {
	tests := tlvVectors
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, err := ParsePath(tt.base)
			wantErr(t, err, nil)
			want := unhex(t, tt.tlv)
			got, err := Encode(TLV, base, tt.recs)
			wantErr(t, err, nil)
			if !bytes.Equal(got, want) {
				t.Errorf("Encode:\n got  % X\n want % X", got, want)
			}
			recs, err := Decode(TLV, base, want, testModel)
			wantErr(t, err, nil)
			checkRecords(t, recs, tt.recs)
		})
	}
}

// TestTLVDecodeLenient: forms that other implementations write and the
// TS allows, decoded but never written.
var tlvLenient = []struct {
	name, base, tlv string
	recs            []Record
}{
	// Leshan tlv_device_object_instance0_from_instance_tlv.
	{"instance TLV at /O/I", "/3/0", tsDeviceInstance, deviceRecords()},
	// Leshan tlv_power_source__array_values.
	{"bare resource instances at /O/I/R", "/3/0/6", "41 00 01 41 01 05", deviceRecords()[4:6]},
	// Leshan tlv_resource_with_undesired_object_instance.
	{"instance TLV at /O/I/R", "/3/0/1", "03 00 C1 01 78", []Record{rec("/3/0/1", StringValue("x"))}},
	{"multiple resource at /O/I/R/RI", "/3/0/6/1", "83 06 41 01 05", deviceRecords()[5:6]},
	{"Integer in more bytes than needed", "/1024/0/1", "C8 01 08 00 00 00 00 00 00 00 05", []Record{rec("/1024/0/1", IntValue(5))}},
	{"Unsigned in more bytes than needed", "/1024/0/2", "C2 02 00 05", []Record{rec("/1024/0/2", UintValue(5))}},
	{"Float in 8 bytes", "/1024/0/3", "C8 03 08 3F F8 00 00 00 00 00 00", []Record{rec("/1024/0/3", FloatValue(1.5))}},
	{"length in a field it did not need", "/1024/0/0", "C8 00 02 68 69", []Record{rec("/1024/0/0", StringValue("hi"))}},
	{"Time in 8 bytes", "/1024/0/6", "C8 06 08 00 00 00 00 51 82 42 8F", []Record{rec("/1024/0/6", Value{Type: Time, Int: 1367491215})}},
	{"empty multiple resource", "/3/0", "80 06", nil},
	{"empty object instance", "/3", "00 00", nil},
	{"empty payload", "/3/0/6", "", nil},
}

func TestTLVDecodeLenient(t *testing.T) {
	tests := tlvLenient
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, _ := ParsePath(tt.base)
			recs, err := Decode(TLV, base, unhex(t, tt.tlv), testModel)
			wantErr(t, err, nil)
			checkRecords(t, recs, tt.recs)
		})
	}
}

var tlvDecodeErrors = []struct {
	name, base, tlv string
	err             error
}{
	{"truncated value", "/3/0", "C8 00 14 4F 70", ErrMalformed},
	{"length past the end", "/3/0", "C5 00 01 02", ErrMalformed},
	{"type byte alone", "/3/0", "C8", ErrMalformed},
	{"16-bit id truncated", "/3/0", "E1 00", ErrMalformed},
	{"8-bit length missing", "/3/0", "C8 00", ErrMalformed},
	{"16-bit length truncated", "/3/0", "D0 00 01", ErrMalformed},
	{"24-bit length truncated", "/3/0", "D8 00 01 00", ErrMalformed},
	{"trailing byte", "/3/0", "C1 09 64 C1", ErrMalformed},
	{"instance in an instance", "/3", "02 00 00 05", ErrMalformed},
	{"resource instance in an instance", "/3", "03 00 41 00 01", ErrMalformed},
	{"resource in a multiple resource", "/3/0", "83 06 C1 00 01", ErrMalformed},
	{"multiple resource in a multiple resource", "/3/0", "84 06 82 00 00", ErrMalformed},
	{"Integer of 3 bytes", "/1024/0", "C3 01 00 00 01", ErrMalformed},
	{"Integer of 0 bytes", "/1024/0", "C0 01", ErrMalformed},
	{"Unsigned of 3 bytes", "/1024/0", "C3 02 00 00 01", ErrMalformed},
	{"Float of 2 bytes", "/1024/0", "C2 03 00 00", ErrMalformed},
	{"Boolean 2", "/1024/0", "C1 04 02", ErrMalformed},
	{"Boolean of 2 bytes", "/1024/0", "C2 04 00 01", ErrMalformed},
	{"Objlnk of 3 bytes", "/1024/0", "C3 07 00 00 01", ErrMalformed},
	{"String not UTF-8", "/1024/0", "C2 00 FF FE", ErrMalformed},
	{"Corelnk not links", "/1024/0", "C1 08 78", ErrMalformed},
	{"value for an executable resource", "/3/0", "C0 04", ErrMalformed},
	{"instance outside the base", "/3/0", "03 01 C1 09 64", ErrMalformed},
	{"resource outside the base", "/3/0/9", "C1 0A 0F", ErrMalformed},
	{"resource instance outside the base", "/3/0/6/1", "41 00 01", ErrMalformed},
	{"resource above the base", "/3/0/6/1", "C1 06 05", ErrMalformed},
	{"resource without its instance", "/3", "C1 09 64", ErrMalformed},
	{"resource instance without its resource", "/3/0", "41 00 01", ErrMalformed},
	{"reserved id 65535", "/1024/0", "E1 FF FF 00", ErrMalformed},
	{"a resource twice", "/3/0", "C1 09 64 C1 09 64", ErrMalformed},
	{"a resource single and multiple", "/3/0", "C1 06 01 86 06 41 00 01", ErrMalformed},
	{"a resource instance twice", "/3/0/6", "41 00 01 41 00 01", ErrMalformed},
	{"unknown resource", "/3/0", "C1 63 01", ErrNotFound},
	{"unknown object", "/9999/0", "C1 00 01", ErrNotFound},
	{"the root", "/", "C1 00 01", ErrUnsupported},
}

func TestTLVDecodeErrors(t *testing.T) {
	tests := tlvDecodeErrors
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, err := ParsePath(tt.base)
			wantErr(t, err, nil)
			recs, err := Decode(TLV, base, unhex(t, tt.tlv), testModel)
			wantErr(t, err, tt.err)
			if recs != nil {
				t.Errorf("records %v with the error", recs)
			}
		})
	}
}

func TestTLVEncodeErrors(t *testing.T) {
	tooLong := make([]byte, maxTLVLength+1)
	tests := []struct {
		name, base string
		recs       []Record
		err        error
	}{
		{"the root", "/", deviceRecords(), ErrUnsupported},
		{"value too long", "/5/0/0", []Record{rec("/5/0/0", OpaqueValue(tooLong))}, ErrUnsupported},
		{"instance too long", "/5", []Record{rec("/5/0/0", OpaqueValue(tooLong[:maxTLVLength-4])), rec("/5/0/1", StringValue("x"))}, ErrUnsupported},
		{"record outside the base", "/3/0", []Record{rec("/3/1/0", StringValue("x"))}, ErrBadPath},
		{"record that is an instance", "/3", []Record{rec("/3/0", StringValue("x"))}, ErrBadPath},
		{"record with the reserved id", "/3/0", []Record{{ResourcePath(3, 0, NoID), StringValue("x")}}, ErrBadPath},
		{"a path twice", "/3/0", []Record{rec("/3/0/9", IntValue(1)), rec("/3/0/9", IntValue(2))}, ErrBadPath},
		{"single and multiple", "/3/0", []Record{rec("/3/0/6/0", IntValue(1)), rec("/3/0/6", IntValue(2))}, ErrBadPath},
		{"value of type none", "/3/0", []Record{rec("/3/0/4", Value{})}, ErrMalformed},
		{"unknown type", "/3/0", []Record{rec("/3/0/4", Value{Type: CoreLink + 1})}, ErrMalformed},
		{"String not UTF-8", "/3/0", []Record{rec("/3/0/0", Value{Type: String, Bytes: []byte{0xFF}})}, ErrMalformed},
		{"Corelnk not links", "/3/0", []Record{rec("/3/0/0", CoreLinkValue("x"))}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, _ := ParsePath(tt.base)
			_, err := Encode(TLV, base, tt.recs)
			wantErr(t, err, tt.err)
		})
	}
	_, err := Encode(TLV, InstancePath(3, NoID), nil)
	wantErr(t, err, ErrBadPath)
	_, err = Decode(TLV, InstancePath(3, NoID), nil, testModel)
	wantErr(t, err, ErrBadPath)
}

// TestTLVEncodeSorts: records in any order come out in path order, as
// the TS's example has them.
func TestTLVEncodeSorts(t *testing.T) {
	recs := deviceRecords()
	shuffled := append([]Record{}, recs[8:]...)
	shuffled = append(shuffled, recs[:8]...)
	got, err := Encode(TLV, InstancePath(3, 0), shuffled)
	wantErr(t, err, nil)
	if want := unhex(t, tsDeviceResources); !bytes.Equal(got, want) {
		t.Errorf("Encode:\n got  % X\n want % X", got, want)
	}
	if shuffled[0].Path != recs[8].Path {
		t.Error("Encode reordered the caller's slice")
	}
}

// TestDecodedBytesDoNotAliasThePayload: a CoAP layer reuses its buffers.
func TestDecodedBytesDoNotAliasThePayload(t *testing.T) {
	for _, f := range []Format{TLV, SenMLJSON, SenMLCBOR, Text, OpaqueFormat} {
		want := []Record{rec("/5/0/0", OpaqueValue([]byte("firmware")))}
		payload, err := Encode(f, ResourcePath(5, 0, 0), want)
		wantErr(t, err, nil)
		recs, err := Decode(f, ResourcePath(5, 0, 0), payload, testModel)
		wantErr(t, err, nil)
		for i := range payload {
			payload[i] = 'X'
		}
		if !sameRecords(recs, want) {
			t.Errorf("%v: the records changed with the payload: %v", f, recs)
		}
	}
}

package content

import (
	"math"
	"testing"
	"time"
)

func TestTypes(t *testing.T) {
	for ty := TypeNone; ty <= CoreLink; ty++ {
		got, ok := ParseType(ty.String())
		if ty == TypeNone {
			got, ok = ParseType("")
		}
		if !ok || got != ty {
			t.Errorf("ParseType(%q) = %v, %v", ty.String(), got, ok)
		}
	}
	if _, ok := ParseType("integer"); ok {
		t.Error(`ParseType("integer"): the registry writes "Integer"`)
	}
	if s := Type(42).String(); s != "Type(42)" {
		t.Errorf("Type(42) = %q", s)
	}
}

func TestValueEqual(t *testing.T) {
	nan := math.NaN()
	equal := [][2]Value{
		{StringValue(""), {Type: String}},
		{OpaqueValue(nil), OpaqueValue([]byte{})},
		{FloatValue(nan), FloatValue(-nan)},
		{FloatValue(0), FloatValue(math.Copysign(0, -1))},
		{BoolValue(true), {Type: Boolean, Int: 2}},
		{TimeValue(time.Unix(1367491215, 999_000_000)), {Type: Time, Int: 1367491215}},
		{IntValue(3), {Type: Integer, Int: 3, Uint: 9}}, // the unused fields do not count
	}
	for _, c := range equal {
		if !c[0].Equal(c[1]) || !c[1].Equal(c[0]) {
			t.Errorf("%v and %v are not equal", c[0], c[1])
		}
	}
	differ := [][2]Value{
		{IntValue(1), UintValue(1)},
		{IntValue(1), {Type: Time, Int: 1}},
		{StringValue("a"), OpaqueValue([]byte("a"))},
		{StringValue("a"), CoreLinkValue("a")},
		{FloatValue(nan), FloatValue(1)},
		{BoolValue(true), BoolValue(false)},
		{LinkValue(ObjLink{1, 2}), LinkValue(ObjLink{2, 1})},
	}
	for _, c := range differ {
		if c[0].Equal(c[1]) {
			t.Errorf("%v and %v are equal", c[0], c[1])
		}
	}
}

func TestValueText(t *testing.T) {
	for v, want := range map[*Value]string{
		{Type: Float, Float: math.NaN()}:       "NaN",
		{Type: Float, Float: math.Inf(1)}:      "+Inf",
		{Type: Float, Float: -0.5}:             "-0.5",
		{}:                                     "",
		{Type: ObjectLink, Link: ObjLink{}}:    "0:0",
		{Type: Opaque, Bytes: []byte{0xFB}}:    "+w==",
		{Type: Boolean, Int: 7}:                "1",
		{Type: UnsignedInteger, Uint: 1 << 63}: "9223372036854775808",
	} {
		if got := v.Text(); got != want {
			t.Errorf("%v.Text() = %q, want %q", *v, got, want)
		}
	}
	if s := (ObjLink{3, 0}).String(); s != "3:0" {
		t.Errorf("ObjLink.String() = %q", s)
	}
}

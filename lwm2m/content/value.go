package content

import (
	"bytes"
	"encoding/base64"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// Type is the data type of a resource (TS 1.1 Core, appendix C).
type Type uint8

// The data types. TypeNone is the type of resources that hold no value
// (executable ones); a value of that type is never encoded or decoded.
const (
	TypeNone Type = iota
	String
	Integer
	UnsignedInteger
	Float
	Boolean
	Opaque
	Time
	ObjectLink
	CoreLink
)

var typeNames = [...]string{
	TypeNone:        "none",
	String:          "String",
	Integer:         "Integer",
	UnsignedInteger: "Unsigned Integer",
	Float:           "Float",
	Boolean:         "Boolean",
	Opaque:          "Opaque",
	Time:            "Time",
	ObjectLink:      "Objlnk",
	CoreLink:        "Corelnk",
}

// String returns the type's name as the object registry's XML writes it
// ("Integer", "Unsigned Integer", "Objlnk", ...), and "none" for TypeNone.
func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "Type(" + strconv.Itoa(int(t)) + ")"
}

// ParseType returns the type that the object registry's XML names s (the
// <Type> element: "String", "Integer", "Unsigned Integer", "Float",
// "Boolean", "Opaque", "Time", "Objlnk", "Corelnk"); "" (an executable
// resource) is TypeNone. ok is false for anything else.
func ParseType(s string) (t Type, ok bool) {
	if s == "" {
		return TypeNone, true
	}
	for i, name := range typeNames[1:] {
		if s == name {
			return Type(i + 1), true
		}
	}
	return TypeNone, false
}

// ObjLink is an object link: an object id and an instance id.
// 65535:65535 is the TS's null link.
type ObjLink struct{ Object, Instance uint16 }

// String writes the link as the TS's text formats do, "3:0".
func (l ObjLink) String() string { return string(l.appendTo(nil)) }

func (l ObjLink) appendTo(b []byte) []byte {
	b = strconv.AppendUint(b, uint64(l.Object), 10)
	b = append(b, ':')
	return strconv.AppendUint(b, uint64(l.Instance), 10)
}

// parseObjLink parses "O:I", each decimal from 0 to 65535.
func parseObjLink[S ~string | ~[]byte](s S) (ObjLink, bool) {
	colon := -1
	for i := range len(s) {
		if s[i] == ':' {
			colon = i
			break
		}
	}
	if colon < 0 {
		return ObjLink{}, false
	}
	o, ok1 := parseID(s[:colon])
	i, ok2 := parseID(s[colon+1:])
	return ObjLink{o, i}, ok1 && ok2
}

// parseID parses decimal digits (at most five) into a value up to 65535.
func parseID[S ~string | ~[]byte](s S) (uint16, bool) {
	if len(s) == 0 || len(s) > 5 {
		return 0, false
	}
	v := 0
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		v = v*10 + int(s[i]-'0')
	}
	return uint16(v), v <= math.MaxUint16
}

// Value is a resource value. Type says which field holds it; the others
// are zero.
type Value struct {
	Type  Type
	Int   int64   // Integer, Time (Unix seconds), Boolean (0 or 1)
	Uint  uint64  // UnsignedInteger
	Float float64 // Float
	Bytes []byte  // String (UTF-8), Opaque, CoreLink (RFC 6690 text)
	Link  ObjLink // ObjectLink
}

// StringValue returns a String value.
func StringValue(s string) Value { return Value{Type: String, Bytes: []byte(s)} }

// IntValue returns an Integer value.
func IntValue(i int64) Value { return Value{Type: Integer, Int: i} }

// UintValue returns an Unsigned Integer value.
func UintValue(u uint64) Value { return Value{Type: UnsignedInteger, Uint: u} }

// FloatValue returns a Float value.
func FloatValue(f float64) Value { return Value{Type: Float, Float: f} }

// BoolValue returns a Boolean value.
func BoolValue(b bool) Value {
	v := Value{Type: Boolean}
	if b {
		v.Int = 1
	}
	return v
}

// OpaqueValue returns an Opaque value holding b (not a copy).
func OpaqueValue(b []byte) Value { return Value{Type: Opaque, Bytes: b} }

// TimeValue returns a Time value: t in whole Unix seconds, as the TS
// carries it (fractions are dropped).
func TimeValue(t time.Time) Value { return Value{Type: Time, Int: t.Unix()} }

// LinkValue returns an Objlnk value.
func LinkValue(l ObjLink) Value { return Value{Type: ObjectLink, Link: l} }

// CoreLinkValue returns a Corelnk value: links in the CoRE link format.
func CoreLinkValue(links string) Value { return Value{Type: CoreLink, Bytes: []byte(links)} }

// Text returns the value as the text/plain format carries it (TS 1.1
// Core 7.4.1 and appendix C): strings and core links as they are,
// integers and times in decimal, Boolean "1" or "0", a float in decimal
// notation with the fewest digits that read back exactly (never an
// exponent; NaN and infinities print as "NaN", "+Inf" and "-Inf", which
// [Encode] refuses), an object link "3:0", opaque bytes in base64
// (standard alphabet, padded). TypeNone is "".
func (v Value) Text() string { return string(v.appendText(nil)) }

func (v Value) appendText(b []byte) []byte {
	switch v.Type {
	case String, CoreLink:
		return append(b, v.Bytes...)
	case Integer, Time:
		return strconv.AppendInt(b, v.Int, 10)
	case UnsignedInteger:
		return strconv.AppendUint(b, v.Uint, 10)
	case Float:
		return strconv.AppendFloat(b, v.Float, 'f', -1, 64)
	case Boolean:
		if v.Int != 0 {
			return append(b, '1')
		}
		return append(b, '0')
	case Opaque:
		return base64.StdEncoding.AppendEncode(b, v.Bytes)
	case ObjectLink:
		return v.Link.appendTo(b)
	}
	return b
}

// Equal reports whether v and w are the same value: the same Type and the
// same content in the field that Type uses (nil and empty Bytes are
// equal; any two NaNs are equal, and so are 0 and -0; any two true
// Booleans are equal).
func (v Value) Equal(w Value) bool {
	if v.Type != w.Type {
		return false
	}
	switch v.Type {
	case String, Opaque, CoreLink:
		return bytes.Equal(v.Bytes, w.Bytes)
	case Integer, Time:
		return v.Int == w.Int
	case UnsignedInteger:
		return v.Uint == w.Uint
	case Float:
		return v.Float == w.Float || math.IsNaN(v.Float) && math.IsNaN(w.Float)
	case Boolean:
		return (v.Int != 0) == (w.Int != 0)
	case ObjectLink:
		return v.Link == w.Link
	}
	return true
}

// check reports what makes v unfit for any format: a type that is not one
// of the data types, a string or core link that is not UTF-8, a core link
// that is not in the link format. Its errors wrap ErrMalformed.
func (v Value) check() error {
	switch v.Type {
	case TypeNone:
		return errorf(ErrMalformed, "a value of type none")
	case String:
		if !utf8.Valid(v.Bytes) {
			return errorf(ErrMalformed, "a String that is not UTF-8")
		}
	case CoreLink:
		if err := checkLinks(v.Bytes); err != nil {
			return err
		}
	default:
		if v.Type > CoreLink {
			return errorf(ErrMalformed, "unknown %v", v.Type)
		}
	}
	return nil
}

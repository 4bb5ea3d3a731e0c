package content

import (
	"encoding/base64"
	"math"
	"strconv"
	"unicode/utf8"
)

// oneAtBase returns the record of a single-value format: exactly one, at
// base.
func oneAtBase(f Format, base Path, recs []Record) (Record, error) {
	if len(recs) != 1 || recs[0].Path != base {
		return Record{}, errorf(ErrUnsupported, "%v carries one resource value, not %d records under %v", f, len(recs), base)
	}
	return recs[0], nil
}

func encodeText(base Path, recs []Record) ([]byte, error) {
	r, err := oneAtBase(Text, base, recs)
	if err != nil {
		return nil, err
	}
	if r.Value.Type == Float && (math.IsNaN(r.Value.Float) || math.IsInf(r.Value.Float, 0)) {
		return nil, errorf(ErrUnsupported, "%v cannot carry %v (at %v)", Text, r.Value.Float, r.Path)
	}
	return r.Value.appendText(nil), nil
}

func encodeOpaque(base Path, recs []Record) ([]byte, error) {
	r, err := oneAtBase(OpaqueFormat, base, recs)
	if err != nil {
		return nil, err
	}
	if r.Value.Type != Opaque {
		return nil, errorf(ErrUnsupported, "%v carries Opaque values only, not %v (at %v)", OpaqueFormat, r.Value.Type, r.Path)
	}
	return append([]byte{}, r.Value.Bytes...), nil
}

// singleType returns the type of base for the single-value formats.
func singleType(f Format, base Path, typeOf TypeOf) (Type, error) {
	if base.Len() < 3 {
		return TypeNone, errorf(ErrUnsupported, "%v carries one resource value, not %v", f, base)
	}
	t, ok := typeOf(base)
	if !ok {
		return TypeNone, errorf(ErrNotFound, "%v", base)
	}
	return t, nil
}

func decodeOpaque(base Path, payload []byte, typeOf TypeOf) ([]Record, error) {
	t, err := singleType(OpaqueFormat, base, typeOf)
	if err != nil {
		return nil, err
	}
	if t != Opaque {
		return nil, errorf(ErrUnsupported, "%v is %v, not Opaque", base, t)
	}
	return []Record{{base, OpaqueValue(append([]byte{}, payload...))}}, nil
}

func decodeText(base Path, payload []byte, typeOf TypeOf) ([]Record, error) {
	t, err := singleType(Text, base, typeOf)
	if err != nil {
		return nil, err
	}
	v, err := parseText(t, payload)
	if err != nil {
		return nil, errorf(ErrMalformed, "%v: %v", base, err)
	}
	return []Record{{base, v}}, nil
}

// textError is what parseText says; decodeText wraps it with the path.
type textError string

func (e textError) Error() string { return string(e) }

// parseText reads a text/plain value of type t.
func parseText(t Type, s []byte) (Value, error) {
	v := Value{Type: t}
	var err error
	switch t {
	case String:
		if !utf8.Valid(s) {
			return v, textError("a String that is not UTF-8")
		}
		v.Bytes = append([]byte{}, s...)
	case CoreLink:
		if err := checkLinks(s); err != nil {
			return v, err
		}
		v.Bytes = append([]byte{}, s...)
	case Integer, Time:
		v.Int, err = strconv.ParseInt(string(s), 10, 64)
	case UnsignedInteger:
		v.Uint, err = strconv.ParseUint(string(s), 10, 64)
	case Float:
		if !isDecimal(s) {
			return v, textError("not a decimal number: " + strconv.Quote(string(s)))
		}
		v.Float, err = strconv.ParseFloat(string(s), 64)
	case Boolean:
		switch string(s) {
		case "0":
		case "1":
			v.Int = 1
		default:
			return v, textError(`a Boolean is "0" or "1", not ` + strconv.Quote(string(s)))
		}
	case Opaque:
		v.Bytes, err = decodeBase64(s, base64.StdEncoding, base64.RawStdEncoding)
	case ObjectLink:
		var ok bool
		if v.Link, ok = parseObjLink(s); !ok {
			return v, textError(`an Objlnk is "O:I", not ` + strconv.Quote(string(s)))
		}
	default:
		return v, textError("no value of type " + t.String())
	}
	if err != nil {
		return v, textError("not " + t.String() + ": " + strconv.Quote(string(s)))
	}
	return v, nil
}

// isDecimal reports whether s is a decimal number: an optional sign,
// digits with an optional point (at least one digit), an optional
// exponent. It refuses what strconv.ParseFloat would also take: "NaN",
// "Inf", hexadecimal, underscores.
func isDecimal(s []byte) bool {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		digits++
	}
	if i < len(s) && s[i] == '.' {
		for i++; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			digits++
		}
	}
	if digits == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		start := i
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		}
		if i == start {
			return false
		}
	}
	return i == len(s)
}

// decodeBase64 decodes s with the first of encs that takes it.
func decodeBase64(s []byte, encs ...*base64.Encoding) ([]byte, error) {
	out := make([]byte, base64.RawStdEncoding.DecodedLen(len(s))) // the most any of them writes
	var err error
	for _, enc := range encs {
		var n int
		if n, err = decodeBase64Into(out, s, enc); err == nil {
			return out[:n:n], nil
		}
	}
	return nil, err
}

// decodeBase64Into decodes s into dst, refusing the line breaks that the
// encoding package would skip.
func decodeBase64Into(dst, s []byte, enc *base64.Encoding) (int, error) {
	for _, c := range s {
		if c == '\r' || c == '\n' {
			return 0, textError("a line break in base64")
		}
	}
	n, err := enc.Decode(dst, s)
	if err != nil {
		return 0, textError("bad base64: " + err.Error())
	}
	return n, nil
}

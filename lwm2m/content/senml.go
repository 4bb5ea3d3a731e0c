package content

import (
	"encoding/base64"
	"math"
	"strconv"
	"unicode/utf8"
)

// SenML (RFC 8428) as LwM2M 1.1 uses it (TS 1.1 Core 7.4.4, 7.4.5): the
// JSON and CBOR decoders read a record's fields into a senmlRecord, and
// senmlDecoder resolves it (base name, base value, type) into a Record.

// number is a SenML "v" before it meets its resource's type.
type number struct {
	kind numKind
	i    int64
	u    uint64 // numUint: over MaxInt64
	f    float64
}

type numKind uint8

const (
	numInt numKind = iota
	numUint
	numFloat
)

func (n number) float() float64 {
	switch n.kind {
	case numInt:
		return float64(n.i)
	case numUint:
		return float64(n.u)
	}
	return n.f
}

// add is n + m, exact when both are integers and the sum fits an int64
// or a uint64, a float otherwise.
func (n number) add(m number) number {
	if n.kind == numInt && m.kind == numInt {
		s := n.i + m.i
		if (s > n.i) == (m.i > 0) {
			return number{kind: numInt, i: s}
		}
	}
	if n.kind != numFloat && m.kind != numFloat && (n.kind == numUint || n.i >= 0) && (m.kind == numUint || m.i >= 0) {
		a, b := n.u, m.u
		if n.kind == numInt {
			a = uint64(n.i)
		}
		if m.kind == numInt {
			b = uint64(m.i)
		}
		if s := a + b; s >= a {
			return uintNumber(s)
		}
	}
	return number{kind: numFloat, f: n.float() + m.float()}
}

func uintNumber(u uint64) number {
	if u <= math.MaxInt64 {
		return number{kind: numInt, i: int64(u)}
	}
	return number{kind: numUint, u: u}
}

// value gives n the type t: an integer type takes only an integral value
// in its range (1.5 is no Integer, -1 no Unsigned Integer, 1e300 neither).
func (n number) value(t Type) (Value, error) {
	v := Value{Type: t}
	switch t {
	case Float:
		v.Float = n.float()
		return v, nil
	case Integer, Time:
		switch n.kind {
		case numInt:
			v.Int = n.i
			return v, nil
		case numFloat:
			if n.f == math.Trunc(n.f) && n.f >= -(1<<63) && n.f < 1<<63 {
				v.Int = int64(n.f)
				return v, nil
			}
		}
	case UnsignedInteger:
		switch n.kind {
		case numInt:
			if n.i >= 0 {
				v.Uint = uint64(n.i)
				return v, nil
			}
		case numUint:
			v.Uint = n.u
			return v, nil
		case numFloat:
			if n.f == math.Trunc(n.f) && n.f >= 0 && n.f < 1<<64 {
				v.Uint = uint64(n.f)
				return v, nil
			}
		}
	default:
		return v, textError(`"v" for a resource of type ` + t.String())
	}
	return v, textError("a number that is no " + t.String())
}

// The value fields of a SenML record.
type senmlKind uint8

const (
	senmlNone senmlKind = iota
	senmlNumber
	senmlString
	senmlBool
	senmlData
	senmlLink
)

var senmlKeys = [...]string{senmlNumber: `"v"`, senmlString: `"vs"`, senmlBool: `"vb"`, senmlData: `"vd"`, senmlLink: `"vlo"`}

// senmlRecord is one record as read, before resolution.
type senmlRecord struct {
	bn, name    []byte
	hasBN       bool
	bv          number
	hasBV       bool
	kind        senmlKind // the value field, senmlNone if none
	values      int       // how many value fields (more than one is an error)
	num         number    // senmlNumber
	str         []byte    // senmlString, senmlLink; senmlData: base64 (JSON) or the bytes (CBOR)
	dataIsBytes bool      // senmlData: str holds the bytes, not base64
	b           bool      // senmlBool
}

func (r *senmlRecord) setValue(k senmlKind) {
	r.kind = k
	r.values++
}

// senmlDecoder resolves records: base name and base value persist from
// record to record until another replaces them.
type senmlDecoder struct {
	base    Path
	typeOf  TypeOf
	paths   bool // names only, of any level, with no value: DecodePaths
	bn      []byte
	bv      number
	hasBV   bool
	nameBuf [32]byte
	arena   arena
	recs    []Record
}

func (d *senmlDecoder) add(r *senmlRecord) error {
	if r.hasBN {
		d.bn = r.bn
	}
	if r.hasBV {
		d.bv, d.hasBV = r.bv, true
	}
	name := append(append(d.nameBuf[:0], d.bn...), r.name...)
	p, err := parsePath(name)
	if err != nil {
		return errorf(ErrMalformed, "SenML record %d: name %q is no path", len(d.recs), name)
	}
	if d.paths {
		if r.values != 0 {
			return errorf(ErrMalformed, "%v: a value where only a path is asked for", p)
		}
		d.recs = append(d.recs, Record{Path: p})
		return nil
	}
	if p.Len() < 3 {
		return errorf(ErrMalformed, "SenML record %d: %v is no resource", len(d.recs), p)
	}
	if !d.base.Contains(p) {
		return errorf(ErrMalformed, "%v is outside %v", p, d.base)
	}
	switch r.values {
	case 0:
		return errorf(ErrMalformed, "%v: a SenML record without a value", p)
	case 1:
	default:
		return errorf(ErrMalformed, "%v: a SenML record with %d values", p, r.values)
	}
	t, ok := d.typeOf(p)
	if !ok {
		return errorf(ErrNotFound, "%v", p)
	}
	v, err := d.value(r, t)
	if err != nil {
		return errorf(ErrMalformed, "%v: %v", p, err)
	}
	d.recs = append(d.recs, Record{p, v})
	return nil
}

func (d *senmlDecoder) value(r *senmlRecord, t Type) (Value, error) {
	if r.kind == senmlNumber {
		n := r.num
		if d.hasBV {
			n = d.bv.add(n)
		}
		return n.value(t)
	}
	if r.kind != senmlKindOf(t) {
		return Value{}, textError(senmlKeys[r.kind] + " for a resource of type " + t.String())
	}
	v := Value{Type: t}
	switch t {
	case String:
		if !utf8.Valid(r.str) {
			return v, textError("a String that is not UTF-8")
		}
		v.Bytes = d.arena.copy(r.str)
	case CoreLink:
		if err := checkLinks(r.str); err != nil {
			return v, err
		}
		v.Bytes = d.arena.copy(r.str)
	case Boolean:
		v = BoolValue(r.b)
	case Opaque:
		if r.dataIsBytes {
			v.Bytes = d.arena.copy(r.str)
			break
		}
		b, err := d.arena.decodeBase64(r.str)
		if err != nil {
			return v, err
		}
		v.Bytes = b
	case ObjectLink:
		var ok bool
		if v.Link, ok = parseObjLink(r.str); !ok {
			return v, textError(`"vlo" is "O:I", not ` + string(r.str))
		}
	}
	return v, nil
}

// senmlKindOf is the value field that carries a non-numeric type.
func senmlKindOf(t Type) senmlKind {
	switch t {
	case String, CoreLink:
		return senmlString
	case Boolean:
		return senmlBool
	case Opaque:
		return senmlData
	case ObjectLink:
		return senmlLink
	}
	return senmlNone
}

// The base64 encodings "vd" may use: RFC 8428 says base64url without
// padding; Wakaama writes the standard alphabet, padded.
var vdEncodings = []*base64.Encoding{base64.RawURLEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.StdEncoding}

// decodeBase64 decodes s into the arena.
func (a *arena) decodeBase64(s []byte) ([]byte, error) {
	n := base64.RawStdEncoding.DecodedLen(len(s)) // the most any of them writes
	if cap(a.buf)-len(a.buf) < n {
		a.buf = make([]byte, 0, max(a.size, n))
	}
	start := len(a.buf)
	dst := a.buf[start : start+n]
	var err error
	for _, enc := range vdEncodings {
		var m int
		if m, err = decodeBase64Into(dst, s, enc); err == nil {
			a.buf = a.buf[:start+m]
			return a.buf[start : start+m : start+m], nil
		}
	}
	return nil, err
}

// senmlNamed reports whether the records of an encoded pack carry names
// ("n"): all do, but one record at base itself.
func senmlNamed(base Path, recs []Record) bool {
	return len(recs) != 1 || recs[0].Path != base
}

// appendBaseName appends the base name of an encoded pack: "/3/0/0" for
// one record at base, else "/3/0/" (the root: "/"), to which the names
// are relative.
func appendBaseName(b []byte, base Path, named bool) []byte {
	b = base.appendTo(b)
	if named {
		b = append(b, '/')
	}
	return b
}

// appendRelName appends the ids of p below base, "6/1".
func appendRelName(b []byte, base, p Path) []byte {
	for i := base.Len(); i < p.Len(); i++ {
		if i > base.Len() {
			b = append(b, '/')
		}
		b = strconv.AppendUint(b, uint64(p.ids[i]), 10)
	}
	return b
}

package content

import (
	"math/big"
	"strings"

	"github.com/fxamacker/cbor/v2"
)

// SenML CBOR (RFC 8428 section 6, TS 1.1 Core 7.4.5): the JSON labels
// become integers (bn -2, bt -3, n 0, v 2, vs 3, vb 4, vd 8), except
// LwM2M's "vlo", which stays text.

// cborOut is a record as Encode writes it; the order of the fields is
// the order of the labels, as in the TS's examples.
type cborOut struct {
	BaseName    *string `cbor:"-2,keyasint,omitempty"`
	Name        *string `cbor:"0,keyasint,omitempty"`
	Value       any     `cbor:"2,keyasint,omitempty"`
	StringValue *string `cbor:"3,keyasint,omitempty"`
	BoolValue   *bool   `cbor:"4,keyasint,omitempty"`
	DataValue   *[]byte `cbor:"8,keyasint,omitempty"`
	ObjLink     *string `cbor:"vlo,omitempty"`
}

// The SenML CBOR labels (RFC 8428 table 6).
const (
	cborBaseVersion = -1
	cborBaseName    = -2
	cborBaseTime    = -3
	cborBaseUnit    = -4
	cborBaseValue   = -5
	cborBaseSum     = -6
	cborName        = 0
	cborUnit        = 1
	cborValue       = 2
	cborStringValue = 3
	cborBoolValue   = 4
	cborSum         = 5
	cborTime        = 6
	cborUpdateTime  = 7
	cborDataValue   = 8
)

var (
	cborEnc cbor.EncMode
	cborDec cbor.DecMode
)

func init() {
	var err error
	// Labels in the struct's order (the TS's), floats as float64, integers
	// in their shortest form: the encoder's defaults.
	if cborEnc, err = (cbor.EncOptions{}).EncMode(); err != nil {
		panic(err)
	}
	cborDec, err = cbor.DecOptions{
		DupMapKey:       cbor.DupMapKeyEnforcedAPF, // "v" twice is no record
		MaxNestedLevels: 16,
	}.DecMode()
	if err != nil {
		panic(err)
	}
}

func encodeSenMLCBOR(base Path, recs []Record) ([]byte, error) {
	out := make([]cborOut, len(recs))
	named := senmlNamed(base, recs)
	if len(recs) > 0 {
		s := string(appendBaseName(make([]byte, 0, 32), base, named))
		out[0].BaseName = &s
	}
	var name []byte
	for i := range recs {
		r, o := &recs[i], &out[i]
		if named {
			name = appendRelName(name[:0], base, r.Path)
			s := string(name)
			o.Name = &s
		}
		switch v := &r.Value; v.Type {
		case Integer, Time:
			o.Value = v.Int
		case UnsignedInteger:
			o.Value = v.Uint
		case Float:
			o.Value = v.Float
		case Boolean:
			b := v.Int != 0
			o.BoolValue = &b
		case Opaque:
			b := v.Bytes
			if b == nil {
				b = []byte{}
			}
			o.DataValue = &b
		case ObjectLink:
			s := v.Link.String()
			o.ObjLink = &s
		default: // String, CoreLink
			s := string(v.Bytes)
			o.StringValue = &s
		}
	}
	b, err := cborEnc.Marshal(out)
	if err != nil {
		return nil, errorf(ErrMalformed, "SenML CBOR: %v", err)
	}
	return b, nil
}

func decodeSenMLCBOR(base Path, payload []byte, typeOf TypeOf) ([]Record, error) {
	return decodeSenMLCBORWith(senmlDecoder{base: base, typeOf: typeOf, arena: arena{size: len(payload)}}, payload)
}

func decodeSenMLCBORWith(d senmlDecoder, payload []byte) ([]Record, error) {
	if len(payload) == 0 {
		return []Record{}, nil // an empty payload: no record (Leshan does so too)
	}
	// The array's head by hand, then one record at a time, so that what
	// is allocated is no more than the records that were read.
	n, indefinite, rest, err := cborArrayHead(payload)
	if err != nil {
		return nil, err
	}
	// A record is at least {2: 0}: three bytes.
	d.recs = make([]Record, 0, min(n, len(rest)/3+1, 64))
	fields := make(map[any]cbor.RawMessage, 4)
	var r senmlRecord
	for i := 0; indefinite || i < n; i++ {
		if indefinite && len(rest) > 0 && rest[0] == 0xFF {
			rest = rest[1:]
			break
		}
		clear(fields)
		if rest, err = cborDec.UnmarshalFirst(rest, &fields); err != nil {
			return nil, errorf(ErrMalformed, "SenML CBOR record %d: %v", i, err)
		}
		if err := readCBORRecord(fields, &r); err != nil {
			return nil, errorf(ErrMalformed, "SenML CBOR record %d: %v", i, err)
		}
		if err := d.add(&r); err != nil {
			return nil, err
		}
	}
	if len(rest) != 0 {
		return nil, errorf(ErrMalformed, "SenML CBOR: %d bytes after the array", len(rest))
	}
	return d.recs, nil
}

// cborArrayHead reads the head of an array: its length, or that it is of
// indefinite length (ended by 0xFF).
func cborArrayHead(b []byte) (n int, indefinite bool, rest []byte, err error) {
	if b[0]>>5 != 4 {
		return 0, false, nil, errorf(ErrMalformed, "SenML CBOR is an array, not major type %d", b[0]>>5)
	}
	info := b[0] & 0x1F
	b = b[1:]
	var size int
	switch {
	case info < 24:
		return int(info), false, b, nil
	case info == 31:
		return 0, true, b, nil
	case info > 27:
		return 0, false, nil, errorf(ErrMalformed, "SenML CBOR: bad array head")
	default:
		size = 1 << (info - 24)
	}
	if len(b) < size {
		return 0, false, nil, errorf(ErrMalformed, "SenML CBOR: array head truncated")
	}
	var u uint64
	for _, c := range b[:size] {
		u = u<<8 | uint64(c)
	}
	if u > uint64(len(b)-size) { // every record takes a byte at least
		return 0, false, nil, errorf(ErrMalformed, "SenML CBOR: %d records in %d bytes", u, len(b)-size)
	}
	return int(u), false, b[size:], nil
}

// readCBORRecord reads the fields of a record into r.
func readCBORRecord(fields map[any]cbor.RawMessage, r *senmlRecord) error {
	*r = senmlRecord{}
	for key, raw := range fields {
		var label int64
		switch k := key.(type) {
		case uint64:
			if k > 1<<16 {
				continue // no SenML label: ignored
			}
			label = int64(k)
		case int64:
			label = k
		case string:
			if k == "vlo" {
				s, err := cborText(raw, "vlo")
				r.str = s
				r.setValue(senmlLink)
				if err != nil {
					return err
				}
				continue
			}
			if strings.HasSuffix(k, "_") {
				return textError("must-understand label " + k)
			}
			continue
		default:
			continue
		}
		var err error
		switch label {
		case cborBaseName:
			r.bn, err = cborText(raw, "bn")
			r.hasBN = true
		case cborName:
			r.name, err = cborText(raw, "n")
		case cborBaseValue:
			r.bv, err = cborNumber(raw, "bv")
			r.hasBV = true
		case cborValue:
			r.num, err = cborNumber(raw, "v")
			r.setValue(senmlNumber)
		case cborStringValue:
			r.str, err = cborText(raw, "vs")
			r.setValue(senmlString)
		case cborBoolValue:
			r.setValue(senmlBool)
			if err = cborDec.Unmarshal(raw, &r.b); err != nil || raw[0]>>5 != 7 {
				err = textError(`"vb" is no Boolean`)
			}
		case cborDataValue:
			r.setValue(senmlData)
			r.dataIsBytes = true
			if raw[0]>>5 != 2 {
				err = textError(`"vd" is no byte string`)
			} else {
				err = cborDec.Unmarshal(raw, &r.str)
			}
		case cborBaseVersion:
			var n number
			if n, err = cborNumber(raw, "bver"); err == nil && (n.kind != numInt || n.i > 10) {
				err = textError("SenML version over 10")
			}
		case cborBaseTime, cborTime, cborUpdateTime, cborBaseSum, cborSum:
			// Ignored, whatever their form: Leshan writes times as
			// decimal fractions (tag 4).
		case cborBaseUnit, cborUnit:
			_, err = cborText(raw, "a unit")
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func cborText(raw cbor.RawMessage, what string) ([]byte, error) {
	var s string
	if raw[0]>>5 != 3 || cborDec.Unmarshal(raw, &s) != nil {
		return nil, textError(what + " is no text string")
	}
	return []byte(s), nil
}

// cborNumber reads an integer or a float; a bignum is out of range,
// other tags are no number.
func cborNumber(raw cbor.RawMessage, what string) (number, error) {
	var x any
	if err := cborDec.Unmarshal(raw, &x); err != nil {
		return number{}, textError(what + ": " + err.Error())
	}
	switch x := x.(type) {
	case uint64:
		return uintNumber(x), nil
	case int64:
		return number{kind: numInt, i: x}, nil
	case float64:
		return number{kind: numFloat, f: x}, nil
	case big.Int:
		if x.IsInt64() {
			return number{kind: numInt, i: x.Int64()}, nil
		}
		if x.IsUint64() {
			return uintNumber(x.Uint64()), nil
		}
		return number{}, textError(what + " out of range")
	}
	return number{}, textError(what + " is no number")
}

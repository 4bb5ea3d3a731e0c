package content

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"strconv"
	"unicode/utf8"
)

// SenML JSON (RFC 8428 section 5, TS 1.1 Core 7.4.4). The decoder is a
// small scanner for what SenML needs rather than encoding/json, whose
// field matching is case-insensitive ("V" would be "v") and which would
// allocate per record; it accepts only valid JSON (FuzzSenMLJSON checks
// it against json.Valid).

func encodeSenMLJSON(base Path, recs []Record) ([]byte, error) {
	size := 2
	for i := range recs {
		if v := &recs[i].Value; v.Type == Float && (math.IsNaN(v.Float) || math.IsInf(v.Float, 0)) {
			return nil, errorf(ErrUnsupported, "%v cannot carry %v (at %v)", SenMLJSON, v.Float, recs[i].Path)
		}
		size += 48 + len(recs[i].Value.Bytes)*4/3
	}
	b := make([]byte, 0, size)
	named := senmlNamed(base, recs)
	b = append(b, '[')
	for i := range recs {
		r := &recs[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		if i == 0 {
			b = append(b, `"bn":"`...)
			b = appendBaseName(b, base, named)
			b = append(b, `",`...)
		}
		if named {
			b = append(b, `"n":"`...)
			b = appendRelName(b, base, r.Path)
			b = append(b, `",`...)
		}
		b = appendJSONValue(b, &r.Value)
		b = append(b, '}')
	}
	return append(b, ']'), nil
}

// appendJSONValue appends the value field, `"v":1`.
func appendJSONValue(b []byte, v *Value) []byte {
	switch v.Type {
	case Integer, Time:
		return strconv.AppendInt(append(b, `"v":`...), v.Int, 10)
	case UnsignedInteger:
		return strconv.AppendUint(append(b, `"v":`...), v.Uint, 10)
	case Float:
		return appendJSONFloat(append(b, `"v":`...), v.Float)
	case Boolean:
		if v.Int != 0 {
			return append(b, `"vb":true`...)
		}
		return append(b, `"vb":false`...)
	case Opaque:
		b = append(b, `"vd":"`...)
		return append(base64.RawURLEncoding.AppendEncode(b, v.Bytes), '"')
	case ObjectLink:
		b = append(b, `"vlo":"`...)
		return append(v.Link.appendTo(b), '"')
	}
	return appendJSONString(append(b, `"vs":`...), v.Bytes) // String, CoreLink
}

// appendJSONFloat writes f as encoding/json does: the shortest decimal
// that reads back exactly, with an exponent only for very large or small
// magnitudes.
func appendJSONFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	return strconv.AppendFloat(b, f, format, -1, 64)
}

// appendJSONString quotes s, which is UTF-8, escaping what JSON requires.
func appendJSONString(b, s []byte) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// jsonScanner reads JSON text from b.
type jsonScanner struct {
	b []byte
	i int
}

// maxJSONDepth bounds the nesting of the values of unknown labels, which
// are skipped.
const maxJSONDepth = 16

func (s *jsonScanner) errorf(what string) error {
	return errorf(ErrMalformed, "SenML JSON at byte %d: %s", s.i, what)
}

func (s *jsonScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// next skips white space and returns the next byte, 0 at the end.
func (s *jsonScanner) next() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *jsonScanner) expect(c byte) error {
	if s.next() != c {
		return s.errorf("expected " + strconv.QuoteRune(rune(c)))
	}
	s.i++
	return nil
}

// str reads a string and returns its content, unescaped. Content without
// escapes is a slice of the payload.
func (s *jsonScanner) str() ([]byte, error) {
	if err := s.expect('"'); err != nil {
		return nil, err
	}
	start := s.i
	escaped := false
	for {
		if s.i >= len(s.b) {
			return nil, s.errorf("unterminated string")
		}
		c := s.b[s.i]
		switch {
		case c == '"':
			raw := s.b[start:s.i]
			s.i++
			if !utf8.Valid(raw) {
				return nil, s.errorf("a string that is not UTF-8")
			}
			if !escaped {
				return raw, nil
			}
			var out string
			if err := json.Unmarshal(s.b[start-1:s.i], &out); err != nil {
				return nil, s.errorf("bad string: " + err.Error())
			}
			return []byte(out), nil
		case c == '\\':
			escaped = true
			s.i++
			if s.i >= len(s.b) {
				return nil, s.errorf("unterminated string")
			}
			switch s.b[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				if len(s.b)-s.i < 5 || !isHex4(s.b[s.i+1:s.i+5]) {
					return nil, s.errorf(`bad \u escape`)
				}
				s.i += 5
			default:
				return nil, s.errorf("bad escape")
			}
		case c < 0x20:
			return nil, s.errorf("a control character in a string")
		default:
			s.i++
		}
	}
}

func isHex4(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// number reads a number (RFC 8259 grammar).
func (s *jsonScanner) number() (number, error) {
	s.ws()
	start := s.i
	digits := func() int {
		n := 0
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
			n++
		}
		return n
	}
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	intStart := s.i
	if n := digits(); n == 0 || n > 1 && s.b[intStart] == '0' {
		return number{}, s.errorf("bad number")
	}
	integer := true
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		integer = false
		if digits() == 0 {
			return number{}, s.errorf("bad number")
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		integer = false
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if digits() == 0 {
			return number{}, s.errorf("bad number")
		}
	}
	lit := s.b[start:s.i]
	if integer {
		if lit[0] == '-' {
			if i, err := strconv.ParseInt(string(lit), 10, 64); err == nil {
				return number{kind: numInt, i: i}, nil
			}
		} else if u, err := strconv.ParseUint(string(lit), 10, 64); err == nil {
			return uintNumber(u), nil
		}
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil {
		return number{}, s.errorf("number out of range")
	}
	return number{kind: numFloat, f: f}, nil
}

// literal reads true, false or null.
func (s *jsonScanner) literal(word string) bool {
	if len(s.b)-s.i >= len(word) && string(s.b[s.i:s.i+len(word)]) == word {
		s.i += len(word)
		return true
	}
	return false
}

func (s *jsonScanner) boolean() (bool, error) {
	switch s.next() {
	case 't':
		if s.literal("true") {
			return true, nil
		}
	case 'f':
		if s.literal("false") {
			return false, nil
		}
	}
	return false, s.errorf("expected true or false")
}

// skip reads any value and forgets it.
func (s *jsonScanner) skip(depth int) error {
	if depth > maxJSONDepth {
		return s.errorf("nested too deep")
	}
	switch c := s.next(); {
	case c == '"':
		_, err := s.str()
		return err
	case c == '-' || c >= '0' && c <= '9':
		_, err := s.number()
		return err
	case c == 't' || c == 'f' || c == 'n':
		if s.literal("true") || s.literal("false") || s.literal("null") {
			return nil
		}
	case c == '[':
		s.i++
		if s.next() == ']' {
			s.i++
			return nil
		}
		for {
			if err := s.skip(depth + 1); err != nil {
				return err
			}
			if s.next() == ']' {
				s.i++
				return nil
			}
			if err := s.expect(','); err != nil {
				return err
			}
		}
	case c == '{':
		s.i++
		if s.next() == '}' {
			s.i++
			return nil
		}
		for {
			if _, err := s.str(); err != nil {
				return err
			}
			if err := s.expect(':'); err != nil {
				return err
			}
			if err := s.skip(depth + 1); err != nil {
				return err
			}
			if s.next() == '}' {
				s.i++
				return nil
			}
			if err := s.expect(','); err != nil {
				return err
			}
		}
	}
	return s.errorf("expected a value")
}

// The labels the decoder knows, as bits of a set (to refuse one twice).
const (
	labelBN = 1 << iota
	labelN
	labelBV
	labelV
	labelVS
	labelVB
	labelVD
	labelVLO
	labelBVer
	labelIgnoredNumber // bt, t, ut, bs, s
	labelIgnoredString // bu, u
)

func jsonLabel(key []byte) int {
	switch string(key) {
	case "bn":
		return labelBN
	case "n":
		return labelN
	case "bv":
		return labelBV
	case "v":
		return labelV
	case "vs":
		return labelVS
	case "vb":
		return labelVB
	case "vd":
		return labelVD
	case "vlo":
		return labelVLO
	case "bver":
		return labelBVer
	case "bt", "t", "ut", "bs", "s":
		return labelIgnoredNumber
	case "bu", "u":
		return labelIgnoredString
	}
	return 0
}

// record reads one record object.
func (s *jsonScanner) record(r *senmlRecord) error {
	*r = senmlRecord{}
	if err := s.expect('{'); err != nil {
		return err
	}
	if s.next() == '}' {
		s.i++
		return nil
	}
	seen := 0
	for {
		key, err := s.str()
		if err != nil {
			return err
		}
		if err := s.expect(':'); err != nil {
			return err
		}
		label := jsonLabel(key)
		if label&^(labelIgnoredNumber|labelIgnoredString) != 0 && seen&label != 0 {
			return s.errorf("label " + strconv.Quote(string(key)) + " twice")
		}
		seen |= label
		switch label {
		case labelBN:
			r.bn, err = s.str()
			r.hasBN = true
		case labelN:
			r.name, err = s.str()
		case labelBV:
			r.bv, err = s.number()
			r.hasBV = true
		case labelV:
			r.num, err = s.number()
			r.setValue(senmlNumber)
		case labelVS:
			r.str, err = s.str()
			r.setValue(senmlString)
		case labelVB:
			r.b, err = s.boolean()
			r.setValue(senmlBool)
		case labelVD:
			r.str, err = s.str()
			r.setValue(senmlData)
		case labelVLO:
			r.str, err = s.str()
			r.setValue(senmlLink)
		case labelBVer:
			var n number
			if n, err = s.number(); err == nil && (n.kind == numFloat || n.kind == numUint || n.i > 10) {
				err = s.errorf("SenML version over 10")
			}
		case labelIgnoredNumber:
			_, err = s.number()
		case labelIgnoredString:
			_, err = s.str()
		default:
			if len(key) > 0 && key[len(key)-1] == '_' {
				return s.errorf("must-understand label " + strconv.Quote(string(key)))
			}
			err = s.skip(0)
		}
		if err != nil {
			return err
		}
		if s.next() == '}' {
			s.i++
			return nil
		}
		if err := s.expect(','); err != nil {
			return err
		}
	}
}

func decodeSenMLJSON(base Path, payload []byte, typeOf TypeOf) ([]Record, error) {
	return decodeSenMLJSONWith(senmlDecoder{base: base, typeOf: typeOf, arena: arena{size: len(payload)}}, payload)
}

func decodeSenMLJSONWith(d senmlDecoder, payload []byte) ([]Record, error) {
	s := jsonScanner{b: payload}
	if s.next() == 0 && s.i == len(payload) {
		return []Record{}, nil // an empty payload: no record (Leshan does so too)
	}
	if err := s.expect('['); err != nil {
		return nil, err
	}
	// Every record opens a brace and takes 8 bytes at least ({"v":0},).
	d.recs = make([]Record, 0, min(bytes.Count(payload, []byte{'{'}), len(payload)/8+1))
	if s.next() == ']' {
		s.i++
	} else {
		var r senmlRecord
		for {
			if err := s.record(&r); err != nil {
				return nil, err
			}
			if err := d.add(&r); err != nil {
				return nil, err
			}
			if s.next() == ']' {
				s.i++
				break
			}
			if err := s.expect(','); err != nil {
				return nil, err
			}
		}
	}
	if s.next() != 0 || s.i != len(payload) {
		return nil, s.errorf("data after the SenML array")
	}
	return d.recs, nil
}

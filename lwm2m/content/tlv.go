package content

import (
	"encoding/binary"
	"math"
	"unicode/utf8"
)

// TLV (TS 1.1 Core 7.4.3). The type byte: bits 7-6 the kind of
// identifier, bit 5 a 16-bit identifier, bits 4-3 the size of the length
// field (0 to 3 bytes), bits 2-0 the length itself when that size is 0.

// The kinds of TLV, bits 7-6 of the type byte.
const (
	tlvInstance    = 0 // object instance: holds resource TLVs
	tlvResInstance = 1 // resource instance: a value
	tlvMultiple    = 2 // multiple resource: holds resource-instance TLVs
	tlvResource    = 3 // resource with a value
)

var tlvKindNames = [4]string{"object-instance", "resource-instance", "multiple-resource", "resource"}

// tlvLevel is the path length a TLV of each kind names.
var tlvLevel = [4]int{2, 4, 3, 3}

const maxTLVLength = 1<<24 - 1

// tlvHeaderSize is the size of the type byte, identifier and length.
func tlvHeaderSize(id uint16, n int) int {
	size := 2
	if id > 0xFF {
		size++
	}
	switch {
	case n > 0xFFFF:
		size += 3
	case n > 0xFF:
		size += 2
	case n > 7:
		size++
	}
	return size
}

func appendTLVHeader(b []byte, kind byte, id uint16, n int) []byte {
	t := kind << 6
	if id > 0xFF {
		t |= 1 << 5
	}
	switch {
	case n > 0xFFFF:
		t |= 3 << 3
	case n > 0xFF:
		t |= 2 << 3
	case n > 7:
		t |= 1 << 3
	default:
		t |= byte(n)
	}
	b = append(b, t)
	if id > 0xFF {
		b = binary.BigEndian.AppendUint16(b, id)
	} else {
		b = append(b, byte(id))
	}
	switch {
	case n > 0xFFFF:
		b = append(b, byte(n>>16), byte(n>>8), byte(n))
	case n > 0xFF:
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	case n > 7:
		b = append(b, byte(n))
	}
	return b
}

// intSize is the fewest of 1, 2, 4 or 8 bytes that hold i in two's
// complement.
func intSize(i int64) int {
	switch {
	case i == int64(int8(i)):
		return 1
	case i == int64(int16(i)):
		return 2
	case i == int64(int32(i)):
		return 4
	}
	return 8
}

func uintSize(u uint64) int {
	switch {
	case u <= math.MaxUint8:
		return 1
	case u <= math.MaxUint16:
		return 2
	case u <= math.MaxUint32:
		return 4
	}
	return 8
}

// floatIsSingle reports whether f is exactly a float32 (NaN is not: its
// payload would not survive).
func floatIsSingle(f float64) bool { return float64(float32(f)) == f }

func tlvValueSize(v *Value) int {
	switch v.Type {
	case Integer, Time:
		return intSize(v.Int)
	case UnsignedInteger:
		return uintSize(v.Uint)
	case Float:
		if floatIsSingle(v.Float) {
			return 4
		}
		return 8
	case Boolean:
		return 1
	case ObjectLink:
		return 4
	}
	return len(v.Bytes) // String, Opaque, CoreLink
}

func appendTLVValue(b []byte, v *Value) []byte {
	switch v.Type {
	case Integer, Time:
		switch intSize(v.Int) {
		case 1:
			return append(b, byte(v.Int))
		case 2:
			return binary.BigEndian.AppendUint16(b, uint16(v.Int))
		case 4:
			return binary.BigEndian.AppendUint32(b, uint32(v.Int))
		}
		return binary.BigEndian.AppendUint64(b, uint64(v.Int))
	case UnsignedInteger:
		switch uintSize(v.Uint) {
		case 1:
			return append(b, byte(v.Uint))
		case 2:
			return binary.BigEndian.AppendUint16(b, uint16(v.Uint))
		case 4:
			return binary.BigEndian.AppendUint32(b, uint32(v.Uint))
		}
		return binary.BigEndian.AppendUint64(b, v.Uint)
	case Float:
		if floatIsSingle(v.Float) {
			return binary.BigEndian.AppendUint32(b, math.Float32bits(float32(v.Float)))
		}
		return binary.BigEndian.AppendUint64(b, math.Float64bits(v.Float))
	case Boolean:
		if v.Int != 0 {
			return append(b, 1)
		}
		return append(b, 0)
	case ObjectLink:
		b = binary.BigEndian.AppendUint16(b, v.Link.Object)
		return binary.BigEndian.AppendUint16(b, v.Link.Instance)
	}
	return append(b, v.Bytes...)
}

// tlvEncoder writes sorted, checked records; its methods come in pairs,
// the size of a TLV and the TLV itself, so that the output is allocated
// once.
type tlvEncoder struct{ recs []Record }

// span returns the end of the run of records from i whose paths share
// the id at level.
func (e *tlvEncoder) span(i, level int) int {
	id := e.recs[i].Path.ids[level]
	j := i + 1
	for j < len(e.recs) && e.recs[j].Path.ids[level] == id {
		j++
	}
	return j
}

// resourceSize is the size of the body of the resource TLV for
// recs[i:j] (one resource): a value, or resource-instance TLVs.
func (e *tlvEncoder) resourceBody(i, j int) (int, error) {
	if e.recs[i].Path.Len() == 3 {
		return e.checkLen(tlvValueSize(&e.recs[i].Value), e.recs[i].Path)
	}
	n := 0
	for k := i; k < j; k++ {
		v := tlvValueSize(&e.recs[k].Value)
		if _, err := e.checkLen(v, e.recs[k].Path); err != nil {
			return 0, err
		}
		n += tlvHeaderSize(e.recs[k].Path.ids[3], v) + v
	}
	return e.checkLen(n, e.recs[i].Path.Parent())
}

func (e *tlvEncoder) checkLen(n int, p Path) (int, error) {
	if n > maxTLVLength {
		return 0, errorf(ErrUnsupported, "%v: %d bytes do not fit a TLV", p, n)
	}
	return n, nil
}

func (e *tlvEncoder) appendResource(b []byte, i, j int) []byte {
	r := &e.recs[i]
	if r.Path.Len() == 3 {
		b = appendTLVHeader(b, tlvResource, r.Path.ids[2], tlvValueSize(&r.Value))
		return appendTLVValue(b, &r.Value)
	}
	n, _ := e.resourceBody(i, j)
	b = appendTLVHeader(b, tlvMultiple, r.Path.ids[2], n)
	for k := i; k < j; k++ {
		b = e.appendResInstance(b, k)
	}
	return b
}

func (e *tlvEncoder) appendResInstance(b []byte, k int) []byte {
	r := &e.recs[k]
	b = appendTLVHeader(b, tlvResInstance, r.Path.ids[3], tlvValueSize(&r.Value))
	return appendTLVValue(b, &r.Value)
}

// resourcesSize is the size of the resource TLVs for recs[i:j] (one
// instance).
func (e *tlvEncoder) resourcesSize(i, j int) (int, error) {
	n := 0
	for i < j {
		k := e.span(i, 2)
		body, err := e.resourceBody(i, k)
		if err != nil {
			return 0, err
		}
		n += tlvHeaderSize(e.recs[i].Path.ids[2], body) + body
		i = k
	}
	return n, nil
}

func (e *tlvEncoder) appendResources(b []byte, i, j int) []byte {
	for i < j {
		k := e.span(i, 2)
		b = e.appendResource(b, i, k)
		i = k
	}
	return b
}

func encodeTLV(base Path, recs []Record) ([]byte, error) {
	e := tlvEncoder{recs}
	if len(recs) == 0 {
		if base.Len() == 0 {
			return nil, errorf(ErrUnsupported, "TLV cannot hold the root")
		}
		return []byte{}, nil
	}
	switch base.Len() {
	case 0:
		return nil, errorf(ErrUnsupported, "TLV cannot hold the root")
	case 1: // object instances
		size := 0
		for i := 0; i < len(recs); {
			j := e.span(i, 1)
			n, err := e.resourcesSize(i, j)
			if err != nil {
				return nil, err
			}
			if _, err := e.checkLen(n, recs[i].Path.Parent()); err != nil {
				return nil, err
			}
			size += tlvHeaderSize(recs[i].Path.ids[1], n) + n
			i = j
		}
		b := make([]byte, 0, size)
		for i := 0; i < len(recs); {
			j := e.span(i, 1)
			n, _ := e.resourcesSize(i, j)
			b = appendTLVHeader(b, tlvInstance, recs[i].Path.ids[1], n)
			b = e.appendResources(b, i, j)
			i = j
		}
		return b, nil
	case 2, 3: // resources, or the one resource
		size, err := e.resourcesSize(0, len(recs))
		if err != nil {
			return nil, err
		}
		return e.appendResources(make([]byte, 0, size), 0, len(recs)), nil
	}
	// base.Len() == 4: the one resource instance (sorted guarantees it is
	// alone, at base).
	v := tlvValueSize(&recs[0].Value)
	if _, err := e.checkLen(v, recs[0].Path); err != nil {
		return nil, err
	}
	return e.appendResInstance(make([]byte, 0, tlvHeaderSize(recs[0].Path.ids[3], v)+v), 0), nil
}

// tlvElem is one TLV read from a payload.
type tlvElem struct {
	kind byte
	id   uint16
	body []byte
}

// readTLV reads the TLV at b[off:]; it returns the offset after it.
func readTLV(b []byte, off int) (tlvElem, int, error) {
	if len(b)-off < 2 {
		return tlvElem{}, 0, errorf(ErrMalformed, "TLV truncated at byte %d", off)
	}
	t := b[off]
	e := tlvElem{kind: t >> 6}
	i := off + 1
	if t&(1<<5) != 0 {
		if len(b)-i < 2 {
			return tlvElem{}, 0, errorf(ErrMalformed, "TLV identifier truncated at byte %d", off)
		}
		e.id = binary.BigEndian.Uint16(b[i:])
		i += 2
	} else {
		e.id = uint16(b[i])
		i++
	}
	n := 0
	lenSize := int(t>>3) & 3
	if len(b)-i < lenSize {
		return tlvElem{}, 0, errorf(ErrMalformed, "TLV length truncated at byte %d", off)
	}
	if lenSize == 0 {
		n = int(t & 7)
	}
	for range lenSize {
		n = n<<8 | int(b[i])
		i++
	}
	if len(b)-i < n {
		return tlvElem{}, 0, errorf(ErrMalformed, "TLV at byte %d: length %d, %d bytes left", off, n, len(b)-i)
	}
	if e.id == NoID {
		return tlvElem{}, 0, errorf(ErrMalformed, "TLV at byte %d: id 65535 is reserved", off)
	}
	e.body = b[i : i+n]
	return e, i + n, nil
}

// tlvDecoder walks a payload twice: once to check its structure and count
// its values, once to decode them into a slice of the right size.
type tlvDecoder struct {
	base    Path
	typeOf  TypeOf
	payload []byte
	count   int      // values seen (first walk)
	bytes   int      // their total size (first walk)
	recs    []Record // nil in the first walk
	arena   arena
}

// The kinds a sequence may hold, as bit sets.
const (
	anyTLV       = 0b1111
	inInstance   = 1<<tlvResource | 1<<tlvMultiple
	inMultiple   = 1 << tlvResInstance
	tlvLeafKinds = 1<<tlvResource | 1<<tlvResInstance
)

// seq walks the TLVs of b, which sit under parent (top: under base, at
// whatever level their kind says) and may be of the kinds in allowed.
// The nesting depth is bounded by the kinds: an instance holds resources,
// a multiple resource holds resource instances, and nothing else nests.
func (d *tlvDecoder) seq(b []byte, parent Path, top bool, allowed int) error {
	for off := 0; off < len(b); {
		e, next, err := readTLV(b, off)
		if err != nil {
			return err
		}
		if allowed&(1<<e.kind) == 0 {
			return errorf(ErrMalformed, "a %s TLV inside %v", tlvKindNames[e.kind], parent)
		}
		p := parent
		if top {
			level := tlvLevel[e.kind]
			if d.base.Len() < level-1 {
				return errorf(ErrMalformed, "a %s TLV written to %v, which does not name its parent", tlvKindNames[e.kind], d.base)
			}
			p = d.base.prefix(level - 1)
		}
		p = p.Append(e.id)
		if !onBranch(d.base, p) || (1<<e.kind&tlvLeafKinds != 0 && !d.base.Contains(p)) {
			return errorf(ErrMalformed, "%v is outside %v", p, d.base)
		}
		switch e.kind {
		case tlvInstance:
			err = d.seq(e.body, p, false, inInstance)
		case tlvMultiple:
			err = d.seq(e.body, p, false, inMultiple)
		default:
			err = d.leaf(p, e.body)
		}
		if err != nil {
			return err
		}
		off = next
	}
	return nil
}

func (d *tlvDecoder) leaf(p Path, body []byte) error {
	if d.recs == nil {
		d.count++
		d.bytes += len(body)
		return nil
	}
	t, ok := d.typeOf(p)
	if !ok {
		return errorf(ErrNotFound, "%v", p)
	}
	v, err := d.value(t, body)
	if err != nil {
		return errorf(ErrMalformed, "%v: %v", p, err)
	}
	d.recs = append(d.recs, Record{p, v})
	return nil
}

func (d *tlvDecoder) value(t Type, b []byte) (Value, error) {
	v := Value{Type: t}
	switch t {
	case String:
		if !utf8.Valid(b) {
			return v, textError("a String that is not UTF-8")
		}
		v.Bytes = d.arena.copy(b)
	case CoreLink:
		if err := checkLinks(b); err != nil {
			return v, err
		}
		v.Bytes = d.arena.copy(b)
	case Opaque:
		v.Bytes = d.arena.copy(b)
	case Integer, Time:
		switch len(b) {
		case 1:
			v.Int = int64(int8(b[0]))
		case 2:
			v.Int = int64(int16(binary.BigEndian.Uint16(b)))
		case 4:
			v.Int = int64(int32(binary.BigEndian.Uint32(b)))
		case 8:
			v.Int = int64(binary.BigEndian.Uint64(b))
		default:
			return v, textError("an Integer of " + itoa(len(b)) + " bytes, not 1, 2, 4 or 8")
		}
	case UnsignedInteger:
		switch len(b) {
		case 1:
			v.Uint = uint64(b[0])
		case 2:
			v.Uint = uint64(binary.BigEndian.Uint16(b))
		case 4:
			v.Uint = uint64(binary.BigEndian.Uint32(b))
		case 8:
			v.Uint = binary.BigEndian.Uint64(b)
		default:
			return v, textError("an Unsigned Integer of " + itoa(len(b)) + " bytes, not 1, 2, 4 or 8")
		}
	case Float:
		switch len(b) {
		case 4:
			v.Float = float64(math.Float32frombits(binary.BigEndian.Uint32(b)))
		case 8:
			v.Float = math.Float64frombits(binary.BigEndian.Uint64(b))
		default:
			return v, textError("a Float of " + itoa(len(b)) + " bytes, not 4 or 8")
		}
	case Boolean:
		if len(b) != 1 || b[0] > 1 {
			return v, textError("a Boolean is one byte, 0 or 1")
		}
		v.Int = int64(b[0])
	case ObjectLink:
		if len(b) != 4 {
			return v, textError("an Objlnk of " + itoa(len(b)) + " bytes, not 4")
		}
		v.Link = ObjLink{binary.BigEndian.Uint16(b), binary.BigEndian.Uint16(b[2:])}
	default:
		return v, textError("no value of type " + t.String())
	}
	return v, nil
}

func decodeTLV(base Path, payload []byte, typeOf TypeOf) ([]Record, error) {
	if base.Len() == 0 {
		return nil, errorf(ErrUnsupported, "TLV cannot hold the root")
	}
	d := tlvDecoder{base: base, typeOf: typeOf, payload: payload}
	if err := d.seq(payload, base, true, anyTLV); err != nil {
		return nil, err
	}
	if d.count == 0 {
		return []Record{}, nil
	}
	d.recs = make([]Record, 0, d.count)
	d.arena.size = d.bytes
	if err := d.seq(payload, base, true, anyTLV); err != nil {
		return nil, err
	}
	return d.recs, nil
}

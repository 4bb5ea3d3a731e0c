package content

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// The errors every failure wraps; the message of the wrapping error says
// what and where.
var (
	// ErrBadPath: a path that is not one (ParsePath), or a record whose
	// path is not a resource or resource instance under the base, or is
	// there twice (Encode).
	ErrBadPath = errors.New("lwm2m: bad path")
	// ErrMalformed: a payload that is not well-formed in its format, that
	// names a path outside the base, or holds a value its resource's type
	// cannot hold; for Encode, a value that is invalid for its own type.
	ErrMalformed = errors.New("lwm2m: malformed payload")
	// ErrUnsupported: the format cannot carry what is asked (text/plain
	// or opaque for anything but one resource value, TLV at the root,
	// NaN in JSON, an unknown format). A server answers 4.06 (Encode) or
	// 4.15 (Decode).
	ErrUnsupported = errors.New("lwm2m: unsupported content format for this request")
	// ErrNotFound: a payload names a resource the TypeOf does not know.
	ErrNotFound = errors.New("lwm2m: no such resource")
)

func errorf(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{sentinel}, args...)...)
}

// Record is one resource value at a full path: a resource (/O/I/R) or a
// resource instance (/O/I/R/RI).
type Record struct {
	Path  Path
	Value Value
}

// TypeOf resolves the data type of a resource from the object
// definitions; for a resource-instance path it returns the type of the
// resource. ok is false when there is no such resource. Decode calls it
// for every record it decodes, with the record's full path.
type TypeOf func(Path) (Type, bool)

// Format is a CoAP Content-Format number.
type Format uint16

// The content formats of LwM2M 1.1 that this package knows.
const (
	Text         Format = 0     // text/plain; charset=utf-8
	LinkFormat   Format = 40    // application/link-format
	OpaqueFormat Format = 42    // application/octet-stream
	SenMLJSON    Format = 110   // application/senml+json
	SenMLCBOR    Format = 112   // application/senml+cbor
	TLV          Format = 11542 // application/vnd.oma.lwm2m+tlv
)

// String returns the format's media type, or "Format(N)" for a number
// this package does not know.
func (f Format) String() string {
	switch f {
	case Text:
		return "text/plain"
	case LinkFormat:
		return "application/link-format"
	case OpaqueFormat:
		return "application/octet-stream"
	case SenMLJSON:
		return "application/senml+json"
	case SenMLCBOR:
		return "application/senml+cbor"
	case TLV:
		return "application/vnd.oma.lwm2m+tlv"
	}
	return "Format(" + strconv.Itoa(int(f)) + ")"
}

// Encode encodes recs in format f as the answer to a request on base:
// every record's path must be a resource or resource-instance path that
// base contains, and no path may be there twice, nor a resource be both
// single (/O/I/R) and multiple (/O/I/R/RI) (else ErrBadPath). Records
// are written in path order ([Path.Compare]), whatever their order in
// recs.
//
// Text and OpaqueFormat take exactly one record, at base itself;
// anything else (an instance, a multiple resource, no record) is
// ErrUnsupported, and so is a value that is not Opaque for OpaqueFormat.
//
// TLV nests by base: under /O, object-instance TLVs holding resource
// TLVs; under /O/I, resource TLVs; under /O/I/R, one resource TLV, or a
// multiple-resource TLV of resource-instance TLVs when the records are
// resource instances; under /O/I/R/RI, one resource-instance TLV. The root
// is ErrUnsupported. Integers take the fewest of 1, 2, 4 or 8 bytes,
// unsigned integers likewise, floats 4 bytes when that is exact and 8
// otherwise.
//
// SenML puts the base name on the first record, as the TS's examples do:
// "bn":"/3/0/" then "n":"0", "n":"6/1", ...; a single record at base
// itself has "bn":"/3/0/0" and no "n". Opaque values are "vd" in base64url
// without padding (RFC 8428), object links "vlo":"3:0". JSON cannot carry
// NaN or infinities (ErrUnsupported).
//
// LinkFormat is ErrUnsupported: Register and Discover payloads are links,
// not records; write them with [AppendLinks].
func Encode(f Format, base Path, recs []Record) ([]byte, error) {
	if !base.valid() {
		return nil, errorf(ErrBadPath, "base %v holds the reserved id 65535", base)
	}
	for i := range recs {
		r := &recs[i]
		if r.Path.Len() < 3 || !base.Contains(r.Path) || !r.Path.valid() {
			return nil, errorf(ErrBadPath, "record %v is not a resource or resource instance under %v", r.Path, base)
		}
		if err := r.Value.check(); err != nil {
			return nil, fmt.Errorf("%w (at %v)", err, r.Path)
		}
	}
	recs, err := sorted(recs)
	if err != nil {
		return nil, err
	}
	switch f {
	case Text:
		return encodeText(base, recs)
	case OpaqueFormat:
		return encodeOpaque(base, recs)
	case TLV:
		return encodeTLV(base, recs)
	case SenMLJSON:
		return encodeSenMLJSON(base, recs)
	case SenMLCBOR:
		return encodeSenMLCBOR(base, recs)
	}
	return nil, errorf(ErrUnsupported, "cannot encode records as %v", f)
}

// Decode decodes a payload of format f that was written to base (the
// request's path). Every record it returns has a resource or
// resource-instance path that base contains, and a value of the type that
// typeOf gives for it: a SenML "v" number is coerced to Integer, Unsigned
// Integer, Float or Time, and a value that does not fit its type (a
// fraction for an Integer, a string for a Boolean, a negative Unsigned
// Integer) is ErrMalformed. A path outside base, a path twice, or a
// resource both single and multiple is ErrMalformed; a resource typeOf
// does not know is ErrNotFound, naming the path. Records come in payload
// order. An empty TLV or SenML payload is no record.
//
// Text and OpaqueFormat decode one value for base, which must be a
// resource or resource-instance path (else ErrUnsupported); OpaqueFormat
// only for an Opaque resource (else ErrUnsupported). Text reads the
// representations [Value.Text] writes, and accepts a float with an
// exponent and base64 without padding too.
//
// TLV at /O/I accepts resource TLVs, or object-instance TLVs for instance
// I; at /O/I/R a resource TLV, a multiple-resource TLV, or bare
// resource-instance TLVs; object-instance TLVs are needed at /O, since
// there is no instance id otherwise (decode at the /O/I the caller chose
// for a Create without one). The root is ErrUnsupported.
//
// SenML: base names and base values ("bn", "bv") apply as RFC 8428 says,
// times ("bt", "t") and units are ignored, "bver" over 10 and unknown
// labels ending in "_" are ErrMalformed, other unknown labels are
// ignored; "vd" takes base64 in either alphabet, padded or not.
//
// LinkFormat is ErrUnsupported: use [ParseLinks].
func Decode(f Format, base Path, payload []byte, typeOf TypeOf) ([]Record, error) {
	return decode(f, base, payload, typeOf)
}

// DecodePaths reads the paths a SenML JSON or SenML CBOR payload names,
// in order, from records that carry a name and no value: the request of
// a Read-Composite or an Observe-Composite (LwM2M 1.1 6.3.8, 6.4.3).
// Base names apply; a record with a value is ErrMalformed, any other
// format ErrUnsupported.
func DecodePaths(f Format, payload []byte) ([]Path, error) {
	d := senmlDecoder{paths: true, arena: arena{size: len(payload)}}
	var recs []Record
	var err error
	switch f {
	case SenMLJSON:
		recs, err = decodeSenMLJSONWith(d, payload)
	case SenMLCBOR:
		recs, err = decodeSenMLCBORWith(d, payload)
	default:
		return nil, errorf(ErrUnsupported, "composite paths in %v", f)
	}
	if err != nil {
		return nil, err
	}
	paths := make([]Path, len(recs))
	for i, r := range recs {
		paths[i] = r.Path
	}
	return paths, nil
}

func decode(f Format, base Path, payload []byte, typeOf TypeOf) ([]Record, error) {
	if !base.valid() {
		return nil, errorf(ErrBadPath, "base %v holds the reserved id 65535", base)
	}
	if typeOf == nil {
		typeOf = func(Path) (Type, bool) { return TypeNone, false }
	}
	var recs []Record
	var err error
	switch f {
	case Text:
		recs, err = decodeText(base, payload, typeOf)
	case OpaqueFormat:
		recs, err = decodeOpaque(base, payload, typeOf)
	case TLV:
		recs, err = decodeTLV(base, payload, typeOf)
	case SenMLJSON:
		recs, err = decodeSenMLJSON(base, payload, typeOf)
	case SenMLCBOR:
		recs, err = decodeSenMLCBOR(base, payload, typeOf)
	default:
		return nil, errorf(ErrUnsupported, "cannot decode records from %v", f)
	}
	if err != nil {
		return nil, err
	}
	if err := checkUnique(recs); err != nil {
		return nil, err
	}
	return recs, nil
}

// sorted returns recs in path order: recs itself when it already is, a
// sorted copy otherwise. A path twice, or a resource both single and
// multiple, is ErrBadPath.
func sorted(recs []Record) ([]Record, error) {
	if !slices.IsSortedFunc(recs, func(a, b Record) int { return a.Path.Compare(b.Path) }) {
		recs = slices.Clone(recs)
		slices.SortStableFunc(recs, func(a, b Record) int { return a.Path.Compare(b.Path) })
	}
	for i := 1; i < len(recs); i++ {
		if recs[i-1].Path.Contains(recs[i].Path) {
			return nil, errorf(ErrBadPath, "%v and %v in one payload", recs[i-1].Path, recs[i].Path)
		}
	}
	return recs, nil
}

// checkUnique is sorted's check for decoded records, whose order it
// keeps: a path twice, or a resource both single and multiple, is
// ErrMalformed.
func checkUnique(recs []Record) error {
	ordered := true
	for i := 1; i < len(recs) && ordered; i++ {
		ordered = recs[i-1].Path.Compare(recs[i].Path) < 0
	}
	paths := make([]Path, 0, len(recs)*bool2int(!ordered))
	if !ordered {
		for i := range recs {
			paths = append(paths, recs[i].Path)
		}
		slices.SortFunc(paths, Path.Compare)
	}
	for i := 1; i < len(recs); i++ {
		a, b := recs[i-1].Path, recs[i].Path
		if !ordered {
			a, b = paths[i-1], paths[i]
		}
		if a.Contains(b) {
			return errorf(ErrMalformed, "%v and %v in one payload", a, b)
		}
	}
	return nil
}

func itoa(i int) string { return strconv.Itoa(i) }

func bool2int(b bool) int {
	if b {
		return 1
	}
	return 0
}

// arena hands out copies of value bytes from one allocation, so that a
// decoder allocates once for all its strings, however many.
type arena struct {
	buf  []byte
	size int // what to allocate on first use: an upper bound of the total
}

func (a *arena) copy(b []byte) []byte {
	if len(b) == 0 {
		return []byte{}
	}
	if cap(a.buf)-len(a.buf) < len(b) {
		a.buf = make([]byte, 0, max(a.size, len(b)))
	}
	start := len(a.buf)
	a.buf = append(a.buf, b...)
	return a.buf[start:len(a.buf):len(a.buf)]
}

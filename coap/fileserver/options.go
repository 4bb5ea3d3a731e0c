package fileserver

import (
	"bytes"
	"strconv"

	"github.com/tether-iot/tether/coap"
)

// Option numbers that package coap does not name (RFC 7252 12.2).
const (
	optAccept      coap.OptionID = 17
	optProxyURI    coap.OptionID = 35
	optProxyScheme coap.OptionID = 39
)

// maxSegment is the longest Uri-Path segment, in bytes (RFC 7252 5.10).
const maxSegment = 255

// criticalRule is how a critical option the server recognizes may occur in
// a request: whether it may repeat, and the lengths its value may have.
type criticalRule struct {
	repeatable bool
	min, max   int
}

// criticalRuleFor returns the rule of a critical (odd) option the server
// recognizes, and false for any other: this switch is the list of critical
// options the server understands. An option that joins it must be acted on
// (or deliberately ignored, as Uri-Host is) in handle.
func criticalRuleFor(id coap.OptionID) (criticalRule, bool) {
	switch id {
	case coap.IfMatch: // 1: a precondition on the ETag
		return criticalRule{true, 0, 8}, true
	case coap.URIHost: // 3: one origin for every host name
		return criticalRule{false, 1, 255}, true
	case coap.IfNoneMatch: // 5: a precondition on existence
		return criticalRule{false, 0, 0}, true
	case coap.URIPort: // 7: as Uri-Host
		return criticalRule{false, 0, 2}, true
	case coap.URIPath: // 11
		return criticalRule{true, 0, maxSegment}, true
	case coap.URIQuery: // 15: ignored for files, filters the listing
		return criticalRule{true, 0, 255}, true
	case optAccept: // 17: the one format a resource has, or 4.06
		return criticalRule{false, 0, 2}, true
	case coap.Block2: // 23
		return criticalRule{false, 0, 3}, true
	case coap.Block1: // 27: no method that carries a body is served
		return criticalRule{false, 0, 3}, true
	case coap.QBlock2: // 31: over UDP and DTLS (handle refuses it elsewhere)
		return criticalRule{true, 0, 3}, true
	case optProxyURI: // 35: 5.05
		return criticalRule{false, 1, 1034}, true
	case optProxyScheme: // 39: 5.05
		return criticalRule{false, 1, 255}, true
	}
	return criticalRule{}, false
}

// optionFault says why a critical option counts as unrecognized.
type optionFault uint8

const (
	optionsOK      optionFault = iota
	optionUnknown              // a number the server does not know (RFC 7252 5.4.1)
	optionLength               // a value of a length the option does not allow (5.4.3)
	optionRepeated             // a second occurrence of a non-repeatable option (5.4.5)
)

// checkOptions returns the first critical option of a request that the
// server must treat as unrecognized, and why. Elective options are never
// refused: the unknown ones, the supernumerary ones and those of the wrong
// length are ignored (go-coap's decoder drops the last kind already).
// Options arrive sorted by number, so repeats are neighbours.
func checkOptions(opts coap.Options) (coap.OptionID, optionFault) {
	for i, o := range opts {
		if o.ID&1 == 0 {
			continue
		}
		rule, known := criticalRuleFor(o.ID)
		switch {
		case !known:
			return o.ID, optionUnknown
		case len(o.Value) < rule.min || len(o.Value) > rule.max:
			return o.ID, optionLength
		case !rule.repeatable && i > 0 && opts[i-1].ID == o.ID:
			return o.ID, optionRepeated
		}
	}
	return 0, optionsOK
}

// appendFault appends the diagnostic payload of a 4.02 (RFC 7252 5.5.2).
func appendFault(dst []byte, id coap.OptionID, fault optionFault) []byte {
	switch fault {
	case optionUnknown:
		dst = append(dst, "unknown critical option "...)
		return strconv.AppendUint(dst, uint64(id), 10)
	case optionLength:
		dst = append(dst, "option "...)
		dst = strconv.AppendUint(dst, uint64(id), 10)
		return append(dst, ": value length out of range"...)
	default:
		dst = append(dst, "option "...)
		dst = strconv.AppendUint(dst, uint64(id), 10)
		return append(dst, " repeated"...)
	}
}

func hasOption(opts coap.Options, id coap.OptionID) bool {
	_, ok := coap.Bytes(opts, id)
	return ok
}

// precondition returns the code that answers a request whose If-Match or
// If-None-Match does not hold for the resource it names (RFC 7252 5.10.8),
// and 0 when they hold or are absent. It is asked only of a resource that
// exists: as in HTTP (RFC 9110 13.2.1), a 4.04 takes precedence.
func precondition(opts coap.Options, of *openFile) coap.Code {
	if hasOption(opts, coap.IfNoneMatch) {
		return coap.PreconditionFailed // the resource exists
	}
	matched, asked := false, false
	for _, o := range opts {
		if o.ID == coap.IfMatch {
			asked = true
			// An empty value matches any current representation.
			matched = matched || len(o.Value) == 0 || bytes.Equal(o.Value, of.etag[:])
		}
	}
	if asked && !matched {
		return coap.PreconditionFailed
	}
	return 0
}

// acceptable reports whether the request's Accept option, if any, names
// the resource's format (RFC 7252 5.10.4).
func acceptable(opts coap.Options, format coap.MediaType) bool {
	v, ok := coap.Uint(opts, optAccept)
	return !ok || v == uint32(format)
}

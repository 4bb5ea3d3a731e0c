package lwm2m

import (
	"cmp"
	"encoding/binary"
	"slices"
	"strings"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/lwm2m/content"
)

// Options tether's coap package does not name.
const (
	optLocationPath = coap.OptionID(8)
	optAccept       = coap.OptionID(17)
)

// optionList builds a message's options in any order; sorted returns them
// in the order the wire format needs (stable, so repeated options keep
// theirs).
type optionList coap.Options

func (l *optionList) str(id coap.OptionID, s string) {
	*l = append(*l, coap.Option{ID: id, Value: []byte(s)})
}

func (l *optionList) uint(id coap.OptionID, v uint32) {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	i := 0
	for i < 4 && b[i] == 0 {
		i++
	}
	*l = append(*l, coap.Option{ID: id, Value: slices.Clone(b[i:])})
}

// path adds a path's segments as Uri-Path options.
func (l *optionList) path(p string) {
	for _, seg := range strings.Split(strings.Trim(p, "/"), "/") {
		if seg != "" {
			l.str(coap.URIPath, seg)
		}
	}
}

// segments adds path segments as Uri-Path options, as they are.
func (l *optionList) segments(segs []string) {
	for _, s := range segs {
		l.str(coap.URIPath, s)
	}
}

func (l optionList) sorted() coap.Options {
	slices.SortStableFunc(l, func(a, b coap.Option) int { return cmp.Compare(a.ID, b.ID) })
	return coap.Options(l)
}

// strings returns every value of a repeated option.
func optionStrings(opts coap.Options, id coap.OptionID) []string {
	var out []string
	for _, o := range opts {
		if o.ID == id {
			out = append(out, string(o.Value))
		}
	}
	return out
}

// requestPath reads a request's Uri-Path as an LwM2M path.
func requestPath(opts coap.Options) (content.Path, error) {
	return content.ParsePath("/" + strings.Join(optionStrings(opts, coap.URIPath), "/"))
}

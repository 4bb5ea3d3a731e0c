package lwm2m

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/lwm2m/content"
)

// attributes are the notification attributes written to one path (LwM2M
// 1.1 5.1.2, 6.3.4): the periods pmin and pmax, the evaluation periods
// epmin and epmax, and the change conditions gt, lt and st of a numeric
// resource.
type attributes struct {
	pmin, pmax, epmin, epmax time.Duration
	gt, lt, st               float64
	set                      attrSet
}

// attrSet says which attributes are set.
type attrSet uint8

const (
	attrPmin attrSet = 1 << iota
	attrPmax
	attrGt
	attrLt
	attrSt
	attrEpmin
	attrEpmax
)

// attrNames are the attributes, in the order Discover lists them.
var attrNames = []struct {
	name string
	bit  attrSet
}{{"pmin", attrPmin}, {"pmax", attrPmax}, {"gt", attrGt}, {"lt", attrLt}, {"st", attrSt}, {"epmin", attrEpmin}, {"epmax", attrEpmax}}

func (a attributes) has(b attrSet) bool { return a.set&b != 0 }

// conditions reports whether a has change conditions (gt, lt, st).
func (a attributes) conditions() bool { return a.set&(attrGt|attrLt|attrSt) != 0 }

// numeric reports whether a resource of type t takes gt, lt and st.
func numeric(t content.Type) bool {
	return t == content.Integer || t == content.UnsignedInteger || t == content.Float
}

// number is a numeric value as a float64, and whether it is numeric.
func number(v content.Value) (float64, bool) {
	switch v.Type {
	case content.Integer:
		return float64(v.Int), true
	case content.UnsignedInteger:
		return float64(v.Uint), true
	case content.Float:
		return v.Float, true
	}
	return 0, false
}

// set applies one query parameter: name=value sets, a bare name clears.
func (a *attributes) apply(name, val string, hasVal bool) error {
	for _, n := range attrNames {
		if n.name != name {
			continue
		}
		if !hasVal {
			a.set &^= n.bit
			return nil
		}
		switch n.bit {
		case attrPmin, attrPmax, attrEpmin, attrEpmax:
			secs, err := strconv.ParseUint(val, 10, 31)
			if err != nil {
				return fmt.Errorf("bad %s value %q", name, val)
			}
			d := time.Duration(secs) * time.Second
			switch n.bit {
			case attrPmin:
				a.pmin = d
			case attrPmax:
				a.pmax = d
			case attrEpmin:
				a.epmin = d
			case attrEpmax:
				a.epmax = d
			}
		default:
			f, err := strconv.ParseFloat(val, 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || (n.bit == attrSt && f < 0) {
				return fmt.Errorf("bad %s value %q", name, val)
			}
			switch n.bit {
			case attrGt:
				a.gt = f
			case attrLt:
				a.lt = f
			case attrSt:
				a.st = f
			}
		}
		a.set |= n.bit
		return nil
	}
	return fmt.Errorf("unknown attribute %s", name)
}

// check enforces the rules between attributes (LwM2M 1.1 5.1.2).
func (a attributes) check() error {
	switch {
	case a.has(attrPmin) && a.has(attrPmax) && a.pmax < a.pmin:
		return fmt.Errorf("pmax is less than pmin")
	case a.has(attrEpmin) && a.has(attrEpmax) && a.epmax <= a.epmin:
		return fmt.Errorf("epmax is not greater than epmin")
	case a.has(attrLt) && a.has(attrGt) && a.lt >= a.gt:
		return fmt.Errorf("lt is not less than gt")
	case a.has(attrLt) && a.has(attrGt) && a.has(attrSt) && a.lt+2*a.st >= a.gt:
		return fmt.Errorf("lt + 2*st is not less than gt")
	}
	return nil
}

// writeAttributes sets or clears attributes on a path: pmin, pmax, epmin
// and epmax on any level, gt, lt and st on a numeric resource (or one of
// its instances). Nothing is changed unless every parameter is good.
func (c *Client) writeAttributes(req *coap.Message, o Object, path content.Path) coap.Message {
	var def ResourceDef
	if path.Len() >= 3 {
		d, ok := resourceDef(o, path.Instance(), path.Resource())
		if !ok {
			return coap.Message{Code: coap.NotFound}
		}
		def = d
	}
	if path.Len() == 4 {
		if recs, err := collect(o, path); err != nil || len(recs) == 0 {
			return coap.Message{Code: coap.NotFound}
		}
	}
	bad := func(why string) coap.Message { return coap.Message{Code: coap.BadRequest, Payload: []byte(why)} }
	c.obsMu.Lock()
	defer c.obsMu.Unlock()
	a := c.attrs[path]
	for _, q := range optionStrings(req.Options, coap.URIQuery) {
		name, val, hasVal := strings.Cut(q, "=")
		if err := a.apply(name, val, hasVal); err != nil {
			return bad(err.Error())
		}
	}
	if a.conditions() && (path.Len() < 3 || !numeric(def.Type) || (def.Multiple && path.Len() == 3)) {
		return bad("gt, lt and st apply to a numeric resource with one value")
	}
	if err := a.check(); err != nil {
		return bad(err.Error())
	}
	if a.set == 0 {
		delete(c.attrs, path)
	} else {
		if c.attrs == nil { // made on first use: most clients have none
			c.attrs = make(map[content.Path]attributes)
		}
		c.attrs[path] = a
	}
	c.poke() // the loop's timers change with the attributes
	return coap.Message{Code: coap.Changed}
}

// attributeParams lists the attributes set on exactly p, for Discover.
func (c *Client) attributeParams(p content.Path) []content.LinkParam {
	c.obsMu.Lock()
	a, ok := c.attrs[p]
	c.obsMu.Unlock()
	if !ok {
		return nil
	}
	var out []content.LinkParam
	for _, n := range attrNames {
		if !a.has(n.bit) {
			continue
		}
		var v string
		switch n.bit {
		case attrPmin:
			v = strconv.Itoa(int(a.pmin / time.Second))
		case attrPmax:
			v = strconv.Itoa(int(a.pmax / time.Second))
		case attrEpmin:
			v = strconv.Itoa(int(a.epmin / time.Second))
		case attrEpmax:
			v = strconv.Itoa(int(a.epmax / time.Second))
		case attrGt:
			v = strconv.FormatFloat(a.gt, 'g', -1, 64)
		case attrLt:
			v = strconv.FormatFloat(a.lt, 'g', -1, 64)
		case attrSt:
			v = strconv.FormatFloat(a.st, 'g', -1, 64)
		}
		out = append(out, content.LinkParam{Name: n.name, Value: v})
	}
	return out
}

// effective are the attributes that govern an observation of p: each
// period from the resource, else its instance, else its object, else the
// server's defaults (/1/0/2 and /1/0/3); the change conditions from p
// alone. A pmax of 0 means none.
func (c *Client) effective(p content.Path) attributes {
	var e attributes
	e.pmin, e.pmax = c.server.defaultPeriods()
	var got attrSet
	for q := p; q.Len() > 0; q = q.Parent() {
		a, ok := c.attrs[q]
		if !ok {
			continue
		}
		for _, b := range []attrSet{attrPmin, attrPmax, attrEpmin, attrEpmax} {
			if !a.has(b) || got&b != 0 {
				continue
			}
			got |= b
			switch b {
			case attrPmin:
				e.pmin = a.pmin
			case attrPmax:
				e.pmax = a.pmax
			case attrEpmin:
				e.epmin = a.epmin
			case attrEpmax:
				e.epmax = a.epmax
			}
		}
		if q == p {
			e.gt, e.lt, e.st = a.gt, a.lt, a.st
			e.set |= a.set & (attrGt | attrLt | attrSt)
		}
	}
	e.set |= got
	return e
}

// meets reports whether a new value of an observed numeric resource is to
// be notified under the change conditions, given the last one notified:
// it crossed gt or lt, or moved by st or more. Without conditions, or
// without a last value, any change is.
func (a attributes) meets(last, now float64, hasLast bool) bool {
	if !a.conditions() || !hasLast {
		return true
	}
	crossed := func(th float64) bool { return (last <= th) != (now <= th) }
	return (a.has(attrGt) && crossed(a.gt)) || (a.has(attrLt) && crossed(a.lt)) ||
		(a.has(attrSt) && math.Abs(now-last) >= a.st)
}

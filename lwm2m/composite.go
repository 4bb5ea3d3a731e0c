package lwm2m

import (
	"fmt"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/lwm2m/content"
)

// maxCompositePaths bounds the paths of one composite request.
const maxCompositePaths = 64

// composite serves the composite operations on the root (LwM2M 1.1
// 6.3.8, 6.3.9, 6.4.3): Read-Composite (FETCH with the paths in SenML),
// Observe-Composite (the same with Observe), and Write-Composite (iPATCH
// with SenML records of several objects).
func (c *Client) composite(req *coap.Message) coap.Message {
	root := content.Path{}
	cf, ok := coap.Uint(req.Options, coap.ContentFormat)
	if !ok {
		return c.answer(req, "?", root, coap.Message{Code: coap.BadRequest, Payload: []byte("a composite operation needs a Content-Format")})
	}
	in := content.Format(cf)
	if in != content.SenMLJSON && in != content.SenMLCBOR {
		return c.answer(req, "?", root, coap.Message{Code: coap.UnsupportedContentFormat})
	}
	switch req.Code {
	case coap.FETCH:
		paths, err := content.DecodePaths(in, req.Payload)
		if err != nil || len(paths) == 0 || len(paths) > maxCompositePaths {
			return c.answer(req, "read-composite", root, coap.Message{Code: coap.BadRequest, Payload: []byte(fmt.Sprint("paths: ", err))})
		}
		out := in
		if accept, ok := coap.Uint(req.Options, optAccept); ok {
			out = content.Format(accept)
			if out != content.SenMLJSON && out != content.SenMLCBOR {
				return c.answer(req, "read-composite", root, coap.Message{Code: coap.NotAcceptable})
			}
		}
		resp := c.readComposite(paths, out)
		if obs, ok := coap.Uint(req.Options, coap.Observe); ok {
			return c.answer(req, "observe-composite", root, c.observeComposite(req, paths, out, obs, resp))
		}
		return c.answer(req, "read-composite", root, resp)
	case coap.IPATCH:
		return c.answer(req, "write-composite", root, c.writeComposite(in, req.Payload))
	}
	return c.answer(req, "?", root, coap.Message{Code: coap.MethodNotAllowed})
}

// readComposite reads every path (with objCall held) and encodes the
// records at the root. A path that names nothing readable is left out
// (as a Read of it would be 4.04); when none is left, 4.04.
func (c *Client) readComposite(paths []content.Path, f content.Format) coap.Message {
	var recs []content.Record
	for _, p := range paths {
		o := c.object(p.Object())
		if p.Len() == 0 || o == nil {
			continue
		}
		rs, err := collect(o, p)
		if err != nil {
			continue
		}
		recs = append(recs, rs...)
	}
	if len(recs) == 0 {
		return coap.Message{Code: coap.NotFound}
	}
	payload, err := content.Encode(f, content.Path{}, recs)
	if err != nil {
		return coap.Message{Code: codeFor(err)}
	}
	var opts optionList
	opts.uint(coap.ContentFormat, uint32(f))
	return coap.Message{Code: coap.Content, Options: opts.sorted(), Payload: payload}
}

// observeComposite registers (0) or cancels (1) an observation of several
// paths, answered with their values now. Its notifications follow the
// server's default periods (/1/0/2, /1/0/3) and any change under a path.
func (c *Client) observeComposite(req *coap.Message, paths []content.Path, f content.Format, obs uint32, resp coap.Message) coap.Message {
	return c.startObservation(req, &observation{composite: paths, compositeFormat: f}, obs, resp)
}

// writeComposite writes the records of several objects (a partial update
// of each resource): every one is checked first, then all are written.
func (c *Client) writeComposite(f content.Format, payload []byte) coap.Message {
	typeOf := func(p content.Path) (content.Type, bool) {
		o := c.object(p.Object())
		if o == nil {
			return content.TypeNone, false
		}
		return typeOf(o)(p)
	}
	recs, err := content.Decode(f, content.Path{}, payload, typeOf)
	if err != nil {
		return coap.Message{Code: codeFor(err), Payload: []byte(err.Error())}
	}
	type target struct {
		o    Object
		inst uint16
		res  uint16
	}
	byRes := map[target][]content.Record{}
	var order []target
	for _, r := range recs {
		o := c.object(r.Path.Object())
		if o == nil || r.Path.Len() < 3 || !hasInstance(o, r.Path.Instance()) {
			return coap.Message{Code: coap.NotFound, Payload: []byte(r.Path.String())}
		}
		d, ok := resourceDef(o, r.Path.Instance(), r.Path.Resource())
		if !ok {
			return coap.Message{Code: coap.NotFound, Payload: []byte(r.Path.String())}
		}
		if d.Ops&OpWrite == 0 {
			return coap.Message{Code: coap.MethodNotAllowed, Payload: []byte(r.Path.String())}
		}
		k := target{o, r.Path.Instance(), r.Path.Resource()}
		if _, seen := byRes[k]; !seen {
			order = append(order, k)
		}
		byRes[k] = append(byRes[k], r)
	}
	for _, k := range order {
		if err := k.o.Write(k.inst, k.res, byRes[k]); err != nil {
			return coap.Message{Code: codeFor(err)}
		}
		c.Changed(content.ResourcePath(k.o.ID(), k.inst, k.res))
	}
	return coap.Message{Code: coap.Changed}
}

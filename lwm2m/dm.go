package lwm2m

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/lwm2m/content"
)

// serve answers the server's Device Management requests (LwM2M 1.1 6.3):
// Read, Discover, Write, Write-Attributes, Execute, Observe and Cancel. It
// runs on the connection's reader goroutine, and never waits there but for
// its turn to call the objects (objCall). A critical option it does not
// know is refused, and a request that comes block by block (Block1) is
// reassembled before it is served.
func (c *Client) serve(req *coap.Message) coap.Message {
	c.objCall <- struct{}{}
	defer func() { <-c.objCall }()
	if resp, bad := badOption(req); bad {
		return c.answer(req, "?", content.Path{}, resp)
	}
	if _, ok := coap.Bytes(req.Options, coap.Block1); !ok {
		return inBlocks(req, c.serveWhole(req))
	}
	whole, echo, answer := c.reassemble(req)
	if answer != nil {
		if answer.Code != coap.Continue { // a block on its way is no request served yet
			path, _ := requestPath(req.Options)
			return c.answer(req, "?", path, *answer)
		}
		return *answer
	}
	resp := c.serveWhole(whole)
	resp.Options = append(slices.Clone(resp.Options), echo)
	slices.SortStableFunc(resp.Options, func(a, b coap.Option) int { return cmp.Compare(a.ID, b.ID) })
	return resp
}

// Proxy options (RFC 7252 5.10.2): a client is no proxy.
const (
	optProxyURI    = coap.OptionID(35)
	optProxyScheme = coap.OptionID(39)
)

// knownCritical are the critical options (odd numbers, RFC 7252 5.4.6) a
// request to this client may carry: Uri-Host and Uri-Port (ignored: the
// client is one endpoint), Uri-Path, Uri-Query, Accept, Block2 (inBlocks
// serves the blocks of a large answer) and Block1.
var knownCritical = []coap.OptionID{coap.URIHost, coap.URIPort, coap.URIPath, coap.URIQuery, optAccept, coap.Block2, coap.Block1}

// badOption answers a request with a critical option this client does not
// know 4.02 Bad Option (RFC 7252 5.4.1), and one for a proxy 5.05 (RFC
// 7252 5.10.2); elective options are ignored.
func badOption(req *coap.Message) (coap.Message, bool) {
	for _, o := range req.Options {
		switch {
		case o.ID == optProxyURI || o.ID == optProxyScheme:
			return coap.Message{Code: coap.ProxyingNotSupported}, true
		case o.ID&1 == 1 && !slices.Contains(knownCritical, o.ID):
			return coap.Message{Code: coap.BadOption, Payload: []byte(fmt.Sprintf("unknown critical option %d", o.ID))}, true
		}
	}
	return coap.Message{}, false
}

// serveWhole serves a request whose body is whole: the bootstrap
// server's while a bootstrap is in progress, else the LwM2M server's.
func (c *Client) serveWhole(req *coap.Message) coap.Message {
	path, err := requestPath(req.Options)
	if err != nil {
		if bs := c.bsNow.Load(); bs == nil || req.Code != coap.POST {
			return c.answer(req, "?", path, coap.Message{Code: coap.BadRequest})
		}
	}
	if bs := c.bsNow.Load(); bs != nil {
		return c.serveBootstrap(bs, req, path)
	}
	return c.serveDM(req, path)
}

// serveDM serves the LwM2M server's Device Management request.
func (c *Client) serveDM(req *coap.Message, path content.Path) coap.Message {
	if path.Len() == 0 && (req.Code == coap.FETCH || req.Code == coap.IPATCH) {
		return c.composite(req)
	}
	if path.Len() == 0 || path.Object() == 0 {
		// The Security object is the bootstrap server's; a root request
		// other than a composite one is a Bootstrap-Discover.
		code := coap.NotFound
		if path.Len() > 0 {
			code = coap.Unauthorized
		}
		return c.answer(req, "?", path, coap.Message{Code: code})
	}
	o := c.object(path.Object())
	if o == nil {
		return c.answer(req, "?", path, coap.Message{Code: coap.NotFound})
	}
	if path.Len() >= 2 && !hasInstance(o, path.Instance()) {
		return c.answer(req, "?", path, coap.Message{Code: coap.NotFound})
	}
	_, hasQuery := coap.Bytes(req.Options, coap.URIQuery)
	_, hasCF := coap.Uint(req.Options, coap.ContentFormat)
	switch req.Code {
	case coap.GET:
		if accept, ok := coap.Uint(req.Options, optAccept); ok && content.Format(accept) == content.LinkFormat {
			return c.answer(req, "discover", path, c.discover(o, path))
		}
		if obs, ok := coap.Uint(req.Options, coap.Observe); ok {
			return c.answer(req, "observe", path, c.observe(req, o, path, obs))
		}
		return c.answer(req, "read", path, c.read(req, o, path))
	case coap.PUT:
		if hasQuery && !hasCF && len(req.Payload) == 0 {
			return c.answer(req, "write-attributes", path, c.writeAttributes(req, o, path))
		}
		return c.answer(req, "write", path, c.write(req, o, path, true))
	case coap.POST:
		switch path.Len() {
		case 3:
			return c.answer(req, "execute", path, c.execute(req, o, path))
		case 2:
			return c.answer(req, "write", path, c.write(req, o, path, false))
		}
		return c.answer(req, "create", path, c.create(req, o, path))
	case coap.DELETE:
		return c.answer(req, "delete", path, c.remove(o, path))
	}
	return c.answer(req, "?", path, coap.Message{Code: coap.MethodNotAllowed})
}

// answer reports a request served and returns its response.
func (c *Client) answer(req *coap.Message, op string, path content.Path, resp coap.Message) coap.Message {
	if op == "?" {
		// "0.01 GET" -> "get"; an unregistered code ("0.08") as it is.
		s := coap.CodeString(req.Code)
		if _, name, ok := strings.Cut(s, " "); ok {
			s = name
		}
		op = strings.ToLower(s)
	}
	c.emit(Event{Kind: "request", Op: op, Path: path.String(), Code: coap.CodeString(resp.Code)})
	c.served.Store(time.Now().UnixNano()) // queue mode: an answer is a message sent
	return resp
}

// typeOf resolves resource types in o for the content decoders.
func typeOf(o Object) content.TypeOf {
	return func(p content.Path) (content.Type, bool) {
		if p.Len() < 3 || p.Object() != o.ID() || !hasInstance(o, p.Instance()) {
			return content.TypeNone, false
		}
		d, ok := resourceDef(o, p.Instance(), p.Resource())
		if !ok || d.Ops&OpExecute != 0 {
			return content.TypeNone, false
		}
		return d.Type, true
	}
}

// collect reads every readable resource under path.
func collect(o Object, path content.Path) ([]content.Record, error) {
	var insts []uint16
	if path.Len() >= 2 {
		if !hasInstance(o, path.Instance()) {
			return nil, ErrNotFound // deleted since it was observed
		}
		insts = []uint16{path.Instance()}
	} else {
		insts = o.Instances()
	}
	var recs []content.Record
	for _, inst := range insts {
		for _, d := range o.Resources(inst) {
			if path.Len() >= 3 && d.ID != path.Resource() {
				continue
			}
			if d.Ops&OpRead == 0 {
				if path.Len() >= 3 {
					return nil, ErrMethodNotAllowed
				}
				continue
			}
			rs, err := o.Read(inst, d.ID)
			if err != nil {
				return nil, err
			}
			for _, r := range rs {
				if path.Contains(r.Path) {
					recs = append(recs, r)
				}
			}
		}
	}
	if path.Len() >= 3 && len(recs) == 0 {
		if _, ok := resourceDef(o, path.Instance(), path.Resource()); !ok || path.Len() == 4 {
			return nil, ErrNotFound
		}
	}
	return recs, nil
}

// readFormat chooses the content format of a Read: the Accept option if
// this client writes it (else 4.06), text/plain for a single value (opaque
// for an opaque one), the preferred hierarchical format for the rest.
func (c *Client) readFormat(req *coap.Message, o Object, path content.Path) (content.Format, bool) {
	if accept, ok := coap.Uint(req.Options, optAccept); ok {
		switch f := content.Format(accept); f {
		case content.Text, content.OpaqueFormat, content.TLV, content.SenMLJSON, content.SenMLCBOR:
			return f, true
		}
		return 0, false
	}
	if path.Len() == 4 || path.Len() == 3 {
		if d, ok := resourceDef(o, path.Instance(), path.Resource()); ok && (!d.Multiple || path.Len() == 4) {
			if d.Type == content.Opaque {
				return content.OpaqueFormat, true
			}
			return content.Text, true
		}
	}
	if c.Status().Version == "1.0" {
		return content.TLV, true
	}
	return content.SenMLJSON, true
}

// encodeRead reads path and encodes it in the request's format.
func (c *Client) encodeRead(req *coap.Message, o Object, path content.Path) (coap.Message, content.Format) {
	f, ok := c.readFormat(req, o, path)
	if !ok {
		return coap.Message{Code: coap.NotAcceptable}, 0
	}
	recs, err := collect(o, path)
	if err != nil {
		return coap.Message{Code: codeFor(err)}, 0
	}
	payload, err := content.Encode(f, path, recs)
	if err != nil {
		return coap.Message{Code: codeFor(err)}, 0
	}
	var opts optionList
	opts.uint(coap.ContentFormat, uint32(f))
	return coap.Message{Code: coap.Content, Options: opts.sorted(), Payload: payload}, f
}

func (c *Client) read(req *coap.Message, o Object, path content.Path) coap.Message {
	resp, _ := c.encodeRead(req, o, path)
	return resp
}

// write replaces (PUT) or updates (POST on an instance) resources.
func (c *Client) write(req *coap.Message, o Object, path content.Path, replace bool) coap.Message {
	if path.Len() < 2 || path.Len() == 4 {
		return coap.Message{Code: coap.MethodNotAllowed}
	}
	cf, ok := coap.Uint(req.Options, coap.ContentFormat)
	if !ok {
		cf = uint32(content.Text) // Wakaama's CLI sends text without saying so
	}
	switch content.Format(cf) {
	case content.Text, content.OpaqueFormat, content.TLV, content.SenMLJSON, content.SenMLCBOR:
	default:
		return coap.Message{Code: coap.UnsupportedContentFormat}
	}
	if path.Len() == 3 {
		d, ok := resourceDef(o, path.Instance(), path.Resource())
		if !ok {
			return coap.Message{Code: coap.NotFound}
		}
		if d.Ops&OpWrite == 0 {
			return coap.Message{Code: coap.MethodNotAllowed}
		}
	}
	recs, err := content.Decode(content.Format(cf), path, req.Payload, typeOf(o))
	switch {
	case errors.Is(err, content.ErrUnsupported):
		return coap.Message{Code: coap.UnsupportedContentFormat}
	case err != nil:
		return coap.Message{Code: codeFor(err)}
	}
	// Group by resource, check them all, then write.
	byRes := map[uint16][]content.Record{}
	var order []uint16
	for _, r := range recs {
		if r.Path.Instance() != path.Instance() {
			return coap.Message{Code: coap.BadRequest}
		}
		id := r.Path.Resource()
		if _, seen := byRes[id]; !seen {
			order = append(order, id)
		}
		byRes[id] = append(byRes[id], r)
	}
	for _, id := range order {
		d, ok := resourceDef(o, path.Instance(), id)
		if !ok {
			return coap.Message{Code: coap.NotFound}
		}
		if d.Ops&OpWrite == 0 {
			return coap.Message{Code: coap.MethodNotAllowed}
		}
	}
	// A replace of an instance: what it leaves out is reset, and it must
	// not leave out a mandatory resource.
	var reset []uint16
	if replace && path.Len() == 2 {
		for _, d := range o.Resources(path.Instance()) {
			if d.Ops&OpWrite == 0 || slices.Contains(order, d.ID) {
				continue
			}
			if d.Mandatory {
				return coap.Message{Code: coap.BadRequest, Payload: []byte(fmt.Sprintf("a replace of %v must carry resource %d", path, d.ID))}
			}
			reset = append(reset, d.ID)
		}
	}
	for _, id := range order {
		if err := o.Write(path.Instance(), id, byRes[id]); err != nil {
			return coap.Message{Code: codeFor(err)}
		}
		c.Changed(content.ResourcePath(o.ID(), path.Instance(), id))
	}
	if r, ok := o.(Resetter); ok {
		for _, id := range reset {
			if err := r.Reset(path.Instance(), id); err != nil {
				return coap.Message{Code: codeFor(err)}
			}
			c.Changed(content.ResourcePath(o.ID(), path.Instance(), id))
		}
	}
	return coap.Message{Code: coap.Changed}
}

// execute runs an executable resource.
func (c *Client) execute(req *coap.Message, o Object, path content.Path) coap.Message {
	d, ok := resourceDef(o, path.Instance(), path.Resource())
	if !ok {
		return coap.Message{Code: coap.NotFound}
	}
	if d.Ops&OpExecute == 0 {
		return coap.Message{Code: coap.MethodNotAllowed}
	}
	if err := o.Execute(path.Instance(), path.Resource(), req.Payload); err != nil {
		return coap.Message{Code: codeFor(err)}
	}
	return coap.Message{Code: coap.Changed}
}

// discover answers Discover (6.3.2) in link format: the object or instance
// and its resources, with the attributes set on each level.
func (c *Client) discover(o Object, path content.Path) coap.Message {
	if path.Len() == 4 {
		return coap.Message{Code: coap.MethodNotAllowed}
	}
	var links []content.Link
	add := func(p content.Path, extra ...content.LinkParam) {
		l := content.Link{Target: p.String(), Params: extra}
		l.Params = append(l.Params, c.attributeParams(p)...)
		links = append(links, l)
	}
	if path.Len() == 1 {
		var ver []content.LinkParam
		if v := o.Version(); v != "" {
			ver = append(ver, content.LinkParam{Name: "ver", Value: v})
		}
		add(path, ver...)
	}
	insts := o.Instances()
	if path.Len() >= 2 {
		insts = []uint16{path.Instance()}
	}
	found := false
	for _, inst := range insts {
		if path.Len() <= 2 {
			add(content.InstancePath(o.ID(), inst))
		}
		for _, d := range o.Resources(inst) {
			p := content.ResourcePath(o.ID(), inst, d.ID)
			if !path.Contains(p) {
				continue
			}
			found = true
			var dim []content.LinkParam
			if d.Multiple {
				if recs, err := o.Read(inst, d.ID); err == nil {
					dim = append(dim, content.LinkParam{Name: "dim", Value: strconv.Itoa(len(recs))})
				}
			}
			add(p, dim...)
		}
	}
	if path.Len() == 3 && !found {
		return coap.Message{Code: coap.NotFound}
	}
	var opts optionList
	opts.uint(coap.ContentFormat, uint32(content.LinkFormat))
	return coap.Message{Code: coap.Content, Options: opts.sorted(), Payload: content.AppendLinks(nil, links)}
}

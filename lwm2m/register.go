package lwm2m

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/client"
	"github.com/tether-iot/tether/lwm2m/content"
)

// register sends Register (LwM2M 1.1 6.2.1): POST /rd with the endpoint,
// lifetime, version, binding and queue mode, and the object links.
func (c *Client) register(ctx context.Context) {
	r := &c.reg
	xctx, done := c.exchangeCtx(ctx)
	defer done()
	if _, err := c.connect(xctx); err != nil {
		c.failed("register", err)
		return
	}
	lifetime, binding, queue := c.server.params()
	var q optionList
	q.path("/rd")
	q.str(coap.URIQuery, "ep="+c.cfg.Endpoint)
	q.str(coap.URIQuery, "lt="+strconv.Itoa(int(lifetime/time.Second)))
	q.str(coap.URIQuery, "lwm2m="+r.version)
	switch {
	case r.version == "1.0" && queue:
		q.str(coap.URIQuery, "b="+binding+"Q")
	default:
		q.str(coap.URIQuery, "b="+binding)
		if queue {
			q.str(coap.URIQuery, "Q")
		}
	}
	q.uint(coap.ContentFormat, uint32(content.LinkFormat))
	c.linksChanged.Store(false) // a Register carries the links anyway
	req := &coap.Message{Code: coap.POST, Options: q.sorted(), Payload: c.objectLinks(r.version)}
	// A new registration: the server forgets the observations of the old
	// one. Forget them now, not on the answer: the server may observe
	// again before that answer arrives.
	c.dropObservations()
	c.emit(Event{Kind: "register", Detail: fmt.Sprintf("POST /rd ep=%s lt=%d lwm2m=%s", c.cfg.Endpoint, lifetime/time.Second, r.version)})
	resp, err := c.doBlockwise(xctx, req)
	switch {
	case err != nil && xctx.Err() != nil:
		return // cut short by offline mode, Reconnect or Stop: the command moves on
	case err != nil:
		c.failed("register", err)
		return
	case resp.Code == coap.PreconditionFailed && r.version == "1.1":
		// The server speaks LwM2M 1.0 only (6.2.1): ask again as 1.0.
		c.emit(Event{Kind: "register", Code: coap.CodeString(resp.Code), Detail: "falling back to LwM2M 1.0"})
		r.version = "1.0"
		c.setStatus(func(s *Status) { s.Version = "1.0" })
		return
	case resp.Code != coap.Created:
		c.failed("register", &client.ResponseError{Code: resp.Code, Diagnostic: string(resp.Payload)})
		return
	}
	loc := optionStrings(resp.Options, optLocationPath)
	if len(loc) == 0 {
		c.failed("register", errors.New("lwm2m: 2.01 Created without a Location-Path"))
		return
	}
	r.segments = loc
	r.location, r.at, r.lifetime, r.binding, r.queue = "/"+strings.Join(loc, "/"), time.Now(), lifetime, binding, queue
	r.updateWanted, r.retryDelay, r.active, r.regFailures = false, c.cfg.RetryDelay, time.Now(), 0
	c.setStatus(func(s *Status) { s.Registered, s.Location = true, r.location; s.Registers++ })
	c.move(Registered)
	c.emit(Event{Kind: "register", Code: coap.CodeString(resp.Code), Path: r.location})
}

// update sends a Registration Update (6.2.2): POST to the registration's
// location with whatever changed since the server last heard.
func (c *Client) update(ctx context.Context) {
	r := &c.reg
	if r.state == Asleep && !c.wakeUp(ctx) {
		return
	}
	c.move(Updating)
	xctx, done := c.exchangeCtx(ctx)
	defer done()
	cut := xctx // what offline mode, Reconnect and Stop cut
	probing := r.probe
	r.probe = false
	if probing {
		// A session restored without a handshake that the server forgot
		// meets silence, which the full retransmission schedule would
		// take MAX_TRANSMIT_WAIT (93 s) to call: two transmissions tell.
		var cancel context.CancelFunc
		xctx, cancel = context.WithTimeout(xctx, probeTimeout(c.params))
		defer cancel()
	}
	lifetime, binding, queue := c.server.params()
	var q optionList
	q.segments(r.segments)
	var changed []string
	if lifetime != r.lifetime {
		q.str(coap.URIQuery, "lt="+strconv.Itoa(int(lifetime/time.Second)))
		changed = append(changed, "lt")
	}
	if binding != r.binding || (queue != r.queue && r.version == "1.0") {
		b := binding
		if queue && r.version == "1.0" {
			b += "Q"
		}
		q.str(coap.URIQuery, "b="+b)
		changed = append(changed, "b")
	}
	if queue && r.version != "1.0" {
		q.str(coap.URIQuery, "Q")
	}
	var links []byte
	if c.linksChanged.Swap(false) {
		links = c.objectLinks(r.version)
		q.uint(coap.ContentFormat, uint32(content.LinkFormat))
		changed = append(changed, "objects")
	}
	req := &coap.Message{Code: coap.POST, Options: q.sorted(), Payload: links}
	c.emit(Event{Kind: "update", Path: r.location, Detail: strings.Join(changed, ",")})
	resp, err := c.doBlockwise(xctx, req)
	switch {
	case err != nil && probing && cut.Err() == nil && xctx.Err() != nil:
		// The next connect runs a handshake (the restored state never
		// answered) and registers again, at once.
		c.emit(Event{Kind: "error", Op: "update", Detail: fmt.Sprintf("the restored DTLS session got no answer in %v: the server forgot it; registering again", probeTimeout(c.params))})
		c.disconnect(false)
		c.invalidate()
		c.move(Registering)
		return
	case err != nil && xctx.Err() != nil:
		// Cut short by offline mode, Reconnect, Stop or the end of Run:
		// the Update stays wanted, and the command moves on.
		r.updateWanted = true
		if links != nil {
			c.linksChanged.Store(true)
		}
		c.move(Registered)
		return
	case err != nil:
		c.failed("update", err)
		return
	case resp.Code == coap.NotFound:
		c.emit(Event{Kind: "update", Code: coap.CodeString(resp.Code), Detail: "the server forgot us: registering again"})
		c.invalidate()
		c.move(Registering)
		return
	case resp.Code != coap.Changed:
		c.failed("update", &client.ResponseError{Code: resp.Code, Diagnostic: string(resp.Payload)})
		return
	}
	c.move(Registered)
	r.at, r.lifetime, r.binding, r.queue, r.updateWanted, r.active = time.Now(), lifetime, binding, queue, false, time.Now()
	c.setStatus(func(s *Status) { s.Updates++ })
	c.emit(Event{Kind: "update", Code: coap.CodeString(resp.Code), Path: r.location})
}

// probeTimeout bounds the Update that tries a restored DTLS session: the
// time a confirmable message and its first retransmission may take to be
// acknowledged, ACK_TIMEOUT * ACK_RANDOM_FACTOR * 3.
func probeTimeout(p coap.Params) time.Duration {
	return time.Duration(float64(p.AckTimeout) * p.AckRandomFactor * 3)
}

// deregister sends De-register (6.2.3): one attempt, bounded by
// MAX_TRANSMIT_WAIT and by Stop's context. The loop is Deregistering: the
// server holds a registration and the client is online, perhaps asleep
// or between connections.
func (c *Client) deregister(ctx context.Context) {
	r := &c.reg
	xctx, cancel := context.WithTimeout(ctx, c.params.MaxTransmitWait())
	defer cancel()
	if r.stopCtx != nil {
		defer context.AfterFunc(r.stopCtx, cancel)()
	}
	if !c.conn.up {
		if _, err := c.connect(xctx); err != nil {
			c.emit(Event{Kind: "error", Op: "deregister", Detail: err.Error()})
			return
		}
	}
	var q optionList
	q.segments(r.segments)
	c.emit(Event{Kind: "deregister", Path: r.location})
	resp, err := c.conn.p.Do(xctx, &coap.Message{Code: coap.DELETE, Options: q.sorted()})
	if err != nil {
		c.emit(Event{Kind: "error", Op: "deregister", Detail: err.Error()})
		return
	}
	c.emit(Event{Kind: "deregister", Code: coap.CodeString(resp.Code), Path: r.location})
	c.invalidate()
}

// invalidate forgets the registration: the next step is a Register.
func (c *Client) invalidate() {
	r := &c.reg
	r.location, r.segments = "", nil
	c.setStatus(func(s *Status) { s.Registered, s.Location = false, "" })
}

// objectLinks is the Register payload: the root with the content format
// the client prefers, then every object instance (objects without one on
// their own), never /0 (6.2.1).
func (c *Client) objectLinks(version string) []byte {
	c.objCall <- struct{}{} // the objects are asked one call at a time
	defer func() { <-c.objCall }()
	b, err := c.objectsSafe(func() ([]byte, error) { return c.objectLinksLocked(version), nil })
	if err != nil {
		return content.AppendLinks(nil, []content.Link{{Target: "/", Params: []content.LinkParam{{Name: "rt", Value: "oma.lwm2m", Quoted: true}}}})
	}
	return b
}

// objectLinksLocked is objectLinks with c.objCall held.
func (c *Client) objectLinksLocked(version string) []byte {
	root := content.Link{Target: "/", Params: []content.LinkParam{{Name: "rt", Value: "oma.lwm2m", Quoted: true}}}
	if version != "1.0" {
		root.Params = append(root.Params, content.LinkParam{Name: "ct", Value: strconv.Itoa(int(content.SenMLJSON))})
	}
	links := []content.Link{root}
	for _, o := range c.objects {
		var params []content.LinkParam
		if v := o.Version(); v != "" {
			params = append(params, content.LinkParam{Name: "ver", Value: v})
		}
		insts := o.Instances()
		if len(insts) == 0 {
			links = append(links, content.Link{Target: content.ObjectPath(o.ID()).String(), Params: params})
			continue
		}
		for i, inst := range insts {
			l := content.Link{Target: content.InstancePath(o.ID(), inst).String()}
			if i == 0 {
				l.Params = params
			}
			links = append(links, l)
		}
	}
	return content.AppendLinks(nil, links)
}

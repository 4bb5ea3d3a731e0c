package lwm2m

import (
	"bytes"
	"context"
	"strconv"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/lwm2m/content"
)

// observation is one Observe the server holds (LwM2M 1.1 6.4, RFC 7641).
type observation struct {
	token    []byte
	path     content.Path
	object   Object
	accept   []byte // the Accept option of the Observe, if any (its value)
	lastSent time.Time
	dirty    bool       // the value changed since lastSent
	pending  []snapshot // values as they were when they changed, to send in order
}

// snapshot is a notification's content, taken when the value changed.
type snapshot struct {
	format  content.Format
	payload []byte
}

// maxPending bounds the snapshots an observation keeps between two sends.
const maxPending = 32

// maxObservations bounds the observations a server holds; beyond it an
// Observe is answered as a Read, without the Observe option (RFC 7641
// 4.1: the server did not add the observer).
const maxObservations = 256

// storedNote is a notification that fell due while offline.
type storedNote struct {
	token   []byte
	format  content.Format
	payload []byte
}

// observe registers (Observe 0) or cancels (Observe 1) an observation and
// answers with the current value.
func (c *Client) observe(req *coap.Message, o Object, path content.Path, obs uint32) coap.Message {
	resp, _ := c.encodeRead(req, o, path)
	c.obsMu.Lock()
	defer c.obsMu.Unlock()
	key := string(req.Token)
	if obs == 1 || resp.Code != coap.Content {
		delete(c.obs, key)
		return resp
	}
	if obs != 0 {
		return coap.Message{Code: coap.BadRequest}
	}
	if _, known := c.obs[key]; !known && len(c.obs) >= maxObservations {
		return resp
	}
	ob := &observation{token: bytes.Clone(req.Token), path: path, object: o, lastSent: time.Now()}
	if a, ok := coap.Bytes(req.Options, optAccept); ok {
		ob.accept = bytes.Clone(a)
	}
	c.obs[key] = ob
	c.obsSeq++
	var opts optionList
	opts = append(opts, resp.Options...)
	opts.uint(coap.Observe, c.obsSeq&0xffffff)
	resp.Options = opts.sorted()
	c.poke() // a pmax timer to set
	return resp
}

// changedTo is Changed with the new value of a resource: an observation
// of exactly that resource whose pmin has passed keeps the value as it is
// now, so that every change is notified even when the next one follows at
// once; an observation of anything above it is notified at its next
// chance, with the value then.
func (c *Client) changedTo(p content.Path, v content.Value) {
	now := time.Now()
	c.obsMu.Lock()
	n := 0
	for _, ob := range c.obs {
		if !ob.path.Contains(p) && !p.Contains(ob.path) {
			continue
		}
		n++
		pmin, _ := c.periods(ob.path)
		if ob.path != p || now.Before(ob.lastSent.Add(pmin)) {
			ob.dirty = true
			continue
		}
		f := content.Text
		if a, ok := coap.Uint(coap.Options{{ID: optAccept, Value: ob.accept}}, optAccept); ok && ob.accept != nil {
			f = content.Format(a)
		}
		payload, err := content.Encode(f, p, []content.Record{{Path: p, Value: v}})
		if err != nil {
			ob.dirty = true
			continue
		}
		if len(ob.pending) == maxPending {
			ob.pending = ob.pending[1:]
		}
		ob.pending = append(ob.pending, snapshot{f, payload})
		ob.lastSent, ob.dirty = now, false
	}
	c.obsMu.Unlock()
	if n > 0 {
		c.poke()
	}
}

// observerReset cancels the observation whose notification the server
// reset (RFC 7641 3.6).
func (c *Client) observerReset(token []byte) {
	c.obsMu.Lock()
	_, ok := c.obs[string(token)]
	delete(c.obs, string(token))
	c.obsMu.Unlock()
	if ok { // not under obsMu: OnEvent may call Changed
		c.emit(Event{Kind: "notify", Detail: "the server reset a notification: observation cancelled"})
	}
}

// dropObservations forgets every observation and stored notification (a
// new registration: the server dropped them).
func (c *Client) dropObservations() {
	c.obsMu.Lock()
	defer c.obsMu.Unlock()
	clear(c.obs)
	c.stored = nil
}

// periods are the effective pmin and pmax of a path: the attributes on the
// resource, else its instance, else its object, else the server's defaults
// (/1/0/2 and /1/0/3). pmax 0 means none.
func (c *Client) periods(p content.Path) (pmin, pmax time.Duration) {
	pmin, pmax = c.server.defaultPeriods()
	gotMin, gotMax := false, false
	for q := p; q.Len() > 0 && !(gotMin && gotMax); q = q.Parent() {
		a, ok := c.attrs[q]
		if !ok {
			continue
		}
		if a.hasPmin && !gotMin {
			pmin, gotMin = a.pmin, true
		}
		if a.hasPmax && !gotMax {
			pmax, gotMax = a.pmax, true
		}
	}
	return pmin, pmax
}

// due reports when an observation's next notification is due (zero: not
// scheduled), with obsMu held.
func (c *Client) due(ob *observation) time.Time {
	if len(ob.pending) > 0 {
		return ob.lastSent
	}
	pmin, pmax := c.periods(ob.path)
	var at time.Time
	if ob.dirty {
		at = ob.lastSent.Add(pmin)
	}
	if pmax > 0 && pmax >= pmin {
		at = earliest(at, ob.lastSent.Add(pmax))
	}
	return at
}

// nextNotification is when the next notification falls due.
func (c *Client) nextNotification(now time.Time) time.Time {
	c.obsMu.Lock()
	defer c.obsMu.Unlock()
	var next time.Time
	for _, ob := range c.obs {
		next = earliest(next, c.due(ob))
	}
	return next
}

// dueNote is an observation to notify now: its snapshots, or (none) its
// value as it is now.
type dueNote struct {
	ob    *observation
	snaps []snapshot
}

// dueNow takes the observations whose notification is due, marking them
// sent.
func (c *Client) dueNow(now time.Time) []dueNote {
	c.obsMu.Lock()
	defer c.obsMu.Unlock()
	var out []dueNote
	for _, ob := range c.obs {
		if at := c.due(ob); !at.IsZero() && !at.After(now) {
			out = append(out, dueNote{ob, ob.pending})
			if len(ob.pending) == 0 {
				ob.lastSent = now
			}
			ob.pending, ob.dirty = nil, false
		}
	}
	return out
}

// messages are the notifications of a due observation, without their
// Observe numbers; none when it can no longer be read (it ends).
func (c *Client) messages(d dueNote) []*coap.Message {
	if len(d.snaps) == 0 {
		m := c.notification(d.ob)
		if m.Code != coap.Content {
			c.forget(d.ob)
		}
		return []*coap.Message{m}
	}
	out := make([]*coap.Message, len(d.snaps))
	for i, s := range d.snaps {
		var opts optionList
		opts.uint(coap.ContentFormat, uint32(s.format))
		out[i] = &coap.Message{Code: coap.Content, Token: d.ob.token, Options: coap.Options(opts), Payload: s.payload}
	}
	return out
}

// numbered adds the next Observe number to a notification.
func (c *Client) numbered(m *coap.Message) *coap.Message {
	if !coap.IsSuccess(m.Code) {
		return m // an error ends the observation: no Observe option (RFC 7641 3.2)
	}
	c.obsMu.Lock()
	c.obsSeq++
	seq := c.obsSeq & 0xffffff
	c.obsMu.Unlock()
	opts := optionList(m.Options)
	opts.uint(coap.Observe, seq)
	m.Options = opts.sorted()
	return m
}

// notification builds the notification of an observation: its current
// value, or the error that ends it when it can no longer be read.
func (c *Client) notification(ob *observation) *coap.Message {
	req := &coap.Message{}
	if ob.accept != nil {
		req.Options = coap.Options{{ID: optAccept, Value: ob.accept}}
	}
	c.objCall <- struct{}{}
	resp, _ := c.encodeRead(req, ob.object, ob.path)
	<-c.objCall
	if resp.Code != coap.Content {
		return &coap.Message{Code: resp.Code, Token: ob.token} // ends it, and tells the observer
	}
	return &coap.Message{Code: coap.Content, Token: ob.token, Options: resp.Options, Payload: resp.Payload}
}

// notify sends the notifications due now; it reports whether it sent any
// (or woke up to do so). Asleep in queue mode, it wakes up first.
func (c *Client) notify(ctx context.Context, now time.Time) bool {
	due := c.dueNow(now)
	c.obsMu.Lock()
	stored := len(c.stored)
	c.obsMu.Unlock()
	if len(due) == 0 && stored == 0 {
		return false
	}
	if c.reg.state == Asleep && !c.wakeUp(ctx) {
		return true
	}
	c.flushStored(ctx)
	for _, d := range due {
		for _, m := range c.messages(d) {
			if err := c.conn.p.Notify(ctx, c.numbered(m), false); err != nil {
				c.emit(Event{Kind: "error", Op: "notify", Path: d.ob.path.String(), Detail: err.Error()})
				continue
			}
			c.emit(Event{Kind: "notify", Path: d.ob.path.String()})
		}
	}
	c.reg.active = time.Now()
	return true
}

// storeDue keeps the notifications that fall due while offline, if /1/0/6
// says so (else they are dropped); the oldest go beyond the bound.
func (c *Client) storeDue(now time.Time) {
	due := c.dueNow(now)
	if len(due) == 0 || !c.server.storing() {
		return
	}
	for _, d := range due {
		for _, m := range c.messages(d) {
			cf, _ := coap.Uint(m.Options, coap.ContentFormat)
			c.obsMu.Lock()
			c.stored = append(c.stored, storedNote{token: d.ob.token, format: content.Format(cf), payload: m.Payload})
			if over := len(c.stored) - c.cfg.StoredNotifications; over > 0 {
				c.stored = c.stored[over:]
			}
			c.obsMu.Unlock()
		}
	}
}

// flushStored sends the notifications stored while offline, oldest first.
func (c *Client) flushStored(ctx context.Context) {
	c.obsMu.Lock()
	stored := c.stored
	c.stored = nil
	c.obsMu.Unlock()
	for _, n := range stored {
		var opts optionList
		opts.uint(coap.ContentFormat, uint32(n.format))
		m := &coap.Message{Code: coap.Content, Token: n.token, Options: coap.Options(opts), Payload: n.payload}
		if err := c.conn.p.Notify(ctx, c.numbered(m), false); err != nil {
			c.emit(Event{Kind: "error", Op: "notify", Detail: err.Error()})
			return
		}
	}
	if len(stored) > 0 {
		c.emit(Event{Kind: "notify", Detail: "stored notifications sent: " + strconv.Itoa(len(stored))})
	}
}

func (c *Client) forget(ob *observation) {
	c.obsMu.Lock()
	delete(c.obs, string(ob.token))
	c.obsMu.Unlock()
}

package lwm2m

import (
	"bytes"
	"context"
	"slices"
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
	lastEval time.Time // the last time its value was read to decide (epmin, epmax)
	lastCon  time.Time // the last confirmable notification (or the Observe): one a day
	last     float64   // the numeric value last notified, for gt, lt and st
	hasLast  bool      // last is set
	ticks    bool      // Current Time (/3/0/13): it changes every second
	// composite are the paths of an Observe-Composite (path is then the
	// root), whose notifications are in compositeFormat.
	composite       []content.Path
	compositeFormat content.Format
	dirty           bool       // the value changed since lastSent
	pending         []snapshot // values as they were when they changed, to send in order
}

// confirmableEvery is how often a notification goes out confirmable, so
// that an observer that is gone is found out (RFC 7641 4.5: at least
// every 24 hours).
const confirmableEvery = 24 * time.Hour

// currentTime is /3/0/13, whose value changes every second by itself.
var currentTime = content.ResourcePath(3, 0, resCurrentTime)

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
	// The value for gt, lt and st, read before obsMu: no object is called
	// with it held (an object's Read may call Changed, and /5's moves take
	// obsMu under /5's lock).
	var last float64
	var hasLast bool
	if recs, err := collect(o, path); err == nil && len(recs) == 1 && obs == 0 {
		last, hasLast = number(recs[0].Value)
	}
	ob := &observation{path: path, object: o, ticks: path == currentTime, last: last, hasLast: hasLast}
	if a, ok := coap.Bytes(req.Options, optAccept); ok {
		ob.accept = bytes.Clone(a)
	}
	return c.startObservation(req, ob, obs, resp)
}

// startObservation registers ob (Observe 0) under the request's token, or
// cancels the token's observation (Observe 1, or a read that failed), and
// returns resp, the value now, with the Observe option when ob is kept.
// Beyond maxObservations an Observe is answered as a Read (RFC 7641 4.1).
func (c *Client) startObservation(req *coap.Message, ob *observation, obs uint32, resp coap.Message) coap.Message {
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
	now := time.Now()
	ob.token = bytes.Clone(req.Token)
	ob.lastSent, ob.lastEval, ob.lastCon = now, now, now
	if c.obs == nil { // made on first use: an unobserved client has none
		c.obs = make(map[string]*observation)
	}
	c.obs[key] = ob
	c.obsSeq++
	opts := optionList(slices.Clone(resp.Options))
	opts.uint(coap.Observe, c.obsSeq&0xffffff)
	resp.Options = opts.sorted()
	c.poke() // a pmax timer to set
	return resp
}

// covers reports whether a change at p concerns the observation.
func (ob *observation) covers(p content.Path) bool {
	if ob.composite != nil {
		for _, q := range ob.composite {
			if q.Contains(p) || p.Contains(q) {
				return true
			}
		}
		return false
	}
	return ob.path.Contains(p) || p.Contains(ob.path)
}

// changedTo is Changed with the new value of a resource: an observation
// of exactly that resource whose pmin has passed keeps the value as it is
// now, so that every change is notified even when the next one follows at
// once; an observation of anything above it is notified at its next
// chance, with the value then.
func (c *Client) changedTo(p content.Path, v content.Value) {
	for _, s := range c.sessions() {
		s.changedToHere(p, v)
	}
}

// changedToHere is changedTo for this session's observers.
func (c *Client) changedToHere(p content.Path, v content.Value) {
	now := time.Now()
	c.obsMu.Lock()
	n := 0
	for _, ob := range c.obs {
		if !ob.covers(p) {
			continue
		}
		n++
		if ob.path != p || now.Before(ob.lastSent.Add(c.effective(ob.path).pmin)) {
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

// due reports when an observation's next notification is due (zero: not
// scheduled), with obsMu held: at pmin after a change (not before epmin
// after the last evaluation), at pmax in any case, and, for a value under
// change conditions, at epmax to read it again. Current Time changes every
// second: it is due every pmin, a second at least.
func (c *Client) due(ob *observation) time.Time {
	if len(ob.pending) > 0 {
		return ob.lastSent
	}
	a := c.effective(ob.path)
	var at time.Time
	if ob.dirty || ob.ticks {
		pmin := a.pmin
		if ob.ticks {
			pmin = max(pmin, time.Second)
		}
		at = ob.lastSent.Add(pmin)
		if a.epmin > 0 {
			at = latest(at, ob.lastEval.Add(a.epmin))
		}
	}
	if a.pmax > 0 && a.pmax >= a.pmin {
		at = earliest(at, ob.lastSent.Add(a.pmax))
	}
	if a.conditions() && a.epmax > 0 {
		at = earliest(at, ob.lastEval.Add(a.epmax))
	}
	return at
}

// latest is the later of two times.
func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
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
// value as it is now, which its change conditions may hold back.
type dueNote struct {
	ob     *observation
	snaps  []snapshot
	attrs  attributes // the effective attributes
	byPmax bool       // pmax has passed: notified whatever the conditions say
}

// dueNow takes the observations whose notification is due. Those sent
// whatever their value are marked sent; those under change conditions are
// marked when messages decides to send them.
func (c *Client) dueNow(now time.Time) []dueNote {
	c.obsMu.Lock()
	defer c.obsMu.Unlock()
	var out []dueNote
	for _, ob := range c.obs {
		if at := c.due(ob); !at.IsZero() && !at.After(now) {
			a := c.effective(ob.path)
			d := dueNote{ob: ob, snaps: ob.pending, attrs: a, byPmax: a.pmax > 0 && !now.Before(ob.lastSent.Add(a.pmax))}
			out = append(out, d)
			if len(ob.pending) == 0 && (d.byPmax || !a.conditions()) {
				ob.lastSent = now
			}
			ob.lastEval = now
			ob.pending, ob.dirty = nil, false
		}
	}
	return out
}

// messages are the notifications of a due observation, without their
// Observe numbers: none when its change conditions hold it back, or when
// it can no longer be read (it ends, with the error's notification).
func (c *Client) messages(d dueNote) []*coap.Message {
	if len(d.snaps) == 0 {
		m, v, numericValue := c.notification(d.ob)
		if m.Code != coap.Content {
			c.forget(d.ob)
			return []*coap.Message{m}
		}
		c.obsMu.Lock()
		defer c.obsMu.Unlock()
		if numericValue {
			if !d.byPmax && !d.attrs.meets(d.ob.last, v, d.ob.hasLast) {
				return nil
			}
			d.ob.last, d.ob.hasLast = v, true
		}
		d.ob.lastSent = time.Now()
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
// value (and that value as a number, when it is one numeric value), or the
// error that ends it when it can no longer be read.
func (c *Client) notification(ob *observation) (m *coap.Message, v float64, numericValue bool) {
	req := &coap.Message{}
	if ob.accept != nil {
		req.Options = coap.Options{{ID: optAccept, Value: ob.accept}}
	}
	var resp coap.Message
	c.objCall <- struct{}{}
	_, perr := c.objectsSafe(func() ([]byte, error) {
		if ob.composite != nil {
			resp = c.readComposite(ob.composite, ob.compositeFormat)
			return nil, nil
		}
		resp, _ = c.encodeRead(req, ob.object, ob.path)
		if resp.Code == coap.Content && ob.path.Len() >= 3 {
			if recs, err := collect(ob.object, ob.path); err == nil && len(recs) == 1 {
				v, numericValue = number(recs[0].Value)
			}
		}
		return nil, nil
	})
	<-c.objCall
	if perr != nil {
		resp = coap.Message{Code: coap.InternalServerError}
	}
	if resp.Code != coap.Content {
		return &coap.Message{Code: resp.Code, Token: ob.token}, 0, false // ends it, and tells the observer
	}
	return &coap.Message{Code: coap.Content, Token: ob.token, Options: resp.Options, Payload: resp.Payload}, v, numericValue
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
			c.send1(ctx, d.ob, c.numbered(m))
		}
	}
	c.reg.active = time.Now()
	return true
}

// send1 sends one notification: non-confirmable, but confirmable once a
// day (RFC 7641 4.5), so that an observer that is gone is found out: a
// Reset or no acknowledgement ends the observation.
func (c *Client) send1(ctx context.Context, ob *observation, m *coap.Message) {
	c.obsMu.Lock()
	confirmable := time.Since(ob.lastCon) >= confirmableEvery
	c.obsMu.Unlock()
	if !confirmable {
		if err := c.conn.p.Notify(ctx, m, false); err != nil {
			c.emit(Event{Kind: "error", Op: "notify", Path: ob.path.String(), Detail: err.Error()})
			return
		}
		c.emit(Event{Kind: "notify", Path: ob.path.String()})
		return
	}
	xctx, done := c.exchangeCtx(ctx)
	err := c.conn.p.Notify(xctx, m, true)
	cut := xctx.Err() != nil
	done()
	switch {
	case err == nil:
		c.obsMu.Lock()
		ob.lastCon = time.Now()
		c.obsMu.Unlock()
		c.emit(Event{Kind: "notify", Path: ob.path.String(), Detail: "confirmable"})
	case cut:
		// Offline mode or Reconnect: the observer is not shown gone.
	default:
		c.forget(ob)
		c.emit(Event{Kind: "notify", Path: ob.path.String(), Detail: "a confirmable notification failed (" + err.Error() + "): observation cancelled"})
	}
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

package lwm2m

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/client"
	"github.com/tether-iot/tether/lwm2m/content"
)

// ErrSendMuted reports a Send while the server has muted it (/1/0/23 Mute
// Send is true).
var ErrSendMuted = errors.New("lwm2m: Send is muted by the server (/1/0/23)")

// report is a Send's payload, waiting for the client to be registered and
// online.
type report struct {
	payload []byte
	paths   string // for events
}

// Send reports the current values of paths (resources, instances or
// objects) to the server unasked (LwM2M 1.1 6.4.4: POST /dp, SenML CBOR).
// The values are read now; the report goes out at the client's next step
// when it is registered and online, and otherwise is kept, with the
// notifications stored while offline (at most Config.StoredNotifications
// in all, the oldest dropped), and sent once it is. Send returns once the
// report is kept; events say when it is sent or refused. It returns
// ErrSendMuted while /1/0/23 says so, and an error for a path that cannot
// be read.
func (c *Client) Send(ctx context.Context, paths ...content.Path) error {
	if len(paths) == 0 {
		return fmt.Errorf("%w: Send of nothing", ErrBadRequest)
	}
	if c.server.muted() {
		return ErrSendMuted
	}
	var recs []content.Record
	c.objCall <- struct{}{}
	for _, p := range paths {
		o := c.byID[p.Object()]
		if o == nil || p.Len() == 0 {
			<-c.objCall
			return fmt.Errorf("%w: %v", ErrNotFound, p)
		}
		rs, err := collect(o, p)
		if err != nil {
			<-c.objCall
			return fmt.Errorf("%v: %w", p, err)
		}
		recs = append(recs, rs...)
	}
	<-c.objCall
	payload, err := content.Encode(content.SenMLCBOR, content.Path{}, recs)
	if err != nil {
		return err
	}
	names := ""
	for i, p := range paths {
		if i > 0 {
			names += ","
		}
		names += p.String()
	}
	c.obsMu.Lock()
	c.reports = append(c.reports, report{payload: payload, paths: names})
	if over := len(c.reports) + len(c.stored) - c.cfg.StoredNotifications; over > 0 {
		c.reports = c.reports[min(over, len(c.reports)):]
	}
	c.obsMu.Unlock()
	c.poke()
	return nil
}

// sendReports sends the reports kept, oldest first, while registered and
// online; it reports whether it sent any (or woke up to). A report the
// server refuses is dropped (and said); one cut short stays for later.
func (c *Client) sendReports(ctx context.Context) bool {
	c.obsMu.Lock()
	n := len(c.reports)
	c.obsMu.Unlock()
	if n == 0 {
		return false
	}
	if c.reg.state == Asleep && !c.wakeUp(ctx) {
		return true
	}
	for {
		c.obsMu.Lock()
		if len(c.reports) == 0 {
			c.obsMu.Unlock()
			break
		}
		rep := c.reports[0]
		c.obsMu.Unlock()
		var q optionList
		q.path("/dp")
		q.uint(coap.ContentFormat, uint32(content.SenMLCBOR))
		xctx, done := c.exchangeCtx(ctx)
		resp, err := c.conn.p.Do(xctx, &coap.Message{Code: coap.POST, Options: q.sorted(), Payload: rep.payload})
		cut := xctx.Err() != nil
		done()
		if cut {
			return true // offline mode, Reconnect or Stop: kept
		}
		c.obsMu.Lock()
		if len(c.reports) > 0 {
			c.reports = c.reports[1:]
		}
		c.obsMu.Unlock()
		switch {
		case err != nil:
			c.emit(Event{Kind: "error", Op: "send", Path: rep.paths, Detail: err.Error()})
		case !coap.IsSuccess(resp.Code):
			c.emit(Event{Kind: "error", Op: "send", Path: rep.paths, Code: coap.CodeString(resp.Code),
				Detail: (&client.ResponseError{Code: resp.Code, Diagnostic: string(resp.Payload)}).Error()})
		default:
			c.emit(Event{Kind: "send", Path: rep.paths, Code: coap.CodeString(resp.Code)})
		}
	}
	c.reg.active = time.Now()
	return true
}

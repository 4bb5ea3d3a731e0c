package lwm2m

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/client"
	"github.com/tether-iot/tether/lwm2m/content"
)

// ErrSendMuted reports a Send while the server has muted it (/1/0/23 Mute
// Send is true).
var ErrSendMuted = errors.New("lwm2m: Send is muted by the server (/1/0/23)")

// report is a Send's payload, waiting for the client to be registered and
// online; or its paths, to read when it goes out, when the objects were
// busy when Send was called (from an Object method, say).
type report struct {
	payload []byte
	paths   []content.Path // when payload is nil
	names   string         // for events
}

// readReport reads paths for a Send; c.objCall is held.
func (c *Client) readReport(paths []content.Path) ([]byte, error) {
	var recs []content.Record
	for _, p := range paths {
		rs, err := collect(c.object(p.Object()), p)
		if err != nil {
			return nil, fmt.Errorf("%v: %w", p, err)
		}
		recs = append(recs, rs...)
	}
	return content.Encode(content.SenMLCBOR, content.Path{}, recs)
}

// Send reports the current values of paths (resources, instances or
// objects) to the server unasked (LwM2M 1.1 6.4.4: POST /dp, SenML CBOR).
// The values are read now (when the objects are being asked for something
// else at that moment, as when an Object's Execute calls Send, they are
// read when the report goes out); the report goes out at the client's next step
// when it is registered and online, and otherwise is kept, with the
// notifications stored while offline (at most Config.StoredNotifications
// in all, the oldest dropped), and sent once it is. Send returns once the
// report is kept; events say when it is sent or refused. It returns
// ErrSendMuted while /1/0/23 says so, ErrNotFound for an object the client
// does not have, an error for a path that cannot be read, and ctx's error
// if it ends first.
func (c *Client) Send(ctx context.Context, paths ...content.Path) error {
	if len(paths) == 0 {
		return fmt.Errorf("%w: Send of nothing", ErrBadRequest)
	}
	if c.server.muted() {
		return ErrSendMuted
	}
	for _, p := range paths {
		if p.Len() == 0 || c.object(p.Object()) == nil {
			return fmt.Errorf("%w: %v", ErrNotFound, p)
		}
	}
	names := ""
	for i, p := range paths {
		if i > 0 {
			names += ","
		}
		names += p.String()
	}
	rep := report{names: names}
	select {
	case c.objCall <- struct{}{}:
		payload, err := c.objectsSafe(func() ([]byte, error) { return c.readReport(paths) })
		<-c.objCall
		if err != nil {
			return err
		}
		rep.payload = payload
	case <-ctx.Done():
		return ctx.Err()
	default:
		// The objects are being asked for something (perhaps by the very
		// Execute that calls Send): read when the report goes out.
		rep.paths = slices.Clone(paths)
	}
	c.obsMu.Lock()
	c.reports = append(c.reports, rep)
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
		if rep.payload == nil {
			c.objCall <- struct{}{}
			payload, err := c.objectsSafe(func() ([]byte, error) { return c.readReport(rep.paths) })
			<-c.objCall
			if err != nil {
				c.obsMu.Lock()
				c.reports = c.reports[1:]
				c.obsMu.Unlock()
				c.emit(Event{Kind: "error", Op: "send", Path: rep.names, Detail: err.Error()})
				continue
			}
			rep.payload = payload
		}
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
			c.emit(Event{Kind: "error", Op: "send", Path: rep.names, Detail: err.Error()})
		case !coap.IsSuccess(resp.Code):
			c.emit(Event{Kind: "error", Op: "send", Path: rep.names, Code: coap.CodeString(resp.Code),
				Detail: (&client.ResponseError{Code: resp.Code, Diagnostic: string(resp.Payload)}).Error()})
		default:
			c.emit(Event{Kind: "send", Path: rep.names, Code: coap.CodeString(resp.Code)})
		}
	}
	c.reg.active = time.Now()
	return true
}

package peer

import (
	"context"

	"github.com/tether-iot/tether/coap"
)

// InFlight reports how many exchanges the Peer still tracks, by message ID
// and by token: both are zero once every exchange has ended.
func (p *Peer) InFlight() (pending, byToken int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pending), len(p.byToken)
}

// Delivered is what the Peer handed an exchange begun with Begin.
type Delivered struct {
	Acks, Resets, Responses, Closed int
	Response                        *coap.Message // the last one
}

// Begin registers m as Do (request) or a confirmable Notify does, without
// sending it or waiting: the fuzz target matches datagrams against an
// exchange in flight without a goroutine per run. The function returned
// reports what the exchange was handed so far and, once that ends it,
// forgets it as the waiting exchange would on returning.
func (p *Peer) Begin(m *coap.Message, request bool) (func() Delivered, error) {
	m.Type = coap.Confirmable
	x, _, err := p.begin(context.Background(), m, request)
	if err != nil {
		return nil, err
	}
	var d Delivered
	return func() Delivered {
		for {
			select {
			case ev := <-x.events:
				switch ev.kind {
				case evAck:
					d.Acks++
				case evReset:
					d.Resets++
				case evResponse:
					d.Responses++
					d.Response = ev.resp
				case evClosed:
					d.Closed++
				}
			default:
				if d.Resets+d.Responses+d.Closed > 0 || (d.Acks > 0 && !request) {
					p.forget(x)
				}
				return d
			}
		}
	}, nil
}

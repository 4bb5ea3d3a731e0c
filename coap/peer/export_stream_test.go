package peer

import (
	"context"

	"github.com/tether-iot/tether/coap"
)

// BeginStream registers a request as Do does, without sending it or
// waiting, so the fuzz target can match frames against an exchange in
// flight without a goroutine per run. It returns the request's token and
// a function that reports the response delivered so far, if any.
func (s *Stream) BeginStream() ([]byte, func() *coap.Message, error) {
	tok, x, err := s.begin(context.Background(), false)
	if err != nil {
		return nil, nil, err
	}
	return []byte(tok), func() *coap.Message {
		select {
		case m := <-x.ch:
			s.forget(tok, x)
			return m
		default:
			return nil
		}
	}, nil
}

// StreamInFlight reports how many exchanges the Stream still tracks.
func (s *Stream) StreamInFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byToken)
}

package lwm2m

import (
	"errors"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/lwm2m/content"
)

// Errors an Object returns to have the server's request answered with a
// given code.
var (
	// ErrNotFound: no such instance or resource (4.04 Not Found).
	ErrNotFound = errors.New("lwm2m: not found")
	// ErrMethodNotAllowed: the operation is not allowed on this target,
	// or not in the object's current state (4.05 Method Not Allowed).
	ErrMethodNotAllowed = errors.New("lwm2m: operation not allowed")
	// ErrBadRequest: the value is not acceptable (4.00 Bad Request).
	ErrBadRequest = errors.New("lwm2m: bad request")
)

// Errors of the client.
var (
	// ErrConfig reports a configuration that cannot work; New returns it
	// wrapped with the reason.
	ErrConfig = errors.New("lwm2m: invalid configuration")
	// ErrStopped reports an operation on a client that has stopped.
	ErrStopped = errors.New("lwm2m: client stopped")
)

// codeFor is the response code for an error of the data model.
func codeFor(err error) coap.Code {
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, content.ErrNotFound):
		return coap.NotFound
	case errors.Is(err, ErrMethodNotAllowed):
		return coap.MethodNotAllowed
	case errors.Is(err, ErrBadRequest), errors.Is(err, content.ErrMalformed), errors.Is(err, content.ErrBadPath):
		return coap.BadRequest
	case errors.Is(err, content.ErrUnsupported):
		return coap.NotAcceptable
	}
	return coap.InternalServerError
}

package lwm2m

import (
	"fmt"
	"runtime/debug"
)

// objectsSafe runs f, which calls the product's objects, and turns a panic
// in them into an error (logged with its stack), as the reader's requests
// do (package peer answers them 5.00): one bad object does not take the
// device down from the loop either.
func (c *Client) objectsSafe(f func() ([]byte, error)) (b []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("lwm2m: an object panicked", "panic", r, "stack", string(debug.Stack()))
			b, err = nil, fmt.Errorf("%w: an object panicked: %v", errObjectPanic, r)
		}
	}()
	return f()
}

// errObjectPanic is what a call into an object that panicked returns.
var errObjectPanic = fmt.Errorf("lwm2m: internal error")

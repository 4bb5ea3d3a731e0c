package lwm2m

import (
	"slices"

	"github.com/tether-iot/tether/lwm2m/content"
)

// Operations is what the server may do with a resource.
type Operations uint8

// The operations of the OMA object registry's "Operations" column.
const (
	OpRead Operations = 1 << iota
	OpWrite
	OpExecute

	OpReadWrite = OpRead | OpWrite
)

// ResourceDef describes a resource of an object instance.
type ResourceDef struct {
	ID       uint16
	Ops      Operations
	Type     content.Type // content.TypeNone for an executable resource
	Multiple bool         // a multiple-instance resource
	// Mandatory marks a writable resource that a replace-Write of its
	// instance (PUT /O/I) must carry: one without it is refused with
	// 4.00, before anything is written.
	Mandatory bool
}

// Object is an LwM2M object the client exposes to its server: its
// instances and their resources. A product adds its own by implementing it
// (see the package example) and listing it in Config.Objects; the client
// checks operations and paths against Resources before calling Read, Write
// or Execute, so an implementation only serves what it declared.
//
// Methods are called from the client's goroutines, one at a time per
// client, with none of the client's locks held; they must answer without
// waiting for the client itself (EnterOffline, Stop and the other
// commands wait for the client's loop, which may be waiting for its turn
// to read an object). When a value changes on the device's side, the
// product calls Client.Changed with its path (which never waits), so
// that observers are notified.
//
// Errors returned are answered with their CoAP code: ErrNotFound (4.04),
// ErrMethodNotAllowed (4.05), ErrBadRequest (4.00); any other error is
// 5.00 Internal Server Error.
type Object interface {
	// ID is the object's ID in the OMA registry (3 for Device).
	ID() uint16
	// Version is the object's version when it is not "1.0", else "".
	Version() string
	// Instances lists the instance IDs, in increasing order.
	Instances() []uint16
	// Resources lists the resources present in an instance, in
	// increasing ID order.
	Resources(instance uint16) []ResourceDef
	// Read returns a resource's value: one record for a single resource
	// (path /O/I/R), one per instance for a multiple resource (paths
	// /O/I/R/RI; none when it has no instances).
	Read(instance, resource uint16) ([]content.Record, error)
	// Write sets a resource from records of its path (one, or the
	// instances of a multiple resource, which replace the old ones).
	Write(instance, resource uint16, recs []content.Record) error
	// Execute runs an executable resource with the request's arguments
	// (LwM2M 1.1 5.4.5: a text such as "0='abc',1"; often empty).
	Execute(instance, resource uint16, args []byte) error
}

// Resetter is an optional capability of an Object. A replace-Write of an
// instance (PUT /O/I, LwM2M 1.1 6.3.3) replaces the instance with what it
// carries: after writing what it carries, the client calls Reset for every
// writable resource it leaves out (Mandatory ones are never left out), so
// that the resource returns to its default or ceases to have a value. An
// Object without Reset keeps the values a replace leaves out, as a
// partial update (POST) would.
type Resetter interface {
	Reset(instance, resource uint16) error
}

// resourceDef finds a resource's definition in an instance.
func resourceDef(o Object, inst, res uint16) (ResourceDef, bool) {
	defs := o.Resources(inst)
	i, ok := slices.BinarySearchFunc(defs, res, func(d ResourceDef, id uint16) int { return int(d.ID) - int(id) })
	if !ok {
		return ResourceDef{}, false
	}
	return defs[i], true
}

// hasInstance reports whether o has instance inst.
func hasInstance(o Object, inst uint16) bool {
	return slices.Contains(o.Instances(), inst)
}

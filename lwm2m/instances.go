package lwm2m

import (
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/lwm2m/content"
)

// InstanceCreator is an optional capability of an Object with several
// instances: the server may Create one (LwM2M 1.1 6.3.6, POST /O). The
// client checks the records against Resources(instance) (which must
// describe an instance not made yet) and calls Create with the instance ID
// the request names, or, when it names none, the lowest one not in use.
// An instance that exists is refused with 4.00 before Create is called.
type InstanceCreator interface {
	Create(instance uint16, recs []content.Record) error
}

// InstanceDeleter is an optional capability of an Object with several
// instances: the server may Delete one (LwM2M 1.1 6.3.7, DELETE /O/I).
// The observations and attributes of the instance end with it.
type InstanceDeleter interface {
	Delete(instance uint16) error
}

// create serves Create: POST /O with the new instance's resources.
func (c *Client) create(req *coap.Message, o Object, path content.Path) coap.Message {
	cr, ok := o.(InstanceCreator)
	if !ok || path.Len() != 1 {
		return coap.Message{Code: coap.MethodNotAllowed}
	}
	cf, ok := coap.Uint(req.Options, coap.ContentFormat)
	if !ok {
		cf = uint32(content.TLV)
	}
	f := content.Format(cf)
	switch f {
	case content.TLV, content.SenMLJSON, content.SenMLCBOR:
	default:
		return coap.Message{Code: coap.UnsupportedContentFormat}
	}
	// The types of an instance not made yet, from its definitions.
	typeOf := func(p content.Path) (content.Type, bool) {
		if p.Len() < 3 || p.Object() != o.ID() {
			return content.TypeNone, false
		}
		d, ok := resourceDef(o, p.Instance(), p.Resource())
		if !ok || d.Ops&OpExecute != 0 {
			return content.TypeNone, false
		}
		return d.Type, true
	}
	existing := o.Instances()
	recs, err := content.Decode(f, path, req.Payload, typeOf)
	if err != nil && f == content.TLV {
		// Resource TLVs with no instance around them: the client picks.
		recs, err = content.Decode(f, content.InstancePath(o.ID(), freeInstance(existing)), req.Payload, typeOf)
	}
	if err != nil {
		return coap.Message{Code: codeFor(err), Payload: []byte(err.Error())}
	}
	if len(recs) == 0 {
		return coap.Message{Code: coap.BadRequest, Payload: []byte("no resource to create the instance with")}
	}
	inst := recs[0].Path.Instance()
	for _, r := range recs {
		if r.Path.Len() < 3 || r.Path.Instance() != inst {
			return coap.Message{Code: coap.BadRequest, Payload: []byte("a Create makes one instance")}
		}
		if _, ok := resourceDef(o, inst, r.Path.Resource()); !ok {
			return coap.Message{Code: coap.NotFound, Payload: []byte(fmt.Sprintf("no resource %d in /%d", r.Path.Resource(), o.ID()))}
		}
	}
	if slices.Contains(existing, inst) {
		return coap.Message{Code: coap.BadRequest, Payload: []byte(fmt.Sprintf("/%d/%d exists", o.ID(), inst))}
	}
	if err := cr.Create(inst, recs); err != nil {
		return coap.Message{Code: codeFor(err)}
	}
	c.instancesChanged()
	var opts optionList
	opts.str(optLocationPath, strconv.Itoa(int(o.ID())))
	opts.str(optLocationPath, strconv.Itoa(int(inst)))
	return coap.Message{Code: coap.Created, Options: opts.sorted()}
}

// freeInstance is the lowest instance ID not in use.
func freeInstance(used []uint16) uint16 {
	for id := uint16(0); id < content.NoID; id++ {
		if !slices.Contains(used, id) {
			return id
		}
	}
	return content.NoID
}

// remove serves Delete: DELETE /O/I.
func (c *Client) remove(o Object, path content.Path) coap.Message {
	del, ok := o.(InstanceDeleter)
	if !ok || path.Len() != 2 {
		return coap.Message{Code: coap.MethodNotAllowed}
	}
	if err := del.Delete(path.Instance()); err != nil {
		if errors.Is(err, ErrMethodNotAllowed) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrBadRequest) {
			return coap.Message{Code: codeFor(err)}
		}
		return coap.Message{Code: coap.InternalServerError}
	}
	// What was set on or below the instance ends with it: its attributes
	// now, its observations at their next notification (4.04, which
	// tells the observer).
	c.obsMu.Lock()
	for p := range c.attrs {
		if path.Contains(p) {
			delete(c.attrs, p)
		}
	}
	for _, ob := range c.obs {
		if path.Contains(ob.path) {
			ob.dirty = true
		}
	}
	c.obsMu.Unlock()
	c.instancesChanged()
	return coap.Message{Code: coap.Deleted}
}

// instancesChanged asks every server for a Registration Update that
// carries the object links (LwM2M 1.1 6.2.2: the server learns the instances that came or
// went).
func (c *Client) instancesChanged() {
	for _, s := range c.sessions() {
		s.linksChanged.Store(true)
		s.wantUpdate()
	}
}

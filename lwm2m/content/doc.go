// Package content encodes and decodes the LwM2M 1.1 data model in the
// content formats of OMA LwM2M TS 1.1 Core, section 7.4: text/plain (0),
// opaque (42), TLV (11542), SenML JSON (110) and SenML CBOR (112), and
// the CoRE link format (40, RFC 6690) of Register payloads and Discover
// answers.
//
// It is the layer between an LwM2M client's object model and the bytes of
// a CoAP payload: a handler for Read produces [Record]s and calls [Encode]
// with the format the server asked for; a handler for Write calls [Decode]
// with the request's payload and a [TypeOf] that knows the object
// definitions, and gets records whose values already have the resources'
// types. The package knows nothing of CoAP, sockets or the objects
// themselves: it depends on the standard library and
// github.com/fxamacker/cbor/v2 only, and must not import coap, sock or any
// other tether package.
//
// # Data model
//
// A [Path] names the root, an object (/3), an object instance (/3/0), a
// resource (/3/0/1) or a resource instance (/3/0/6/1). Every value is a
// [Record]: a resource path or a resource-instance path and a [Value].
// A multiple resource is the set of records that share its /O/I/R path and
// differ in the fourth id; a single resource is one record at /O/I/R. A
// resource is never both in one payload. Objects and instances are not
// records of their own: they are implied by their resources, so an empty
// instance, or a multiple resource with no instance, is not represented
// (TLV and SenML payloads that hold one decode to no records).
//
// # Errors
//
// Every error wraps one of [ErrBadPath], [ErrMalformed], [ErrUnsupported]
// or [ErrNotFound], with the detail (the path, the offset, what was
// expected) in its message. A CoAP layer maps them to 4.00 Bad Request
// (ErrMalformed, ErrBadPath), 4.04 Not Found (ErrNotFound), and 4.06 Not
// Acceptable for Encode or 4.15 Unsupported Content-Format for Decode
// (ErrUnsupported).
//
// # Limits
//
// Decoders never panic, nest no deeper than the data model does (object
// instance, resource, resource instance), and allocate a bounded multiple
// of the payload's size (about 40 bytes of output per payload byte at
// worst, for TLV records of two bytes each; a test checks 64 with every
// format). Values they return never alias the payload.
package content

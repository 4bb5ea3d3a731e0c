// Package testrig holds the test rigs that more than one package's tests
// use, so that each is written once: random bytes and files, an accept
// counter. It is imported by tests only, never by a package's own code.
//
// It depends on the standard library only, so the tests of every layer,
// the socket contract's included, can import it. A rig that needs one of
// tether's layers lives in a subpackage ranked with that layer, and the
// internal/layers test checks both: testrig/sockrig (echo peers) over the
// socket contract and its suite, testrig/coaprig (tether's file server on
// loopback, clients dialled to it, a log of the blocks a server is asked
// for) over the CoAP layer.
package testrig

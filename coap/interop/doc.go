// Package interop holds tether's interoperability tests against CoAP
// implementations it did not write: libcoap's command-line tools (Debian's
// libcoap3-bin) and go-coap (github.com/plgd-dev/go-coap/v3). It has no
// code of its own; see the tests.
//
// Tests that need a system peer skip with a message when it is missing,
// unless TETHER_REQUIRE_PEERS=1 is set, as CI does.
package interop

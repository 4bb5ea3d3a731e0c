// Package sockkit is the kit for implementing the sock contract: what every
// socket needs and should not write again. Resolution with the contract's
// stickiness and family rules (Candidates, Policy), the common part of
// Connect and Bind (Connect, BindEndpoint), network names (ParseNetwork),
// the host and port checks Connect and Bind make (CheckHost, ParsePort),
// errors of the contract's shape (OpError, UnresolvedAddr, Mark,
// Normalize), and a resolver from a table (StaticResolver).
//
// tether's own sockets (netsock, simnet, the TLS and DTLS layers) are built
// with it, and so can an integrator's: a socket over a modem's AT commands
// resolves with Candidates to get the same stickiness as netsock, and marks
// its stack's errors ("+CME ERROR: 3") with Mark so that callers recognise
// them with errors.Is. A caller of sockets never needs this package.
//
// sockkit depends on package sock, the standard library and (on Windows)
// golang.org/x/sys only; it must never import a socket implementation or
// tether's CoAP, download or command packages.
package sockkit

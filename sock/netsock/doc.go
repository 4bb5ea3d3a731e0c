// Package netsock is tether's production socket: the sock contract over
// Go's net package, for UDP and TCP over IPv4 and IPv6, with every optional
// capability (bind, shutdown keeping the association, the association,
// byte counters, the OS handle, stickiness).
//
//	s, _ := netsock.New("udp", &sock.Config{Preferred: &endpoint})
//	err := s.Connect(ctx, "coap.example", "5683")
//	err = sock.Shutdown(s) // offline: the association stays
//
// Where the platform allows, it uses the OS directly (golang.org/x/sys):
// shutdown(2), a bound UDP socket connected in place, the kernel's path MTU
// and exact datagram truncation on Linux; the portable parts of package net
// elsewhere (platform files named as Go's net names them).
//
// netsock depends on packages sock and sockkit, the standard library and
// golang.org/x/sys only; it must never import tether's CoAP, download or
// command packages.
package netsock

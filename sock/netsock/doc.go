// Package netsock is tether's production socket: the sock contract over
// Go's net package, for UDP and TCP over IPv4 and IPv6, with every optional
// capability (bind, shutdown keeping the association, the association,
// byte counters, the OS handle, stickiness; being told of data on Linux).
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
// # Told of data, on Linux
//
// On Linux a Socket is a sock.ReadNotifier: after NotifyRead(f), a UDP
// socket's owner is told (f is called) when data arrives, and receives
// with a zero timeout until sock.ErrTimeout, so an idle socket holds no
// goroutine: 10,000 idle sockets cost one goroutine in all and about
// 1.3 KiB of heap each, against a goroutine and 7 KiB each with one
// waiting in Receive (BenchmarkIdleSockets). One goroutine in the process
// waits in epoll_wait(2) on an epoll set of its own for every socket that
// has a function; it starts with the first and ends with the last. Each
// registration is one-shot (EPOLLONESHOT): one call, then none until a
// Receive has found the queue empty or reported an error, which re-arms
// it. Connect, Bind, Shutdown and Close register and deregister the OS
// socket under the socket's lock, before its descriptor is closed, and an
// event carries a registration's number rather than the descriptor, so a
// reused descriptor number is never told of another socket's data. The
// runtime's own poller watches the same descriptor in its own set, so
// Receive with a timeout works as before. A TCP socket keeps the function
// and never calls it. Elsewhere a Socket has no NotifyRead, and an owner
// falls back to a goroutine in Receive.
//
// netsock depends on packages sock and sockkit, the standard library and
// golang.org/x/sys only; it must never import tether's CoAP, download or
// command packages.
package netsock

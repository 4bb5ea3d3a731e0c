// Package relay is a UDP relay on loopback that delays, jitters and drops
// datagrams, each direction on its own terms: the fault rig for tests and
// measurements on a real network stack, on machines whose kernel has no
// netem. Command delayrelay is the same relay as a process.
//
// A Relay listens on a loopback address and forwards datagrams between the
// clients that send to it and one server, also on loopback. Each client
// gets a socket of its own towards the server (a mapping, as a NAT keeps
// one), so the server sees one address per client and its replies go back
// to the right client; a mapping idle for Config.Idle is forgotten, and the
// client's next datagram reaches the server from a new port.
//
// In each direction (Up: client to server, Down: server to client), a
// datagram is dropped with probability Link.Loss, or else sent on after
// Link.Delay plus a jitter drawn uniformly from [0, Link.Jitter]. Delays are
// one way: a round trip takes at least Up.Delay + Down.Delay. Unless
// Config.Reorder is set, a datagram never leaves before the previous one of
// its flow (one client, one direction): jitter then stretches the gaps
// between datagrams but keeps their order, as a queueing link does.
//
// Loss and jitter are drawn from one generator per flow, seeded from
// Config.Seed and the flow's number (clients are numbered in the order they
// appear), so the n-th datagram of a flow meets the same fate in every run
// with the same seed, whatever the timing of the other flows.
//
// Everything is bounded: at most Config.MaxQueued datagrams and
// Config.MaxQueuedBytes wait in each direction, and at most
// Config.MaxClients mappings exist; a datagram beyond a bound is dropped
// and counted in Stats.
//
// # Usage
//
//	r, err := relay.Start(relay.Config{
//		Server: srv.LocalAddr().String(), // "127.0.0.1:5683"
//		Up:     relay.Link{Delay: 50 * time.Millisecond, Loss: 0.01},
//		Down:   relay.Link{Delay: 50 * time.Millisecond, Jitter: 10 * time.Millisecond},
//		Seed:   7,
//	})
//	if err != nil { ... }
//	defer r.Close()
//	conn, err := net.Dial("udp", r.Addr().String()) // the client talks to the relay
//
// # How it works
//
// One goroutine reads the clients' datagrams from the listening socket, one
// per mapping reads the server's replies from that mapping's socket. Each
// draws the datagram's fate from its flow's generator and, when it
// survives, hands a copy to the scheduler of its direction: a heap ordered
// by the time the datagram is due (ties in arrival order) and one goroutine
// that sleeps until the earliest is due and sends it. A datagram is never
// sent before it is due, so every delay is a lower bound; how late it leaves
// depends on the machine's timers and load (typically under a millisecond
// on an idle machine).
package delayrelay

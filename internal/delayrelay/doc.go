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
// one way: a round trip takes at least Up.Delay + Down.Delay.
//
// A direction with a Link.Rate is a narrow link as well, shared by all the
// clients: it serialises one datagram at a time in arrival order, each
// taking (its length + Link.Overhead) × 8 / Rate, and the delay begins
// when its last bit is out; datagrams that arrive while it is busy wait in
// a drop-tail queue of Link.Queue bytes, and one that does not fit is
// dropped (DirStats.Dropped). A datagram that Loss drops has still taken
// its turn on the link, as one lost on the air has. So a burst of n
// datagrams of s bytes at rate R arrives spread over n·s·8/R, and a queue
// of Q bytes holds about Q/s of them behind the one on the wire. Unless
// Config.Reorder is set, a datagram never leaves before the previous one of
// its flow (one client, one direction): jitter then stretches the gaps
// between datagrams but keeps their order, as a queueing link does.
//
// Loss and jitter are drawn from one generator per flow, seeded from
// Config.Seed and the flow's number (clients are numbered in the order they
// appear), so the n-th datagram of a flow meets the same fate in every run
// with the same seed, whatever the timing of the other flows.
//
// Everything is bounded: besides Link.Queue, at most Config.MaxQueued datagrams and
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
//		// or a narrow link: 64 kbit/s, a 16 KiB queue, IPv4 and UDP headers counted
//		// Down: relay.Link{Delay: 300 * time.Millisecond, Rate: 64000, Queue: 16 << 10, Overhead: 28},
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

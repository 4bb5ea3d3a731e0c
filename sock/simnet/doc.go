// Package simnet is an in-memory IP network for deterministic tests of
// everything built on package sock. Its sockets implement the sock contract
// (and pass socktest); no real socket is ever opened.
//
// # Usage
//
// A test builds a network, attaches hosts with addresses, names them in the
// DNS, and gives each host's link its faults:
//
//	n := simnet.New(1) // the seed of every random fault
//	srv := n.AddHost("server", "10.0.0.1", "fd00::1")
//	dev := n.AddHost("device", "10.0.0.2")
//	n.DNS().Set("coap.example", netip.MustParseAddr("10.0.0.1"))
//	dev.SetLink(simnet.LinkConfig{Delay: 20 * time.Millisecond, Loss: 0.3, Duplicate: 0.05, Reorder: 0.1})
//
// The server side is programmed with a net.PacketConn or net.Listener from
// Host.ListenPacket or Host.Listen, so any server written against package
// net (tether's CoAP file server, say) runs on the simulated network
// unchanged. The client side is a sock.Socket from Host.NewSocket:
//
//	pc, _ := srv.ListenPacket("udp", ":5683")
//	s, _ := dev.NewSocket("udp", nil)
//	err := s.Connect(ctx, "coap.example", "5683")
//
// # Faults
//
// Every datagram crosses the sender's link and then the receiver's; each
// link may drop it (Loss), deliver it twice (Duplicate), delay it (Delay,
// Jitter) or hold it back so later ones overtake it (Reorder), with random
// choices drawn from the network's seeded source. Host.SetDown takes a link
// down: sends fail with ENETUNREACH, arrivals are lost, streams retransmit
// until it is back. DNS answers change with DNS().Set, a host's addresses
// with Host.SetAddrs. A datagram to a port nobody bound bounces back as
// ECONNREFUSED on a connected socket, as ICMP does.
//
// # Time
//
// simnet waits only on channels and time.Timer, so it runs inside a
// testing/synctest bubble: create the network inside synctest.Test, and a
// ten-second outage takes no real time and gives the same result every
// run. Outside a bubble it runs in real time.
//
// simnet depends on packages sock and sockkit and the standard library
// only; it must never import netsock (no real socket) or tether's CoAP,
// download or command packages.
package simnet

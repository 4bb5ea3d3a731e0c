// Package peer runs CoAP in both directions over one association: the
// requests this side sends, matched to their responses by token, and the
// requests the other side sends, answered by a Handler. LwM2M needs both at
// once: a device registers with its server, and the server reads, writes
// and observes the device over the same socket.
//
// It has two modes, one type each, with the same calls (Exchanger):
//
//   - Peer, over a datagram path (RFC 7252 over UDP or DTLS): requests
//     confirmable, retransmitted on RFC 7252's schedule; the other side's
//     requests deduplicated by message ID; notifications confirmable or
//     not, and their Resets reported.
//   - Stream, over a reliable byte stream (RFC 8323 over TCP or TLS):
//     frames with no type or message ID, nothing retransmitted, a CSM
//     first each way and the other side's Max-Message-Size kept to, Ping
//     answered with Pong, Release and Abort ending the stream.
//
// Neither does I/O of its own. A Peer's owner reads datagrams and hands
// each to Input, and gives New the function that sends one; so the same
// Peer serves a device's connected sock.Socket and one address of a
// server's net.PacketConn.
//
//	p := peer.New(s.Send, &peer.Config{Handler: h})
//	go func() { // the reader
//		buf := make([]byte, 1280)
//		for {
//			n, err := s.Receive(buf)
//			if err != nil { ... }
//			p.Input(buf[:n])
//		}
//	}()
//	resp, err := p.Do(ctx, &coap.Message{Code: coap.POST, Options: opts})
//
// A Stream's owner hands it the bytes of the connection as they come, in
// any amounts (Input), or lets it read (Serve):
//
//	st, err := peer.NewStream(s.Send, &peer.StreamConfig{Handler: h}) // writes our CSM
//	go st.Serve(s.Receive)
//	resp, err := st.Do(ctx, &coap.Message{Code: coap.POST, Options: opts})
//
// The Handler runs on the reader's goroutine, one request at a time, so it
// must not wait for an exchange of its own Peer or Stream (that exchange's
// response would queue behind it): it answers, and starts longer work
// elsewhere.
//
// peer depends on package coap only; it must never import sock's
// implementations, download, lwm2m or the command.
package peer

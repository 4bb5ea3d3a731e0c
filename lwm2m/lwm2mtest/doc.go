// Package lwm2mtest is an LwM2M server for tests, as net/http/httptest is
// an HTTP server for them: a test starts it in one line, points the
// device under test at its URL, drives the device with the requests an
// LwM2M server sends, and reads back what the device did.
//
// The Server accepts Register, Update and De-register on /rd (OMA LwM2M
// 1.1 Core, 6.2) and sends the Device Management requests (6.3, 6.4) to
// the devices registered with it: Read, Discover, Write (replace and
// partial update), Write-Attributes, Execute, Create, Delete, Observe and
// Cancel. It works with any LwM2M client, tether's package lwm2m or
// another.
//
// # Usage
//
// In a test, Start serves on a loopback UDP port (or TCP, with
// Options.TCP or Options.TLS) and closes the Server when the test ends:
//
//	func TestMeter(t *testing.T) {
//		srv := lwm2mtest.Start(t, nil)
//		startMeter(t, srv.URL(), "meter-17") // the device under test; srv.URL() is coap://127.0.0.1:PORT
//
//		ctx := t.Context()
//		reg, err := srv.WaitRegistered(ctx, "meter-17", 0)
//		if err != nil {
//			t.Fatal(err)
//		}
//		m, err := srv.Read(ctx, "meter-17", "/3/0/0", content.Text)
//		if err != nil || m.Code != coap.Content || string(m.Payload) != "ACME" {
//			t.Errorf("Read /3/0/0: %v %v", m, err)
//		}
//		o, err := srv.Observe(ctx, "meter-17", "/3303/0/5700")
//		n := <-o.Notifications // the next value the meter reports
//
//		for _, r := range srv.Records("meter-17") {
//			t.Log(r) // meter-17 register /rd?ep=meter-17&lt=300&lwm2m=1.1&b=U: 2.01 Created, ...
//		}
//	}
//
// Requests the Server has no method for (a method the device must
// refuse, an option of one's own) go out with Do. A CoAP error code is an
// answer, not an error: the methods return the device's message, and an
// error only when no answer came (ErrNotRegistered, a timeout, a Reset).
//
// # Transports
//
// NewServer serves any net.PacketConn: a loopback UDP socket, or a
// simulated network's (sock/simnet, inside testing/synctest, where a
// lifetime of minutes passes in milliseconds). With Options.DTLS it
// serves DTLS through dtlssock.Listen, and URL says coaps. Over plain UDP
// every device is one coap/peer.Peer per source address, fed by the
// Server's single read loop (no goroutine per device, so one process
// carries ten thousand devices); over DTLS, one per accepted connection,
// each with its reader.
//
// NewTCPServer serves any net.Listener (simnet's too) with CoAP over TCP,
// RFC 8323: URL says coap+tcp, or with Options.TLS coaps+tcp (TLS with
// certificates: crypto/tls has no pre-shared keys). Every connection is
// one coap/peer.Stream with its reader; the Server's CSM offers 16 KiB
// frames and no BERT. The same methods work over every transport, with
// what RFC 8323 changes: no message types, nothing acknowledged, no Reset,
// so a notification for no observation is dropped rather than reset, and
// Cancel waits for the device's answer to its GET rather than an ACK.
//
// # What it records
//
// Records lists every exchange with a device: its Register, Update and
// De-register (refused ones too) with the Server's answers, the Server's
// requests with the device's answers, its notifications. Stats and
// EndpointStats count registrations, DTLS and TLS handshakes,
// notifications, and the datagrams and bytes on the wire (DTLS and TLS
// records and handshakes included; over TCP, bytes only), which tell what
// going offline or resuming a session cost.
//
// lwm2mtest is a fixture: it checks what a test needs checked and is
// lenient elsewhere, and it never panics on what a device sends.
package lwm2mtest

// Package lwm2m is an LwM2M 1.1 client (OMA LwM2M Core TS 1.1) for one
// server or several, over CoAP on UDP (NoSec) or DTLS with a pre-shared
// key or certificates, or on TCP (RFC 8323, plain or TLS), on any
// socket of package sock: tether's own, a simulated network's, or an
// integrator's modem stack.
//
// The client registers with each of its servers (Config.ServerURL and
// Config.Servers, or the accounts a bootstrap server wrote), each
// registration with its own /1 instance, lifetime, queue mode,
// connection, observations and attributes, on one shared set of objects
// (a value one server writes is notified to every server observing it).
// Each registers (endpoint name, lifetime, binding, queue mode, the
// object links), sends Registration Updates when they fall due and when its
// parameters change, deregisters on Stop, and registers again when the
// server forgot it (4.04), when its lifetime passed, or when the session
// changed: a NoSec reconnect, or a DTLS handshake that did not resume. A
// server that answers 4.12 to LwM2M 1.1 gets a 1.0 registration.
//
// It serves Read (an answer larger than a block, block by block: RFC 7959
// Block2), Write (replace and partial; a Write larger than a datagram
// block by block, Block1), Execute, Discover,
// Write-Attributes (pmin, pmax, gt, lt, st, epmin, epmax), Observe and
// Cancel (notifications confirmable once a day), Read-, Write- and
// Observe-Composite (SenML JSON and CBOR), Send, Create and Delete (on the
// product's objects that implement InstanceCreator and InstanceDeleter),
// in text/plain, opaque, TLV, SenML JSON and SenML CBOR (package
// lwm2m/content), on these objects:
//
//   - /0 Security: Config.ServerURL and its credentials, or what a
//     bootstrap server wrote (Config.Bootstrap). Only the bootstrap server
//     sees it; the LwM2M server gets 4.01.
//   - /1 Server, an instance per server: lifetime, default pmin/pmax,
//     notification storing, binding ("U" or "T"), Registration Update Trigger,
//     Mute Send.
//   - /3 Device: manufacturer, model, serial number, firmware version,
//     reboot, error code, current time, supported bindings.
//   - /5 Firmware Update, pull only, driven by package download: every
//     scheme it fetches, resumable across offline periods, address changes
//     and restarts (see Firmware).
//   - the product's own, through the Object interface.
//
// # Two machines
//
// The registration (RegState, drawn at Run) and /5 (FirmwareState, drawn
// at fwMoves) each move only through one function checked against one
// table; a move the table refuses is a bug, logged, and /5's refusals of a
// server's operation are answered with the codes LwM2M 1.1 E.6 gives.
// Status().State reports the registration's.
//
// # Callbacks and locks
//
// OnEvent runs on a goroutine of its own, in order, with no lock of the
// client held, and may call any of the Client's methods. Object methods
// run one at a time, on the connection's reader or the client's loop,
// with no lock held but that turn and, on the reader, the connection's
// input lock, which only a disconnect takes (so that the answer goes out
// before the connection does); they must answer without waiting for the
// client (Changed is fine; EnterOffline, which waits for the loop, is
// not). Install runs on a goroutine of its own. /5's state is written
// durably (synced, renamed, its folder synced).
//
// # Offline mode and queue mode
//
// EnterOffline and ExitOffline take the whole device offline and back, per
// transport: every registration's connection and every firmware download
// at once. Nothing is sent while offline; timers keep running, and
// notifications that fall due are stored. Back online, a DTLS session that
// resumed keeps the registration and its observations, and the stored
// notifications are sent (and an Update, when the session came back on
// another local port, so the server learns where its requests must go);
// anything else registers again. In queue mode
// the socket is closed after MAX_TRANSMIT_WAIT of quiet and opened again
// only when something is due.
//
// # Not built
//
// Raw public keys (pion/dtls has none), and pre-shared keys over TLS
// (crypto/tls has none). Send goes to the first server only, and its
// reports carry no timestamps; an Observe-Composite follows the server's
// default periods, not attributes. A notification larger than a block is
// sent whole (an answer to a request goes block by block, RFC 7959
// Block2). There is no Access Control object (/2): with several servers,
// each may read and write everything, /1 instances included.
//
// lwm2m depends on packages download, coap and sock; nothing below it
// imports it, and it must never import the command.
package lwm2m

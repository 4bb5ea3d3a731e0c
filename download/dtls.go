package download

import "github.com/tether-iot/tether/sock"

// A DTLSLayer puts DTLS over the raw datagram socket of a coaps download;
// Options.DTLS gives it, and coaps needs one. A *dtlssock.Config is one:
//
//	opts := &download.Options{DTLS: &dtlssock.Config{PSK: key, PSKIdentity: id}}
//
// Package download imports no DTLS implementation itself, so that a
// program that never downloads over coaps (coap, coap+tcp, coaps+tcp,
// http and https only) links none: the program that wants coaps brings it,
// with its own import of sock/dtlssock (or of another layer).
type DTLSLayer interface {
	// Client returns a closed DTLS client socket over raw, which the
	// download then connects, and shuts down and connects again to
	// suspend and resume: a layer that keeps its session across Shutdown
	// (dtlssock does) resumes with no new handshake.
	Client(raw sock.Socket) sock.Socket
}

// Package download runs resumable downloads over CoAP (coap://, coaps://,
// coap+tcp://, coaps+tcp://) and HTTP (http://, https://): a download
// survives suspend and resume, changes of the device's IP address, packet
// loss and outages of any length, and process restarts; it never mixes two
// versions of a resource, and it never reports a body as complete that it
// has not verified. It is the "offline mode" of the Anjay LwM2M SDK, over
// tether's socket layer.
//
// # Usage
//
//	d, err := download.ToFile(ctx, "coap://fw.example/image.bin", "image.bin", &download.Options{
//		SHA256:      want,
//		GiveUpAfter: 10 * time.Minute, // online time without a block
//	})
//	...
//	err = d.Wait() // nil: image.bin is complete, verified on disk, in place
//
// A Controller owns many downloads and suspends or resumes them all, per
// physical transport, when the device goes offline or comes back:
//
//	var ctl download.Controller
//	d, err := ctl.ToFile(ctx, url, "image.bin", nil)
//	ctl.EnterOffline(download.UDP) // coap and coaps: sockets shut down, sessions kept
//	ctl.ExitOffline(download.UDP)  // same server, from the first missing byte, at once
//
// Start downloads into any io.WriterAt (Stream adapts an io.Writer),
// without the file's crash safety.
//
// # Phases
//
// A download is in one phase at a time (Download.Phase, Progress.Phase);
// its goroutine moves it along, and Suspend, Resume and Reconnect move it
// from outside:
//
//	            Start, ToFile
//	                 │
//	            ┌────▼─────┐  Suspend   ┌───────────┐
//	            │ starting ├───────────►│ suspended │◄── Suspend, from any phase
//	            └────┬─────┘            └─────┬─────┘    but ended
//	                 │                  Resume│
//	                 ▼                        ▼
//	            ┌────────────┐  the body is complete  ┌───────────┐
//	  ┌────────►│ attempting ├───────────────────────►│ verifying │
//	  │         └──┬──────┬──┘◄───────────────────────┴─────┬─────┘
//	  │ timer,     │      │      the file on disk changed:  │
//	  │ Resume,    │      │      from its last good byte    │ verified
//	  │ Reconnect  │      │                                 │ (and renamed)
//	┌─┴──────────┐ │      │ permanent error, context,       ▼
//	│ backing off│◄┘      └── give-up ─────────────────► ┌───────┐
//	└────────────┘  transient                             │ ended │
//	                error                                 └───────┘
//
// Starting re-reads what an earlier run left (ToFile). Attempting connects
// and fetches blocks; a transient failure (a timeout, a refusal, CoAP 5.03,
// HTTP 503) goes to backing off, a permanent one (see below) ends the
// download. Backing off waits RetryDelay, doubling up to MaxRetryDelay, or
// what the server asked for (Max-Age, Retry-After); Resume and Reconnect
// end the wait at once. Verifying checks the size and the SHA-256 and, for
// a file, reads it back from the disk. Every phase can end: the context,
// or the give-up deadline (Options.GiveUpAfter), which counts online time
// only and cuts short whatever is in flight.
//
// # Errors
//
// Errors are classified where they are made, not here: an error with a
// method Permanent() bool returning true anywhere in its chain ends the
// download (sock.IsPermanent), one with a method RetryAfter()
// time.Duration sets the wait before the next attempt, and anything else
// is retried. The socket layer marks refused credentials (sock.ErrAuth: a
// wrong pre-shared key, a certificate that does not verify) and missing
// capabilities permanent, coap/client a server that breaks the block-wise
// rules or answers 4.04; this package marks its own sentinels below. A
// custom socket marks its own failures with sock.Permanent.
//
// # What a resume does
//
// Suspend cancels the exchange in flight and shuts the socket down (see
// sock.Shutdown), so it remembers the server's hostname, port and address.
// Resume binds to the previous local port when it can, reconnects to the
// remembered hostname, preferring the address used before (see
// sock.PreferredEndpoint), and asks for the block that holds the first
// byte not yet written, in the block size the server used; the body is
// delivered from that exact byte. If the first response then carries
// another ETag or size, the download ends with ErrResourceChanged; if it
// carries no ETag where there was one, with ErrUnverified (unless
// AllowUnverified); with OnChange: Restart it starts over instead.
//
// # Files and integrity
//
// ToFile writes NAME.part, locked (flock) for the download's whole life,
// and NAME.part.state beside it. The state holds the running SHA-256 of
// the bytes written and checkpoints along the way (the digests of the
// first 1 MiB, 2 MiB, ...; at most 64, spaced further as the body grows),
// and is saved only after the data it claims is synced, atomically. A new
// run re-reads the .part at SHA-256 speed: the prefix must hash to the
// saved state, and a damaged one continues from the last checkpoint that
// still matches. The finished file is synced, read back and hashed once
// more, so the SHA-256 that Sum returns is that of the file on disk, then
// renamed into place and its directory synced. A power cut at any moment
// leaves a resumable pair or a fresh start, never a state ahead of its data.
// Nothing that is not a regular file is written through or renamed over:
// a NAME.part that is a link, a final name that became a FIFO, a .part
// left by a download of another URL are refused (ErrOutput).
//
// download depends on packages coap and sock (and sock/tlssock); it must
// never import the command, nor a DTLS implementation: coaps comes from
// the program, through Options.DTLS (a *dtlssock.Config), so a program
// that never uses DTLS does not link one.
package download

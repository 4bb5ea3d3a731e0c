package download

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/client"
	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/tlssock"
)

// attemptCoAP connects and fetches blocks from the first byte not yet
// written until the end or an error.
func (d *Download) attemptCoAP(ctx context.Context) (progressed bool, err error) {
	d.setStep(stepConnect)
	cctx, cancel := d.connectContext(ctx) // the connect, and over TCP the CSM
	defer cancel()
	s, err := d.connect(cctx)
	if err != nil {
		return false, d.connectError(ctx, cctx, err)
	}
	cfg := &client.Config{Params: d.opts.Params, Logger: d.opts.Logger, QBlock: d.opts.QBlockParams}
	var c *client.Conn
	if d.target.scheme.transport == TCP {
		d.setStep(stepCSM)
		c, err = client.NewTCP(cctx, s, cfg)
	} else {
		c, err = client.NewUDP(s, cfg)
	}
	if err != nil {
		return false, d.connectError(ctx, cctx, err)
	}
	cancel()
	d.mu.Lock()
	req := client.BlockRequest{Path: d.target.path, Query: d.target.query, Host: d.target.uriHost, Offset: d.written, BlockSize: d.blockSize, Window: d.opts.Window,
		QBlock: d.opts.qblock(d.target.scheme.name)}
	if _, stream := d.dst.(*stream); !stream {
		// Blocks after a gap are written at their offsets at once.
		req.Unordered, req.Have = true, d.haveAhead
	}
	d.step = stepBlock
	d.mu.Unlock()
	first := true
	defer func() {
		if err != nil && first && req.Offset > 0 {
			err = pastTheEnd(err, req.Offset)
		}
	}()
	err = c.GetBlocks(ctx, req, func(ch client.Chunk) error {
		if first {
			first = false
			if err := d.checkFirst(ch.ETag, ch.Size2); err != nil {
				return err
			}
		}
		total := ch.Size2
		if total < 0 && !ch.More {
			total = ch.Offset + int64(len(ch.Payload))
		}
		if ch.More && ch.Block.Size() != req.BlockSize {
			// A block that says more follow has the full size the server
			// uses: ask for that size from now on, and after a resume.
			req.BlockSize = ch.Block.Size()
			d.mu.Lock()
			d.blockSize = req.BlockSize
			d.mu.Unlock()
		}
		if err := d.record(ch.Offset, ch.Payload, total); err != nil {
			return err
		}
		progressed = true
		return nil
	})
	return progressed, err
}

// pastTheEnd reports a resume at byte offset that the server answers with
// "no such block" (4.02 Bad Option, RFC 7959 2.2) or with a body that ends
// before it: the resource is shorter than what was written, so it changed.
// Left as the server's error, it would end every later run the same way.
func pastTheEnd(err error, offset int64) error {
	var re *client.ResponseError
	if (errors.As(err, &re) && re.Code == coap.BadOption) || errors.Is(err, client.ErrSizeMismatch) {
		return fmt.Errorf("%w: the server has no byte %d any more: %w", ErrResourceChanged, offset, err)
	}
	return err
}

// checkFirst verifies the first response after a (re)connect: the same
// resource (ETag, size) as before, a size within bounds and as expected.
// size is the announced size, -1 if none.
func (d *Download) checkFirst(tag []byte, size int64) error {
	if err := d.checkSize(size); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.written == 0:
		d.etag = append([]byte(nil), tag...) // a fresh start: whatever it is
		if tag == nil {
			d.etag = nil
		}
		return nil
	case d.etag == nil:
		return nil // the server never sent one: nothing to verify against
	case tag == nil && d.opts.AllowUnverified:
		d.log.Warn("download: resumed without an ETag; not verified", "written", d.written)
		return nil
	case tag == nil:
		return fmt.Errorf("%w: ETag %x before, none after the resume (AllowUnverified resumes anyway)", ErrUnverified, d.etag)
	case !bytes.Equal(tag, d.etag):
		return fmt.Errorf("%w: ETag %x before, %x after the resume", ErrResourceChanged, d.etag, tag)
	}
	return nil
}

// checkSize checks the size a server announces (-1 if none) against the
// bounds, the size expected, and the size announced before a resume.
func (d *Download) checkSize(size int64) error {
	if size < 0 {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.opts.tooLarge(size):
		return fmt.Errorf("%w: the server announces %d bytes, over the limit of %d (Options.MaxSize)", ErrTooLarge, size, d.opts.MaxSize)
	case d.opts.Size > 0 && size != d.opts.Size:
		return fmt.Errorf("%w: the server announces %d bytes, expected %d", ErrVerify, size, d.opts.Size)
	case d.written > 0 && d.total >= 0 && size != d.total:
		return fmt.Errorf("%w: %d bytes before, %d after the resume", ErrResourceChanged, d.total, size)
	}
	return nil
}

// connect (re)connects the download's socket: shut down, bound to the
// previous local port when it can (UDP), connected to the hostname and port
// of the URL, preferring the address used before.
func (d *Download) connect(ctx context.Context) (sock.Socket, error) {
	d.mu.Lock()
	s, port := d.s, d.localPort
	d.mu.Unlock()
	if s == nil {
		var err error
		if s, err = d.newSocket(); err != nil {
			return nil, err
		}
		if p, ok := sock.As[sock.EndpointPreferrer](s); ok {
			p.SetPreferredEndpoint(&d.pref)
		} else {
			d.log.Debug("download: socket has no stickiness")
		}
		d.mu.Lock()
		d.s = s
		d.mu.Unlock()
	} else {
		sock.Shutdown(s) // already shut down by Suspend, or the link broke
	}
	bound := false
	if port != "" && d.target.scheme.name == "coap" {
		bound = sock.Bind(ctx, s, "", port) == nil
	}
	err := s.Connect(ctx, d.target.host, d.target.port)
	if err != nil && bound && !sock.IsPermanent(err) {
		s.Close() // the old port cannot reach the server: a new one
		err = s.Connect(ctx, d.target.host, d.target.port)
	}
	if err != nil {
		return nil, err
	}
	if p, err := sock.AssociationOf(s).LocalPort(); err == nil {
		d.mu.Lock()
		d.localPort = p
		d.mu.Unlock()
	}
	d.logConnected(s)
	return s, nil
}

// logConnected says where a connect landed and what its handshake cost.
func (d *Download) logConnected(s sock.Socket) {
	d.mu.Lock()
	ep := d.endpointLocked()
	d.mu.Unlock()
	attrs := []any{"to", ep}
	a := sock.AssociationOf(s)
	h, err1 := a.RemoteHost()
	p, err2 := a.RemotePort()
	if err1 == nil && err2 == nil {
		attrs = append(attrs, "address", net.JoinHostPort(h, p))
	}
	if r, ok := sock.As[sock.SessionResumer](s); ok {
		resumed := r.SessionResumed()
		session := "full handshake"
		switch r, ok := s.(interface{ StateRestored() bool }); {
		case ok && r.StateRestored():
			session = "restored, no handshake"
		case resumed:
			session = "resumed"
		}
		attrs = append(attrs, "session", session)
	}
	d.log.Info("download: connected", attrs...)
}

// newSocket creates the download's socket: the raw one from the factory,
// with TLS or DTLS on top for coaps+tcp and coaps.
func (d *Download) newSocket() (sock.Socket, error) {
	raw, err := d.opts.NewSocket(string(d.target.scheme.transport))
	if err != nil {
		return nil, err
	}
	switch d.target.scheme.name {
	case "coaps+tcp":
		return tlssock.New(raw, d.opts.TLS), nil
	case "coaps":
		return d.opts.DTLS.Client(raw), nil
	}
	return raw, nil
}

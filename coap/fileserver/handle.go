package fileserver

import (
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"syscall"

	"github.com/tether-iot/tether/coap"
)

// response holds the buffers one serving goroutine reuses for every
// request, so serving allocates nothing per block.
type response struct {
	name    []byte // the request's path
	m       coap.Message
	optBuf  []byte
	payload []byte
	plan    qplan     // a Q-Block2 request's blocks after the first
	of      *openFile // the file of the body the response carries a part of, if any
	aside   *prep     // the file a request set aside waits for (wait.go); no response then
	echo    [8]byte   // the Echo option's value, when the response carries one
}

func newResponse(maxPayload int) *response {
	return &response{
		m:       coap.Message{Options: make(coap.Options, 0, 8)},
		optBuf:  make([]byte, 0, 64),
		payload: make([]byte, maxPayload),
	}
}

// limits are what one transport allows a response to carry.
type limits struct {
	maxPayload int  // bytes of payload in one message
	bert       bool // the client offered BERT (TCP)
	qblock     bool // Q-Block2 is served (UDP and DTLS, unless disabled)

	wait  waitPolicy // while the file is prepared (wait.go)
	prior *prep      // the file a request set aside waited for
	tk    *tracker   // the serving loop's transfers (access.go); nil in tests of handle alone
}

// handle answers one request into r.m (code, options, payload); the caller
// sets the type, message ID and token, and sends it. It reports whether the
// request carried a critical option the server does not recognize: the
// response is then a 4.02, which a Non-confirmable request over UDP does
// not get (RFC 7252 5.4.1 rejects it: the caller sends a Reset instead).
// The order of the checks is the package doc's.
func (s *Server) handle(req *coap.Message, r *response, lim limits, from client) (rejected bool) {
	m := &r.m
	m.Options, m.Payload, r.aside, r.of, r.name = m.Options[:0], nil, nil, nil, r.name[:0]
	if id, fault := checkOptions(req.Options); fault != optionsOK {
		m.Code, m.Payload = coap.BadOption, appendFault(r.payload[:0], id, fault)
		s.log.Debug("fileserver: bad option", "from", from.String(), "option", uint32(id))
		return true
	}
	qblock := hasOption(req.Options, coap.QBlock2)
	if qblock && !lim.qblock {
		// Q-Block2 is served over UDP and DTLS only (RFC 9177 is for
		// unreliable transports; TCP has BERT): unrecognized here.
		m.Code, m.Payload = coap.BadOption, appendFault(r.payload[:0], coap.QBlock2, optionUnknown)
		return true
	}
	if hasOption(req.Options, optProxyURI) || hasOption(req.Options, optProxyScheme) {
		m.Code = coap.ProxyingNotSupported
		return false
	}
	if req.Code != coap.GET {
		m.Code = coap.MethodNotAllowed
		return false
	}
	of, ok := s.resolve(req, r, lim, from)
	if !ok {
		return false
	}
	switch {
	case lim.tk != nil && s.draining.Load() && !lim.tk.has(from, of):
		s.refuseNew(r) // Shutdown: transfers in flight only (drain.go)
	case precondition(req.Options, of) != 0:
		m.Code = coap.PreconditionFailed
	case !acceptable(req.Options, of.format):
		m.Code = coap.NotAcceptable
	case qblock:
		s.planQBlock(req, r, lim, of)
	default:
		s.serveBlock(req, r, lim, of)
	}
	return false
}

// resolve returns the resource a request names, or sets the response's
// error code (4.00, 4.04, 5.00, 5.03) and returns false; or, with r.aside
// set, no code at all: the request is to be set aside (wait.go).
func (s *Server) resolve(req *coap.Message, r *response, lim limits, from client) (*openFile, bool) {
	m := &r.m
	var err error
	r.name, err = cleanPath(r.name[:0], req.Options)
	if err == nil {
		var of *openFile
		if string(r.name) == wellKnownCore {
			of, err = s.wellKnown(req.Options)
		} else {
			of, err = s.fileFor(r, lim)
		}
		if err == nil {
			return of, true
		}
	}
	if p, busy := err.(*prep); busy {
		if r.aside == nil {
			s.unavailable(r, p)
		}
		return nil, false
	}
	switch {
	case errors.Is(err, errRefused):
		m.Code = coap.BadRequest
		s.log.Warn("fileserver: path refused", "from", from.String(), "path", pathOf(req))
	case notFound(err):
		m.Code = coap.NotFound
	case isEscape(err):
		// os.Root refuses a symbolic link that leads outside the root.
		m.Code = coap.NotFound
		s.log.Warn("fileserver: path escapes the directory", "from", from.String(), "path", pathOf(req), "err", err)
	default:
		m.Code = coap.InternalServerError
		s.log.Error("fileserver: open", "from", from.String(), "path", pathOf(req), "err", err)
	}
	return nil, false
}

// serveBlock fills the response with the block the request asks for.
func (s *Server) serveBlock(req *coap.Message, r *response, lim limits, of *openFile) {
	m := &r.m
	blk, asked, err := coap.GetBlock(req.Options, coap.Block2, lim.bert)
	if err != nil {
		m.Code = coap.BadOption
		return
	}
	_, wantSize := coap.Uint(req.Options, coap.Size2)
	maxBlock := min(lim.maxPayload, s.maxBlock)
	if !asked {
		if of.size <= int64(maxBlock) {
			s.fill(r, of, 0, int(of.size), coap.Block2, nil, wantSize)
			return
		}
		blk = coap.Block{SZX: 6}
	}
	if blk.SZX == coap.BERT && s.maxBlock < 1024 {
		blk.SZX = 6 // BERT's numbers count 1024-byte units, as SZX 6's do
	}
	if blk.SZX != coap.BERT {
		for blk.SZX > 0 && blk.Size() > maxBlock {
			blk.Num <<= 1 // the same offset in blocks half as large
			blk.SZX--
		}
	}
	off := blk.Offset()
	if off > of.size || (off == of.size && of.size > 0) {
		m.Code = coap.BadOption // RFC 7959 section 2.2: beyond the end
		return
	}
	n := blk.Size()
	if blk.SZX == coap.BERT {
		n = max(1024, lim.maxPayload&^1023)
	}
	n = int(min(int64(n), of.size-off))
	blk.More = off+int64(n) < of.size
	s.fill(r, of, off, n, coap.Block2, &blk, wantSize || off == 0)
}

// fill reads n bytes at off into the response and sets its options: blk,
// if any, as option id (Block2 or Q-Block2).
func (s *Server) fill(r *response, of *openFile, off int64, n int, id coap.OptionID, blk *coap.Block, size bool) {
	m := &r.m
	if err := of.readAt(r.payload[:n], off); err != nil {
		// Nothing of the block sent before (a burst reuses the
		// message): a 5.00 with its options and payload would be half
		// a block.
		m.Code, m.Options, m.Payload = coap.InternalServerError, m.Options[:0], nil
		s.log.Error("fileserver: read", "err", err)
		return
	}
	m.Code, m.Payload, m.Options, r.of = coap.Content, r.payload[:n], m.Options[:0], of
	buf := r.optBuf[:0]
	m.Options = m.Options.Add(coap.Option{ID: coap.ETag, Value: of.etag[:]})
	m.Options, buf = coap.AppendUint(m.Options, buf, coap.ContentFormat, uint32(of.format))
	if blk != nil {
		m.Options, buf = coap.AppendUint(m.Options, buf, id, blk.Value())
	}
	if size {
		m.Options, buf = coap.AppendUint(m.Options, buf, coap.Size2, uint32(min(of.size, 1<<32-1)))
	}
	r.optBuf = buf
}

// client names the peer of a request for logs, formatted only when a
// record is written: the UDP path has no net.Addr, to allocate nothing.
type client struct {
	addr net.Addr
	ap   netip.AddrPort
}

func (c client) String() string {
	if c.addr != nil {
		return c.addr.String()
	}
	return c.ap.String()
}

func pathOf(m *coap.Message) slog.Value {
	p, _ := m.Options.Path()
	return slog.StringValue(p)
}

// notFound reports whether an open failed because the path names nothing
// served: nothing at all, anything but a regular file, a path below a
// regular file (ENOTDIR: "small/x"), a loop of symbolic links, a socket
// (ENXIO, should one replace a file between the look and the open).
func notFound(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) ||
		errors.Is(err, syscall.ELOOP) || errors.Is(err, syscall.ENXIO)
}

func isEscape(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && pe.Err != nil && pe.Err.Error() == "path escapes from parent"
}

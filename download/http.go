package download

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/tlssock"
)

// HTTP downloads run over the same socket layer as CoAP ones: net/http
// dials through Options.NewSocket (with tlssock on top for https), so a
// custom socket carries HTTP too, and Suspend, Resume and offline mode work
// the same way. A resume asks for "Range: bytes=N-" with "If-Range" set to
// the strong ETag of the first response (or its Last-Modified when it had
// no strong ETag).
const (
	HTTP  Transport = "http"
	HTTPS Transport = "https"
)

// HTTPError is a response status a download cannot continue from.
type HTTPError struct {
	Status string
}

// Error implements error.
func (e *HTTPError) Error() string { return "download: HTTP " + e.Status }

// errProtocol marks a response that breaks the rules of a range request.
var errProtocol = errors.New("download: the server broke the range protocol")

// attemptHTTP runs one HTTP request from the first byte not yet written.
func (d *Download) attemptHTTP(ctx context.Context) (progressed bool, err error) {
	tr := &http.Transport{
		DisableKeepAlives:     true, // one request per attempt: Suspend ends it
		ResponseHeaderTimeout: time.Minute,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.dialHTTP(ctx)
		},
		DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.dialHTTP(ctx)
		},
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse // a redirect would leave the remembered server
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.url.String(), nil)
	if err != nil {
		return false, err
	}
	d.mu.Lock()
	written, etag, lastMod := d.written, string(d.etag), d.lastMod
	d.mu.Unlock()
	validator := etag
	if validator == "" {
		validator = lastMod
	}
	if written > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(written, 10)+"-")
		if validator != "" {
			req.Header.Set("If-Range", validator)
		}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()

	total := int64(-1)
	var skip int64
	switch {
	case resp.StatusCode == http.StatusPartialContent:
		start, size, ok := contentRange(resp.Header.Get("Content-Range"))
		if !ok || start != written {
			return false, fmt.Errorf("%w: asked for byte %d, got %q", errProtocol, written, resp.Header.Get("Content-Range"))
		}
		if validator == "" && !d.opts.AllowUnverified {
			return false, fmt.Errorf("%w: no validator to resume by (no strong ETag, no Last-Modified)", ErrResourceChanged)
		}
		total = size
	case resp.StatusCode == http.StatusOK:
		if resp.ContentLength >= 0 {
			total = resp.ContentLength
		}
		if written == 0 {
			d.rememberValidators(resp)
			break
		}
		// Range ignored (same resource, whole body), or If-Range failed
		// (the resource changed): the validators tell which.
		same := validator != "" && (validatorOf(resp, etag != "") == validator)
		if !same && !(validator == "" && d.opts.AllowUnverified) {
			return false, fmt.Errorf("%w: the server sent the whole body with validator %q, expected %q",
				ErrResourceChanged, validatorOf(resp, etag != ""), validator)
		}
		skip = written
	case resp.StatusCode == http.StatusPreconditionFailed:
		return false, fmt.Errorf("%w: 412 Precondition Failed", ErrResourceChanged)
	case resp.StatusCode >= 500:
		return false, fmt.Errorf("download: HTTP %s (will retry)", resp.Status) // transient
	default:
		return false, &HTTPError{Status: resp.Status}
	}

	buf := make([]byte, 32<<10)
	off := written
	for {
		n, rerr := resp.Body.Read(buf)
		p := buf[:n]
		if skip > 0 {
			k := min(skip, int64(len(p)))
			p, skip = p[k:], skip-k
		}
		if len(p) > 0 {
			if total >= 0 && off+int64(len(p)) > total {
				return progressed, fmt.Errorf("%w: body runs past %d bytes", errProtocol, total)
			}
			if err := d.record(off, p, total); err != nil {
				return progressed, err
			}
			off += int64(len(p))
			progressed = true
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return progressed, rerr // the connection broke, or Suspend: resume later
		}
	}
	if total >= 0 && off != total {
		return progressed, fmt.Errorf("download: body stopped at %d of %d bytes", off, total)
	}
	if total < 0 {
		d.mu.Lock()
		d.prog.Total = off
		d.mu.Unlock()
	}
	return progressed, nil
}

// dialHTTP connects a new socket from the factory to the URL's host, with
// TLS on top for https, and makes it the download's socket.
func (d *Download) dialHTTP(ctx context.Context) (net.Conn, error) {
	raw, err := d.opts.NewSocket("tcp")
	if err != nil {
		return nil, err
	}
	sock.SetPreferredEndpoint(raw, &d.pref)
	s := raw
	if d.transport == HTTPS {
		s = tlssock.New(raw, d.opts.TLS)
	}
	if err := s.Connect(ctx, d.host, d.port); err != nil {
		s.Close()
		return nil, err
	}
	d.mu.Lock()
	old := d.s
	d.s = s
	suspended := d.suspended
	d.mu.Unlock()
	if old != nil {
		old.Close()
	}
	if suspended {
		sock.Shutdown(s) // Suspend ran while we dialled
	}
	return sock.NetConn(s), nil
}

// rememberValidators keeps what a resume will be verified by: a strong
// ETag, else Last-Modified. A weak ETag cannot validate a byte range.
func (d *Download) rememberValidators(resp *http.Response) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.etag, d.lastMod = nil, ""
	if e := resp.Header.Get("ETag"); e != "" && !strings.HasPrefix(e, "W/") {
		d.etag = []byte(e)
	}
	d.lastMod = resp.Header.Get("Last-Modified")
}

// validatorOf returns the response's strong ETag, or its Last-Modified.
func validatorOf(resp *http.Response, byETag bool) string {
	if byETag {
		if e := resp.Header.Get("ETag"); !strings.HasPrefix(e, "W/") {
			return e
		}
		return ""
	}
	return resp.Header.Get("Last-Modified")
}

// contentRange parses "bytes START-END/TOTAL" (TOTAL may be "*").
func contentRange(v string) (start, total int64, ok bool) {
	rest, found := strings.CutPrefix(v, "bytes ")
	if !found {
		return 0, 0, false
	}
	span, size, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, false
	}
	first, last, found := strings.Cut(span, "-")
	if !found {
		return 0, 0, false
	}
	s, err1 := strconv.ParseInt(first, 10, 64)
	e, err2 := strconv.ParseInt(last, 10, 64)
	if err1 != nil || err2 != nil || s < 0 || e < s {
		return 0, 0, false
	}
	total = -1
	if size != "*" {
		t, err := strconv.ParseInt(size, 10, 64)
		if err != nil || t <= e {
			return 0, 0, false
		}
		total = t
	}
	return s, total, true
}

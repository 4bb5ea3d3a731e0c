package download

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tether-iot/tether/coap/client"
	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/sockkit"
	"github.com/tether-iot/tether/sock/tlssock"
)

// HTTP downloads run over the same socket layer as CoAP ones: net/http
// dials through Options.NewSocket (with tlssock on top for https), so a
// custom socket carries HTTP too, and Suspend, Resume and offline mode work
// the same way. A resume asks for "Range: bytes=N-" with "If-Range" set to
// the strong ETag of the first response (or its Last-Modified when it had
// no strong ETag). Requests ask for "Accept-Encoding: identity": the bytes
// on disk are the bytes on the wire, so a range resume is exact. Redirects
// are followed only when Options.FollowRedirects allows, and each attempt
// follows them anew from the URL given, carrying its Range and If-Range to
// whichever server the redirects end at.

// HTTPError is a response status a download cannot continue from now. It
// classifies itself: Permanent and RetryAfter.
type HTTPError struct {
	Code   int
	Status string        // "404 Not Found"
	Wait   time.Duration // the Retry-After header's wait, zero if none
	// Location is where a redirect (3xx) not followed points, as an
	// absolute URL; "" for other statuses, or a redirect without one.
	Location string
}

// Error implements error.
func (e *HTTPError) Error() string {
	if e.Location != "" {
		return "download: HTTP " + e.Status + ", a redirect to " + e.Location + ", not followed"
	}
	return "download: HTTP " + e.Status
}

// Permanent reports whether asking again cannot help: every 4xx but 408
// Request Timeout and 429 Too Many Requests, and 501 Not Implemented and
// 505 HTTP Version Not Supported; other 5xx are transient.
func (e *HTTPError) Permanent() bool {
	switch {
	case e.Code == http.StatusRequestTimeout || e.Code == http.StatusTooManyRequests:
		return false
	case e.Code == http.StatusNotImplemented || e.Code == http.StatusHTTPVersionNotSupported:
		return true
	}
	return e.Code < 500
}

// RetryAfter is the wait the server asked for (503 or 429 with
// Retry-After).
func (e *HTTPError) RetryAfter() time.Duration { return e.Wait }

// errProtocol marks a response that breaks the rules of the exchange.
var errProtocol = sock.Permanent(errors.New("download: the server broke the protocol"))

// httpStall is how long a response's body may send nothing before the
// connection is taken as broken and the download tries again.
const httpStall = time.Minute

// errStalled ends an attempt whose HTTP body stopped flowing.
var errStalled = errors.New("download: the HTTP body stalled")

// attemptHTTP runs one HTTP request from the first byte not yet written.
func (d *Download) attemptHTTP(ctx context.Context) (progressed bool, err error) {
	d.setStep(stepConnect)
	ctx, stall := context.WithCancelCause(ctx)
	defer stall(nil)
	tr := &http.Transport{
		DisableKeepAlives:     true, // one request per attempt: Suspend ends it
		DisableCompression:    true, // identity, asked for below
		ResponseHeaderTimeout: httpStall,
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return d.dialHTTP(ctx, addr, false)
		},
		DialTLSContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return d.dialHTTP(ctx, addr, true)
		},
	}
	defer tr.CloseIdleConnections()
	d.mu.Lock()
	d.hop = hop{}
	d.mu.Unlock()
	hc := &http.Client{Transport: tr, CheckRedirect: d.checkRedirect}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.target.String(), nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Accept-Encoding", "identity")
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
	d.log.Log(ctx, client.LevelTrace, "http request", "method", req.Method, "url", req.URL.String(), "range", req.Header.Get("Range"), "if_range", req.Header.Get("If-Range"))
	resp, err := hc.Do(req)
	if err == nil {
		d.log.Log(ctx, client.LevelTrace, "http response", "status", resp.Status, "length", resp.ContentLength,
			"content_range", resp.Header.Get("Content-Range"), "etag", resp.Header.Get("ETag"))
	}
	if err != nil {
		if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) {
			err = c
		}
		return false, err
	}
	defer resp.Body.Close()

	total, skip, err := d.checkResponse(resp, written, validator, etag != "")
	if err != nil {
		return false, err
	}
	d.setStep(stepBody)
	watch := time.AfterFunc(httpStall, func() { stall(fmt.Errorf("%w: nothing for %v", errStalled, httpStall)) })
	defer watch.Stop()
	buf := make([]byte, 32<<10)
	off := written
	for {
		n, rerr := resp.Body.Read(buf)
		watch.Reset(httpStall)
		p := buf[:n]
		if skip > 0 {
			k := min(skip, int64(len(p)))
			p, skip = p[k:], skip-k
		}
		if len(p) > 0 {
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
			if c := context.Cause(ctx); errors.Is(c, errStalled) {
				rerr = c
			}
			return progressed, rerr // the connection broke, or Suspend: resume later
		}
	}
	if total >= 0 && off != total {
		return progressed, fmt.Errorf("download: body stopped at %d of %d bytes", off, total)
	}
	if total < 0 {
		d.mu.Lock()
		d.total = off
		d.mu.Unlock()
	}
	return progressed, nil
}

// checkResponse decides what a response means for the download: the
// body's total size (-1 if unknown), and how many bytes of the response
// body to skip (a server that ignored the Range); or why it cannot be used.
func (d *Download) checkResponse(resp *http.Response, written int64, validator string, byETag bool) (total, skip int64, err error) {
	total = -1
	switch {
	case resp.StatusCode == http.StatusPartialContent:
		start, size, ok := contentRange(resp.Header.Get("Content-Range"))
		if !ok || start != written {
			return 0, 0, fmt.Errorf("%w: asked for byte %d, got %q", errProtocol, written, resp.Header.Get("Content-Range"))
		}
		if validator == "" && !d.opts.AllowUnverified {
			return 0, 0, fmt.Errorf("%w: the server sends no strong ETag or Last-Modified to resume by (AllowUnverified resumes anyway)", ErrUnverified)
		}
		if got := resp.Header.Get("ETag"); byETag && got != "" && got != validator {
			// A server (or a proxy) that ignored If-Range: the range is of another version.
			return 0, 0, fmt.Errorf("%w: ETag %s before, %s in the range after the resume", ErrResourceChanged, validator, got)
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
		same := validator != "" && (validatorOf(resp, byETag) == validator)
		if !same && !(validator == "" && d.opts.AllowUnverified) {
			return 0, 0, fmt.Errorf("%w: the server sent the whole body with validator %q, expected %q",
				ErrResourceChanged, validatorOf(resp, byETag), validator)
		}
		skip = written
	case resp.StatusCode == http.StatusPreconditionFailed:
		return 0, 0, fmt.Errorf("%w: 412 Precondition Failed", ErrResourceChanged)
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && written > 0:
		return 0, 0, fmt.Errorf("%w: the server has no byte %d any more (416)", ErrResourceChanged, written)
	default:
		he := &HTTPError{Code: resp.StatusCode, Status: resp.Status, Wait: retryAfterHeader(resp.Header.Get("Retry-After"))}
		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			if loc, err := resp.Location(); err == nil {
				he.Location = loc.String()
			}
		}
		return 0, 0, he
	}
	if ce := resp.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return 0, 0, fmt.Errorf("%w: Content-Encoding %q although identity was asked for", errProtocol, ce)
	}
	if err := d.checkSize(total); err != nil {
		return 0, 0, err
	}
	return total, skip, nil
}

// hop is the server an HTTP request goes to when a redirect took it away
// from the URL's; the zero hop is the URL's own.
type hop struct {
	endpoint string // host:port, as messages name it
	secure   bool
}

// checkRedirect is net/http's CheckRedirect: it follows up to
// Options.FollowRedirects redirects in a row, never from https to another
// scheme, nor to one that is not http or https.
func (d *Download) checkRedirect(req *http.Request, via []*http.Request) error {
	limit := d.opts.FollowRedirects
	if limit == 0 {
		return http.ErrUseLastResponse // the 3xx is the answer: checkResponse reports it
	}
	from := via[len(via)-1].URL
	if len(via) > limit {
		return fmt.Errorf("%w: %d in a row, the last from %s to %s (at most %d are followed)", ErrTooManyRedirects, len(via), from, req.URL, limit)
	}
	switch to := req.URL.Scheme; {
	case to != "http" && to != "https":
		return fmt.Errorf("%w: from %s to %s: only http and https are followed", ErrRedirectRefused, from, req.URL)
	case to != "https" && slices.ContainsFunc(via, func(r *http.Request) bool { return r.URL.Scheme == "https" }):
		return fmt.Errorf("%w: from %s to %s: a download that began over https does not go on without TLS", ErrRedirectRefused, from, req.URL)
	}
	status := ""
	if req.Response != nil {
		status = req.Response.Status
	}
	d.log.Info("download: redirected", "status", status, "from", from.String(), "to", req.URL.String())
	return nil
}

// dialHTTP connects a new socket from the factory to addr (host:port, the
// URL's or, after a redirect, another server's), with TLS on top when
// secure, and makes it the download's socket.
func (d *Download) dialHTTP(ctx context.Context, addr string, secure bool) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	raw, err := d.opts.NewSocket("tcp")
	if err != nil {
		return nil, err
	}
	own := host == d.target.host && port == d.target.port
	d.mu.Lock()
	pref := &d.pref
	d.hop = hop{}
	if !own {
		d.hop = hop{endpoint: sockkit.UnresolvedAddr{Host: host, Port: port}.String(), secure: secure}
		if d.hopPrefs == nil {
			d.hopPrefs = map[string]*sock.PreferredEndpoint{}
		}
		if pref = d.hopPrefs[addr]; pref == nil {
			pref = new(sock.PreferredEndpoint)
			d.hopPrefs[addr] = pref
		}
	}
	d.mu.Unlock()
	if p, ok := sock.As[sock.EndpointPreferrer](raw); ok {
		p.SetPreferredEndpoint(pref)
	}
	s := raw
	if secure {
		cfg := d.opts.TLS
		if !own && cfg != nil && cfg.ServerName != "" {
			cfg = cfg.Clone()
			cfg.ServerName = "" // the name set for the URL's host is not this one's
		}
		s = tlssock.New(raw, cfg)
	}
	cctx, cancel := d.connectContext(ctx)
	defer cancel()
	if err := s.Connect(cctx, host, port); err != nil {
		s.Close()
		return nil, d.connectError(ctx, cctx, err)
	}
	d.logConnected(s)
	d.mu.Lock()
	old := d.s
	d.s, d.step = s, stepHeaders
	suspended := d.phase == Suspended
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

// retryAfterHeader parses Retry-After: delay-seconds or an HTTP date.
func retryAfterHeader(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, time.Until(t))
	}
	return 0
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

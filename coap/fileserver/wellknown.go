package fileserver

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tether-iot/tether/coap"
)

// wellKnownCore is the path of the resource list (RFC 6690 section 4), as
// cleanPath joins its segments.
const wellKnownCore = ".well-known/core"

// linkFormat is application/link-format (RFC 6690 section 7.3).
const linkFormat coap.MediaType = 40

// The bounds of the /.well-known/core listing. Reading a directory holds at
// most maxScan entries in memory; the listing the server keeps and sends
// is at most maxListing bytes.
const (
	// maxListing bounds the listing, in bytes: it ends at the last whole
	// link that fits.
	maxListing = 16 << 10
	// maxScan bounds the directory entries read to make one listing, all
	// directories together: a directory with more entries is listed in
	// part, in the order the file system returns them.
	maxScan = 4096
	// listingTTL is how long a listing is reused before the directory is
	// read again: a walk costs at most maxScan entries once a second,
	// however many requests arrive.
	listingTTL = time.Second
)

// listing caches the current listing. Its mutex is held while the
// directory is read, so that concurrent requests wait for one walk rather
// than each making their own.
type listing struct {
	mu       sync.Mutex
	of       *openFile // the last listing made; nil before the first
	made     time.Time
	ttl      time.Duration
	maxBytes int
	maxScan  int
	warned   bool // a truncated listing was logged
}

// memFile returns an in-memory resource (a listing) that serveBlock
// serves as it serves a file: its ETag is its content's, as a file's is.
func memFile(body []byte, format coap.MediaType) *openFile {
	of := &openFile{data: body, size: int64(len(body)), format: format}
	sum := sha256.Sum256(body)
	copy(of.etag[:], sum[:])
	return of
}

// wellKnown returns the listing for a GET of /.well-known/core, filtered
// by the request's Uri-Query options when it has some.
func (s *Server) wellKnown(opts coap.Options) (*openFile, error) {
	l := &s.listing
	l.mu.Lock()
	if l.of == nil || time.Since(l.made) >= l.ttl {
		body, truncated, err := s.makeListing(l.maxBytes, l.maxScan)
		if err != nil {
			l.mu.Unlock()
			return nil, err
		}
		l.of, l.made = memFile(body, linkFormat), time.Now()
		if truncated && !l.warned {
			l.warned = true
			s.log.Warn("fileserver: /.well-known/core lists only part of the directory", "max_bytes", l.maxBytes, "max_entries_read", l.maxScan)
		}
	}
	of := l.of
	l.mu.Unlock()
	if !hasOption(opts, coap.URIQuery) {
		return of, nil
	}
	return memFile(filterLinks(of.data, opts), linkFormat), nil
}

// makeListing lists the files the server serves, in RFC 6690 link format:
// one link per file, "</path>;ct=N;sz=N", by path in name order, depth
// first. It reports whether a bound cut it short.
func (s *Server) makeListing(maxBytes, maxScan int) ([]byte, bool, error) {
	w := walker{s: s, body: make([]byte, 0, min(maxBytes, 4096)), maxBytes: maxBytes, budget: maxScan}
	if err := w.dir(""); err != nil {
		return nil, false, err
	}
	return slices.Clip(w.body), w.truncated, nil
}

// walker reads the served tree for makeListing.
type walker struct {
	s         *Server
	body      []byte
	maxBytes  int
	budget    int  // directory entries still allowed to be read
	full      bool // the next link did not fit: nothing more is added
	truncated bool // a bound was reached (for the scan: perhaps)
}

// dir adds the files of dir ("" for the root) and of its subdirectories.
// A subdirectory that cannot be read is left out; only the root's failure
// is an error. Symbolic links to directories are not followed, so no cycle
// can form; the files under them are served but not listed.
func (w *walker) dir(dir string) error {
	if w.budget <= 0 {
		w.truncated = true
		return nil
	}
	f, err := w.s.root.Open(cmp.Or(dir, "."))
	if err != nil {
		return err
	}
	ents, err := f.ReadDir(w.budget) // at most budget entries, whatever the directory holds
	f.Close()
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if len(ents) == w.budget {
		w.truncated = true
	}
	w.budget -= len(ents)
	slices.SortFunc(ents, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	for _, e := range ents {
		if w.full {
			return nil
		}
		name := e.Name()
		if !segmentOK([]byte(name)) {
			continue
		}
		if dir != "" {
			name = dir + "/" + name
		}
		if name == wellKnownCore {
			continue // the listing itself answers this path, not the file
		}
		if e.IsDir() { // a directory, not a link to one
			if err := w.dir(name); err != nil {
				w.s.log.Debug("fileserver: listing skips a directory", "dir", name, "err", err)
			}
		} else if st, err := w.s.servable(name); err == nil {
			w.add(name, st.Size())
		}
	}
	return nil
}

// add appends the link of one file, unless it would take the listing past
// its bound, which then ends it: the listing is a prefix of the full one.
func (w *walker) add(name string, size int64) {
	start := len(w.body)
	if start > 0 {
		w.body = append(w.body, ',')
	}
	w.body = append(w.body, '<')
	for seg := range strings.SplitSeq(name, "/") {
		w.body = append(w.body, '/')
		w.body = append(w.body, url.PathEscape(seg)...)
	}
	w.body = append(w.body, ">;ct="...)
	w.body = strconv.AppendUint(w.body, uint64(coap.ContentFormatFor(name)), 10)
	w.body = append(w.body, ";sz="...)
	w.body = strconv.AppendInt(w.body, size, 10)
	if len(w.body) > w.maxBytes {
		w.body = w.body[:start]
		w.full, w.truncated = true, true
	}
}

// filterLinks returns the links of list (made by makeListing) that match
// every Uri-Query of the request (RFC 6690 section 4.1): "href=/fw.bin",
// "ct=42", "sz=1024", each value ending in "*" to match a prefix. href is
// compared with the path percent-decoded. A query for an attribute the
// links lack (rt=, if=, ...) matches none of them; a query without "=" is
// ignored.
func filterLinks(list []byte, opts coap.Options) []byte {
	var out []byte
	for link := range bytes.SplitSeq(list, []byte(",")) {
		if len(link) == 0 || !linkMatches(link, opts) {
			continue
		}
		if len(out) > 0 {
			out = append(out, ',')
		}
		out = append(out, link...)
	}
	return out
}

func linkMatches(link []byte, opts coap.Options) bool {
	for _, o := range opts {
		if o.ID != coap.URIQuery {
			continue
		}
		name, pattern, ok := bytes.Cut(o.Value, []byte("="))
		if !ok {
			continue
		}
		value, has := linkAttr(link, string(name))
		if !has || !patternMatches(string(pattern), value) {
			return false
		}
	}
	return true
}

// linkAttr returns the value of an attribute of one of makeListing's
// links, or its href ("href"), decoded.
func linkAttr(link []byte, name string) (string, bool) {
	target, params, _ := bytes.Cut(link, []byte(">"))
	if name == "href" {
		href := string(bytes.TrimPrefix(target, []byte("<")))
		if dec, err := url.PathUnescape(href); err == nil {
			href = dec
		}
		return href, true
	}
	for p := range bytes.SplitSeq(params, []byte(";")) {
		if k, v, ok := bytes.Cut(p, []byte("=")); ok && string(k) == name {
			return string(v), true
		}
	}
	return "", false
}

func patternMatches(pattern, value string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(value, prefix)
	}
	return pattern == value
}

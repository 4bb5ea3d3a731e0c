package lwm2m

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/internal/durable"
	"github.com/tether-iot/tether/lwm2m/content"
	"github.com/tether-iot/tether/sock/dtlssock"
)

// Bootstrap configures client-initiated bootstrap (LwM2M 1.1 5.2, 6.1):
// the client asks a bootstrap server for its LwM2M server's account, at
// first start when Config.ServerURL is empty, and again when registering
// keeps failing and the account says so (/1/x/16 Bootstrap on Registration
// Failure, after /1/x/17 Communication Retry Count failed Registers).
type Bootstrap struct {
	// URL is the bootstrap server: coap://host[:5683] or
	// coaps://host[:5684].
	URL string
	// PSKIdentity and PSK, or DTLS, secure a coaps bootstrap server, as
	// Config's do the LwM2M server.
	PSKIdentity, PSK []byte
	DTLS             *dtlssock.Config
	// TLS secures a coaps+tcp bootstrap server, as Config.TLS does.
	TLS *tls.Config
	// StateDir is where the account the bootstrap server wrote is kept
	// (StateDir/bootstrap.json, mode 0600: it holds keys), written
	// durably, so that a restart registers with it without bootstrapping
	// again. Required.
	StateDir string
	// Timeout bounds a bootstrap, from the Bootstrap-Request to the
	// Bootstrap-Finish; default twice MAX_TRANSMIT_WAIT (186 s with RFC
	// 7252's parameters).
	Timeout time.Duration
}

// Resources of /0 Security the client reads.
const (
	secURI          = 0
	secBootstrap    = 1
	secMode         = 2
	secIdentity     = 3
	secServerKey    = 4
	secSecretKey    = 5
	secShortID      = 10
	secCertUsage    = 15
	secCipherSuites = 16
)

// Security modes (/0/x/2).
const (
	modePSK         = 0
	modeCertificate = 2
	modeNoSec       = 3
)

// Resources of /1 Server a bootstrap writes that the client uses, besides
// those of serverResources.
const (
	resBootstrapOnFailure = 16
	resRetryCount         = 17
)

// bsTypes are the types of /0's and /1's resources (OMA registry, 1.1);
// any other resource of theirs is kept as it comes, opaque.
var bsTypes = map[uint16]map[uint16]content.Type{
	0: {0: content.String, 1: content.Boolean, 2: content.Integer, 3: content.Opaque, 4: content.Opaque, 5: content.Opaque,
		6: content.Integer, 7: content.Opaque, 8: content.Opaque, 9: content.String, 10: content.Integer, 11: content.Integer,
		12: content.Integer, 13: content.Integer, 14: content.String, 15: content.Integer, 16: content.Integer},
	1: {0: content.Integer, 1: content.Integer, 2: content.Integer, 3: content.Integer, 5: content.Integer, 6: content.Boolean,
		7: content.String, 10: content.ObjectLink, 11: content.Integer, 12: content.Time, 13: content.UnsignedInteger,
		14: content.UnsignedInteger, 15: content.Boolean, 16: content.Boolean, 17: content.UnsignedInteger,
		18: content.UnsignedInteger, 19: content.UnsignedInteger, 20: content.UnsignedInteger, 21: content.Boolean,
		22: content.String, 23: content.Boolean},
}

// bsTypeOf resolves the types of a bootstrap write to /0 or /1.
func bsTypeOf(p content.Path) (content.Type, bool) {
	if p.Len() < 3 {
		return content.TypeNone, false
	}
	ts, ok := bsTypes[p.Object()]
	if !ok {
		return content.TypeNone, false
	}
	if t, ok := ts[p.Resource()]; ok {
		return t, true
	}
	return content.Opaque, true
}

// bsStore is what a bootstrap wrote to /0 and /1: their records by path,
// bounded (maxBSRecords, maxBSBytes) so that a bootstrap server cannot make
// the client hold, and keep on disk, more than an account needs.
type bsStore struct {
	recs  map[content.Path]content.Value
	bytes int
}

// Bounds of what a bootstrap may write: room for a few accounts with
// certificate chains.
const (
	maxBSRecords = 256
	maxBSBytes   = 64 << 10
)

// errBSFull refuses a Bootstrap-Write beyond the bounds (4.13).
var errBSFull = errors.New("lwm2m: more than a bootstrap may write")

func (s *bsStore) put(r content.Record) error {
	if s.recs == nil {
		s.recs = map[content.Path]content.Value{}
	}
	old, had := s.recs[r.Path]
	size := len(r.Value.Bytes) - len(old.Bytes)
	if (!had && len(s.recs) >= maxBSRecords) || s.bytes+size > maxBSBytes {
		return errBSFull
	}
	s.recs[r.Path] = r.Value
	s.bytes += size
	return nil
}

// remove deletes what is under p (the root: all).
func (s *bsStore) remove(p content.Path) {
	for q, v := range s.recs {
		if p.Len() == 0 || p.Contains(q) {
			s.bytes -= len(v.Bytes)
			delete(s.recs, q)
		}
	}
}

// instances lists the instances of object o, in order.
func (s *bsStore) instances(o uint16) []uint16 {
	var out []uint16
	for p := range s.recs {
		if p.Object() == o && !slices.Contains(out, p.Instance()) {
			out = append(out, p.Instance())
		}
	}
	slices.Sort(out)
	return out
}

func (s *bsStore) get(o, inst, res uint16) (content.Value, bool) {
	v, ok := s.recs[content.ResourcePath(o, inst, res)]
	return v, ok
}

func (s *bsStore) clone() bsStore {
	c := bsStore{recs: make(map[content.Path]content.Value, len(s.recs)), bytes: s.bytes}
	for p, v := range s.recs {
		c.recs[p] = v
	}
	return c
}

// records lists the records under p, in path order.
func (s *bsStore) records(p content.Path) []content.Record {
	var out []content.Record
	for q, v := range s.recs {
		if p.Contains(q) {
			out = append(out, content.Record{Path: q, Value: v})
		}
	}
	slices.SortFunc(out, func(a, b content.Record) int { return a.Path.Compare(b.Path) })
	return out
}

// account is the LwM2M server a bootstrap provisioned: its /0 and /1
// instances, made usable.
type account struct {
	target      *target
	ssid        uint16
	inst        uint16 // its /1 instance
	lifetime    time.Duration
	pmin, pmax  time.Duration
	storing     bool
	binding     string
	bsOnFailure bool
	retryCount  int
}

// accountsOf checks a bootstrap's result as Bootstrap-Finish must (LwM2M
// 1.1 6.1.7.7: 4.06 when the configuration is not usable) and returns the
// account of every LwM2M server, in /0's instance order: a /0 instance
// that is not the bootstrap server's, with a URI this client speaks and
// credentials for its security mode, and the /1 instance of the same
// Short Server ID.
func (s *bsStore) accountsOf() ([]*account, error) {
	var out []*account
	var ids []uint16
	for _, inst := range s.instances(0) {
		if bsv, ok := s.get(0, inst, secBootstrap); ok && bsv.Int != 0 {
			continue
		}
		a, err := s.accountAt(inst)
		if err != nil {
			return nil, err
		}
		if slices.Contains(ids, a.ssid) {
			return nil, fmt.Errorf("/0/%d: Short Server ID %d is another server's too", inst, a.ssid)
		}
		ids = append(ids, a.ssid)
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil, errors.New("no LwM2M server account: no /0 instance but the bootstrap server's")
	}
	return out, nil
}

// accountAt is the account of /0 instance inst and its /1 instance.
func (s *bsStore) accountAt(inst uint16) (*account, error) {
	t, ssid, err := s.securityAt(inst)
	if err != nil {
		return nil, err
	}
	for _, sinst := range s.instances(1) {
		if v, ok := s.get(1, sinst, resShortServerID); ok && v.Int == int64(ssid) {
			a := &account{target: t, ssid: ssid, inst: sinst, lifetime: 86400 * time.Second, storing: true, binding: t.binding(), bsOnFailure: true, retryCount: 5}
			return a, s.serverAt(sinst, a)
		}
	}
	return nil, fmt.Errorf("/0/%d (Short Server ID %d) has no /1 instance", inst, ssid)
}

// securityAt is where /0 instance inst says its server is, how the
// connection to it is secured, and its Short Server ID.
func (s *bsStore) securityAt(inst uint16) (*target, uint16, error) {
	uri := ""
	if v, ok := s.get(0, inst, secURI); ok {
		uri = string(v.Bytes)
	}
	idv, ok := s.get(0, inst, secShortID)
	if !ok || idv.Int <= 0 || idv.Int >= 65535 {
		return nil, 0, fmt.Errorf("/0/%d has no Short Server ID", inst)
	}
	mode, _ := s.get(0, inst, secMode)
	identity, _ := s.get(0, inst, secIdentity)
	serverKey, _ := s.get(0, inst, secServerKey)
	secret, _ := s.get(0, inst, secSecretKey)
	var dtlsCfg *dtlssock.Config
	switch mode.Int {
	case modeNoSec:
		if strings.HasPrefix(uri, "coaps") {
			return nil, 0, fmt.Errorf("/0/%d: a coaps URI in NoSec mode", inst)
		}
	case modePSK:
		if len(identity.Bytes) == 0 || len(secret.Bytes) == 0 {
			return nil, 0, fmt.Errorf("/0/%d: PSK mode without an identity and a key", inst)
		}
		dtlsCfg = pskConfig(bytes.Clone(identity.Bytes), bytes.Clone(secret.Bytes))
	case modeCertificate:
		usage := int64(3) // /0/x/15 Certificate Usage: 3, domain-issued certificate, by default
		if v, ok := s.get(0, inst, secCertUsage); ok {
			usage = v.Int
		}
		cfg, err := certificateConfig(identity.Bytes, secret.Bytes, serverKey.Bytes, usage)
		if err != nil {
			return nil, 0, fmt.Errorf("/0/%d: %v", inst, err)
		}
		dtlsCfg = cfg
	default:
		return nil, 0, fmt.Errorf("/0/%d: security mode %d is not supported (PSK, certificate, NoSec)", inst, mode.Int)
	}
	if dtlsCfg != nil && !strings.HasPrefix(uri, "coaps") {
		return nil, 0, fmt.Errorf("/0/%d: credentials for a URI that is not coaps: %q", inst, uri)
	}
	t, err := newTarget(uri, nil, nil, dtlsCfg, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("/0/%d: %v", inst, err)
	}
	return t, uint16(idv.Int), nil
}

// serverAt takes /1 instance sinst's values into a.
func (s *bsStore) serverAt(sinst uint16, a *account) error {
	// Seconds as /1's Write takes them: 0..2^31 (a lifetime 1 at least),
	// so that none overflows a duration or the Register.
	seconds := func(res uint16, d *time.Duration, least int64) error {
		v, ok := s.get(1, sinst, res)
		switch {
		case !ok:
			return nil
		case v.Int < least || v.Int > 1<<31:
			return fmt.Errorf("/1/%d/%d: %d seconds is out of range", sinst, res, v.Int)
		}
		*d = time.Duration(v.Int) * time.Second
		return nil
	}
	if err := errors.Join(seconds(resLifetime, &a.lifetime, 1), seconds(resDefaultPmin, &a.pmin, 0), seconds(resDefaultPmax, &a.pmax, 0)); err != nil {
		return err
	}
	if v, ok := s.get(1, sinst, resStoring); ok {
		a.storing = v.Int != 0
	}
	if v, ok := s.get(1, sinst, resBinding); ok && len(v.Bytes) > 0 {
		if !bindingFits(string(v.Bytes), a.target) {
			return fmt.Errorf("/1/%d: binding %q does not name the transport of %s", sinst, v.Bytes, a.target.url)
		}
	}
	if v, ok := s.get(1, sinst, resBootstrapOnFailure); ok {
		a.bsOnFailure = v.Int != 0
	}
	if v, ok := s.get(1, sinst, resRetryCount); ok && v.Uint > 0 {
		a.retryCount = int(min(v.Uint, 1000))
	}
	return nil
}

// certificateConfig is the DTLS configuration of /0's certificate mode:
// the client's certificate (3, DER) and private key (5, PKCS#8 or SEC 1
// DER), and the server's certificate (4, DER): with Certificate Usage 3
// (the default) or 1, that very certificate and nothing else is accepted,
// whatever name it bears; with 0 or 2 it is the CA the server's chain must
// lead to, the name checked as usual.
func certificateConfig(certDER, keyDER, serverDER []byte, usage int64) (*dtlssock.Config, error) {
	var cfg dtlssock.Config
	if len(certDER) > 0 {
		key, err := x509.ParsePKCS8PrivateKey(keyDER)
		if err != nil {
			if k, err2 := x509.ParseECPrivateKey(keyDER); err2 == nil {
				key, err = k, nil
			}
		}
		if err != nil {
			return nil, fmt.Errorf("the secret key is no PKCS#8 or SEC 1 private key: %v", err)
		}
		cfg.Certificates = []tls.Certificate{{Certificate: [][]byte{bytes.Clone(certDER)}, PrivateKey: key}}
	}
	if len(serverDER) == 0 {
		return nil, errors.New("certificate mode without the server's certificate")
	}
	server, err := x509.ParseCertificate(serverDER)
	if err != nil {
		return nil, fmt.Errorf("the server's certificate: %v", err)
	}
	switch usage {
	case 1, 3:
		cfg.PinnedCertificate = bytes.Clone(serverDER)
	case 0, 2:
		cfg.RootCAs = x509.NewCertPool()
		cfg.RootCAs.AddCert(server)
	default:
		return nil, fmt.Errorf("certificate usage %d", usage)
	}
	return &cfg, nil
}

// bootstrapFile is where the account a bootstrap wrote is kept.
func (c *Client) bootstrapFile() string {
	return filepath.Join(c.cfg.Bootstrap.StateDir, "bootstrap.json")
}

// savedRecord is a record of bootstrap.json.
type savedRecord struct {
	Path  string        `json:"path"`
	Value content.Value `json:"value"`
}

// loadBootstrap checks Config.Bootstrap and reads what an earlier
// bootstrap wrote: its first account replaces ServerURL's, and it returns
// the others, whose sessions New makes once the objects are.
func (c *Client) loadBootstrap() ([]*account, error) {
	b := c.cfg.Bootstrap
	if b.StateDir == "" {
		return nil, fmt.Errorf("%w: Bootstrap needs a StateDir", ErrConfig)
	}
	t, err := newTarget(b.URL, b.PSKIdentity, b.PSK, b.DTLS, b.TLS)
	if err != nil {
		return nil, fmt.Errorf("bootstrap server: %w", err)
	}
	c.bs = t
	if err := os.MkdirAll(b.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: bootstrap state: %v", ErrConfig, err)
	}
	file := c.bootstrapFile()
	data, err := os.ReadFile(file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("%w: bootstrap state: %v", ErrConfig, err)
	}
	if fi, err := os.Stat(file); err == nil && fi.Mode().Perm()&0o077 != 0 {
		// It holds keys: readable by the client's user alone, as it
		// writes it. One copied in with looser permissions is fixed.
		if err := os.Chmod(file, 0o600); err != nil {
			return nil, fmt.Errorf("%w: bootstrap state %s is readable by others (%v) and cannot be made private: %v", ErrConfig, file, fi.Mode().Perm(), err)
		}
		c.log.Warn("lwm2m: bootstrap state was readable by others; made 0600", "path", file, "mode", fi.Mode().Perm())
	}
	st, err := readBootstrap(data)
	var accts []*account
	if err == nil {
		accts, err = st.accountsOf()
	}
	if err != nil {
		// A device that cannot start is worse than one that asks its
		// bootstrap server again: the file is kept aside, for a look.
		c.log.Warn("lwm2m: bootstrap state unusable; bootstrapping again", "path", file, "err", err)
		if rerr := os.Rename(file, file+".bad"); rerr != nil {
			return nil, fmt.Errorf("%w: bootstrap state %s: %v (and it cannot be moved aside: %v)", ErrConfig, file, err, rerr)
		}
		return nil, nil
	}
	c.acctStore = *st
	c.applyAccount(accts[0])
	return accts[1:], nil
}

// readBootstrap parses bootstrap.json.
func readBootstrap(data []byte) (*bsStore, error) {
	var saved []savedRecord
	if err := json.Unmarshal(data, &saved); err != nil {
		return nil, err
	}
	var st bsStore
	for _, r := range saved {
		p, err := content.ParsePath(r.Path)
		if err != nil || p.Len() < 3 || (p.Object() != 0 && p.Object() != 1) {
			return nil, fmt.Errorf("path %q", r.Path)
		}
		if err := st.put(content.Record{Path: p, Value: r.Value}); err != nil {
			return nil, err
		}
	}
	return &st, nil
}

// saveBootstrap writes a bootstrap's result durably, readable by the
// client's user alone.
func (c *Client) saveBootstrap(st *bsStore) error {
	var saved []savedRecord
	for _, r := range st.records(content.Path{}) {
		saved = append(saved, savedRecord{Path: r.Path.String(), Value: r.Value})
	}
	data, err := json.Marshal(saved)
	if err != nil {
		return err
	}
	return durable.WriteFile(c.bootstrapFile(), data, 0o600)
}

// applyAccount makes a bootstrapped account the first LwM2M server, the
// root's: its address and security, and /1's values. Only before Run or
// on Run's goroutine.
func (c *Client) applyAccount(a *account) {
	c.mu.Lock() // Servers reads it from any goroutine
	c.dm = a.target
	c.mu.Unlock()
	c.acct = a
	if c.server == nil {
		c.cfg.ShortServerID = a.ssid // New: /1 is made from it next
		c.cfg.Servers = nil          // the bootstrapped accounts replace them
		return
	}
	c.server.reset(a)
}

// bootstrapping is a bootstrap in progress: what the bootstrap server
// wrote so far, and the end it is waiting for. Touched by the reader
// (serveBootstrap) and the loop (bootstrap), under mu.
type bootstrapping struct {
	mu       sync.Mutex
	store    bsStore
	finished chan []*account // the accounts a good Bootstrap-Finish left
}

// bootstrap asks the bootstrap server for an account and serves its
// requests until its Bootstrap-Finish, within Bootstrap.Timeout. Then
// the account is saved and becomes the LwM2M server (Registering); a
// failure waits for the back-off (Waiting, then Bootstrapping again).
func (c *Client) bootstrap(ctx context.Context) {
	b := c.cfg.Bootstrap
	timeout := b.Timeout
	if timeout <= 0 {
		timeout = 2 * c.params.MaxTransmitWait()
	}
	bs := &bootstrapping{finished: make(chan []*account, 1)}
	if c.acct != nil {
		bs.store = c.acctStore.clone() // Bootstrap-Read and Discover see what is there
	}
	c.bsNow.Store(bs)
	defer c.bsNow.Store(nil)
	xctx, done := c.exchangeCtx(ctx)
	defer done()
	if c.stopReq.Load() { // Stop came before the exchange began
		return
	}
	xctx, cancel := context.WithTimeout(xctx, timeout)
	defer cancel()
	if _, err := c.connect(xctx); err != nil {
		c.bootstrapFailed(ctx, err)
		return
	}
	var q optionList
	q.path("/bs")
	q.str(coap.URIQuery, "ep="+c.cfg.Endpoint)
	q.str(coap.URIQuery, "pct="+strconv.Itoa(int(content.SenMLCBOR)))
	c.emit(Event{Kind: "bootstrap", Detail: "POST /bs ep=" + c.cfg.Endpoint + " to " + c.bs.url})
	resp, err := c.conn.p.Do(xctx, &coap.Message{Code: coap.POST, Options: q.sorted()})
	switch {
	case err != nil:
		c.bootstrapFailed(ctx, err)
		return
	case resp.Code != coap.Changed:
		c.bootstrapFailed(ctx, fmt.Errorf("Bootstrap-Request answered %v %s", coap.CodeString(resp.Code), resp.Payload))
		return
	}
	var accts []*account
	select {
	case accts = <-bs.finished:
	case <-xctx.Done():
		c.bootstrapFailed(ctx, fmt.Errorf("no Bootstrap-Finish: %w", xctx.Err()))
		return
	}
	bs.mu.Lock()
	st := bs.store.clone()
	bs.mu.Unlock()
	if err := c.saveBootstrap(&st); err != nil {
		// It works until a restart, which bootstraps again.
		c.emit(Event{Kind: "error", Op: "bootstrap", Detail: "saving the account: " + err.Error()})
	}
	c.disconnect(true)
	c.invalidate()
	c.acctStore = st
	c.applyAccount(accts[0])
	c.replaceSessions(ctx, c.accountSessions(accts[1:]))
	c.reg.regFailures = 0
	c.reg.retryDelay = c.cfg.RetryDelay
	urls := accts[0].target.url
	for _, a := range accts[1:] {
		urls += ", " + a.target.url
	}
	c.emit(Event{Kind: "bootstrap", Code: coap.CodeString(coap.Changed), Detail: "bootstrapped: " + urls})
	c.move(Registering)
}

// bootstrapFailed schedules the next bootstrap after the back-off, unless
// the bootstrap was cut short (offline mode, Reconnect, Stop), which moves
// on by itself.
func (c *Client) bootstrapFailed(ctx context.Context, err error) {
	r := &c.reg
	if ctx.Err() != nil || c.stopReq.Load() {
		return
	}
	if c.interrupt.Load() > 0 {
		// Offline mode or Reconnect: the bootstrap is still owed (a
		// server asked for it, or Registers kept failing), and comes
		// first once the client is back.
		r.bootstrapNext = true
		return
	}
	c.emit(Event{Kind: "error", Op: "bootstrap", Detail: err.Error()})
	r.retryAt = time.Now().Add(r.retryDelay)
	r.retryDelay = min(2*r.retryDelay, c.cfg.MaxRetryDelay)
	r.bootstrapNext = true
	c.disconnect(false)
	c.move(Waiting)
}

// serveBootstrap answers the bootstrap server (LwM2M 1.1 6.1.7):
// Bootstrap-Write of /0, /1 and the product's objects, Bootstrap-Delete,
// Bootstrap-Read of /1, Bootstrap-Discover, and Bootstrap-Finish. It runs
// on the reader, with objCall held.
func (c *Client) serveBootstrap(bs *bootstrapping, req *coap.Message, path content.Path) coap.Message {
	segs := optionStrings(req.Options, coap.URIPath)
	switch {
	case req.Code == coap.POST && len(segs) == 1 && segs[0] == "bs":
		bs.mu.Lock()
		accts, err := bs.store.accountsOf()
		bs.mu.Unlock()
		if err != nil {
			return c.answer(req, "bootstrap-finish", path, coap.Message{Code: coap.NotAcceptable, Payload: []byte(err.Error())})
		}
		select {
		case bs.finished <- accts:
		default: // a second Finish: the first is being applied
		}
		return c.answer(req, "bootstrap-finish", path, coap.Message{Code: coap.Changed})
	case req.Code == coap.DELETE:
		if path.Len() > 2 || (path.Len() > 0 && path.Object() != 0 && path.Object() != 1) {
			return c.answer(req, "bootstrap-delete", path, coap.Message{Code: coap.BadRequest})
		}
		bs.mu.Lock()
		bs.store.remove(path)
		bs.mu.Unlock()
		return c.answer(req, "bootstrap-delete", path, coap.Message{Code: coap.Deleted})
	case req.Code == coap.PUT && path.Len() >= 1 && (path.Object() == 0 || path.Object() == 1):
		cf, ok := coap.Uint(req.Options, coap.ContentFormat)
		if !ok {
			cf = uint32(content.TLV)
		}
		recs, err := content.Decode(content.Format(cf), path, req.Payload, bsTypeOf)
		if err != nil {
			return c.answer(req, "bootstrap-write", path, coap.Message{Code: codeFor(err), Payload: []byte(err.Error())})
		}
		bs.mu.Lock()
		trial := bs.store.clone() // all of the Write, or none of it
		var err2 error
		for _, r := range recs {
			if r.Path.Len() >= 3 {
				if err2 = trial.put(r); err2 != nil {
					break
				}
			}
		}
		if err2 == nil {
			bs.store = trial
		}
		bs.mu.Unlock()
		if err2 != nil {
			return c.answer(req, "bootstrap-write", path, coap.Message{Code: coap.RequestEntityTooLarge, Payload: []byte(err2.Error())})
		}
		return c.answer(req, "bootstrap-write", path, coap.Message{Code: coap.Changed})
	case req.Code == coap.PUT:
		// The product's objects: a Write as the LwM2M server's.
		return c.serveDM(req, path)
	case req.Code == coap.GET:
		if accept, ok := coap.Uint(req.Options, optAccept); ok && content.Format(accept) == content.LinkFormat {
			return c.answer(req, "bootstrap-discover", path, c.bootstrapDiscover(bs, path))
		}
		if path.Len() == 0 || path.Object() != 1 {
			return c.answer(req, "bootstrap-read", path, coap.Message{Code: coap.BadRequest, Payload: []byte("Bootstrap-Read is of /1")})
		}
		bs.mu.Lock()
		recs := bs.store.records(path)
		bs.mu.Unlock()
		payload, err := content.Encode(content.SenMLJSON, path, recs)
		if err != nil {
			return c.answer(req, "bootstrap-read", path, coap.Message{Code: codeFor(err)})
		}
		var opts optionList
		opts.uint(coap.ContentFormat, uint32(content.SenMLJSON))
		return c.answer(req, "bootstrap-read", path, coap.Message{Code: coap.Content, Options: opts.sorted(), Payload: payload})
	}
	return c.answer(req, "?", path, coap.Message{Code: coap.MethodNotAllowed})
}

// bootstrapDiscover lists /0 and /1's instances with their ssid and uri,
// and the client's objects (LwM2M 1.1 6.1.7.3).
func (c *Client) bootstrapDiscover(bs *bootstrapping, path content.Path) coap.Message {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	links := []content.Link{{Target: "", Params: []content.LinkParam{{Name: "lwm2m", Value: "1.1", Quoted: true}}}}
	add := func(o uint16) {
		if path.Len() > 0 && path.Object() != o {
			return
		}
		insts := bs.store.instances(o)
		if len(insts) == 0 {
			links = append(links, content.Link{Target: content.ObjectPath(o).String()})
		}
		for _, i := range insts {
			l := content.Link{Target: content.InstancePath(o, i).String()}
			if o == 0 {
				if v, ok := bs.store.get(0, i, secShortID); ok {
					l.Params = append(l.Params, content.LinkParam{Name: "ssid", Value: strconv.Itoa(int(v.Int))})
				}
				if v, ok := bs.store.get(0, i, secURI); ok {
					l.Params = append(l.Params, content.LinkParam{Name: "uri", Value: string(v.Bytes), Quoted: true})
				}
			} else if v, ok := bs.store.get(1, i, resShortServerID); ok {
				l.Params = append(l.Params, content.LinkParam{Name: "ssid", Value: strconv.Itoa(int(v.Int))})
			}
			links = append(links, l)
		}
	}
	add(0)
	add(1)
	for _, o := range c.objects {
		if o.ID() == 1 || (path.Len() > 0 && path.Object() != o.ID()) {
			continue
		}
		insts := o.Instances()
		if len(insts) == 0 {
			links = append(links, content.Link{Target: content.ObjectPath(o.ID()).String()})
		}
		for _, i := range insts {
			links = append(links, content.Link{Target: content.InstancePath(o.ID(), i).String()})
		}
	}
	if path.Len() > 0 {
		links = links[1:] // lwm2m= only at the root
	}
	var opts optionList
	opts.uint(coap.ContentFormat, uint32(content.LinkFormat))
	return coap.Message{Code: coap.Content, Options: opts.sorted(), Payload: content.AppendLinks(nil, links)}
}

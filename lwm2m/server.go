package lwm2m

import (
	"sync"
	"time"

	"github.com/tether-iot/tether/lwm2m/content"
)

// serverObject is one instance of /1 Server, a session's: its
// registration's parameters, which the server may change. serversObject
// shows them all as /1.
type serverObject struct {
	c    *Client
	inst uint16 // its instance ID, under mu once the client runs

	mu       sync.Mutex
	lifetime time.Duration
	pmin     time.Duration
	pmax     time.Duration
	store    bool
	binding  string
	mute     bool   // /1/0/23 Mute Send
	ssid     uint16 // /1/0/0, from Config or a bootstrap
}

func newServerObject(c *Client) *serverObject {
	b := "U"
	if c.dm != nil {
		b = c.dm.binding()
	}
	return &serverObject{c: c, lifetime: c.cfg.Lifetime, store: true, binding: b, ssid: c.cfg.ShortServerID}
}

// instance is the instance's ID, which a bootstrap may change while
// other servers read /1.
func (s *serverObject) instance() uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inst
}

// shortID is the Short Server ID of the instance's server.
func (s *serverObject) shortID() uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ssid
}

// Resources of /1 this client has.
const (
	resShortServerID = 0
	resLifetime      = 1
	resDefaultPmin   = 2
	resDefaultPmax   = 3
	resStoring       = 6
	resBinding       = 7
	resUpdateTrigger = 8
	resBSTrigger     = 9
	resMuteSend      = 23
)

var serverResources = []ResourceDef{
	{ID: resShortServerID, Ops: OpRead, Type: content.Integer},
	{ID: resLifetime, Ops: OpReadWrite, Type: content.Integer, Mandatory: true},
	{ID: resDefaultPmin, Ops: OpReadWrite, Type: content.Integer},
	{ID: resDefaultPmax, Ops: OpReadWrite, Type: content.Integer},
	{ID: resStoring, Ops: OpReadWrite, Type: content.Boolean},
	{ID: resBinding, Ops: OpReadWrite, Type: content.String, Mandatory: true},
	{ID: resUpdateTrigger, Ops: OpExecute},
	{ID: resBSTrigger, Ops: OpExecute},
	{ID: resMuteSend, Ops: OpReadWrite, Type: content.Boolean},
}

func (s *serverObject) ID() uint16                     { return 1 }
func (s *serverObject) Version() string                { return "" }
func (s *serverObject) Instances() []uint16            { return []uint16{s.instance()} }
func (s *serverObject) Resources(uint16) []ResourceDef { return serverResources }

// params are what Register and Update announce.
func (s *serverObject) params() (lifetime time.Duration, binding string, queue bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lifetime, s.binding, s.c.cfg.QueueMode
}

func (s *serverObject) defaultPeriods() (pmin, pmax time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pmin, s.pmax
}

func (s *serverObject) muted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mute
}

func (s *serverObject) storing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.store
}

func (s *serverObject) Read(inst, res uint16) ([]content.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := content.ResourcePath(1, inst, res)
	var v content.Value
	switch res {
	case resShortServerID:
		v = content.IntValue(int64(s.ssid))
	case resLifetime:
		v = content.IntValue(int64(s.lifetime / time.Second))
	case resDefaultPmin:
		v = content.IntValue(int64(s.pmin / time.Second))
	case resDefaultPmax:
		v = content.IntValue(int64(s.pmax / time.Second))
	case resStoring:
		v = content.BoolValue(s.store)
	case resBinding:
		v = content.StringValue(s.binding)
	case resMuteSend:
		v = content.BoolValue(s.mute)
	default:
		return nil, ErrNotFound
	}
	return []content.Record{{Path: p, Value: v}}, nil
}

func (s *serverObject) Write(inst, res uint16, recs []content.Record) error {
	if len(recs) != 1 {
		return ErrBadRequest
	}
	v := recs[0].Value
	s.mu.Lock()
	defer s.mu.Unlock()
	seconds := func() (time.Duration, error) {
		if v.Int < 0 || v.Int > 1<<31 {
			return 0, ErrBadRequest
		}
		return time.Duration(v.Int) * time.Second, nil
	}
	switch res {
	case resLifetime:
		d, err := seconds()
		if err != nil || d < time.Second {
			return ErrBadRequest
		}
		if d != s.lifetime {
			s.lifetime = d
			s.c.wantUpdate()
		}
	case resDefaultPmin, resDefaultPmax:
		d, err := seconds()
		if err != nil {
			return err
		}
		if res == resDefaultPmin {
			s.pmin = d
		} else {
			s.pmax = d
		}
		s.c.poke()
	case resStoring:
		s.store = v.Int != 0
	case resMuteSend:
		s.mute = v.Int != 0
	case resBinding:
		// The binding is the transport the server is reached over.
		if string(v.Bytes) != s.binding {
			return ErrBadRequest
		}
	default:
		return ErrMethodNotAllowed
	}
	return nil
}

// Reset returns an optional resource to its default, for a replace-Write
// of /1/0 that leaves it out: no default pmin or pmax, notifications
// stored while offline.
func (s *serverObject) Reset(inst, res uint16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch res {
	case resDefaultPmin:
		s.pmin = 0
	case resDefaultPmax:
		s.pmax = 0
	case resStoring:
		s.store = true
	case resMuteSend:
		s.mute = false
	default:
		return ErrMethodNotAllowed
	}
	s.c.poke()
	return nil
}

// reset takes /1's values from a bootstrapped account.
func (s *serverObject) reset(a *account) {
	s.mu.Lock()
	s.lifetime, s.pmin, s.pmax, s.store, s.binding, s.ssid, s.inst = a.lifetime, a.pmin, a.pmax, a.storing, a.binding, a.ssid, a.inst
	s.mu.Unlock()
}

func (s *serverObject) Execute(inst, res uint16, _ []byte) error {
	switch res {
	case resUpdateTrigger:
		s.c.wantUpdate()
	case resBSTrigger:
		// Server-initiated bootstrap (LwM2M 1.1 5.2.3): the client asks
		// its bootstrap server again, which only the root has.
		root := s.c.root
		if root.bs == nil {
			return ErrMethodNotAllowed
		}
		root.bsReq.Store(true)
		root.poke()
	default:
		return ErrMethodNotAllowed
	}
	return nil
}

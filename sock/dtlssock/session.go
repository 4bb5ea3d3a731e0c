package dtlssock

import (
	"bytes"
	"container/list"
	"sync"
	"time"

	"github.com/pion/dtls/v3"
)

// sessionStore is a socket's own dtls.SessionStore: the sessions of its
// full handshakes, so the next handshake can resume one by ID. It lives as
// long as the socket, and Close empties it.
type sessionStore struct {
	mu sync.Mutex
	m  map[string]dtls.Session
}

func (s *sessionStore) Set(key []byte, sess dtls.Session) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]dtls.Session{}
	}
	s.m[string(key)] = sess
	return nil
}

// Get returns the session for key, or the zero Session, which pion takes
// for none.
func (s *sessionStore) Get(key []byte) (dtls.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[string(key)], nil
}

func (s *sessionStore) Del(key []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, string(key))
	return nil
}

func (s *sessionStore) clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m = nil
}

// offered wraps a handshake's session store to learn which session ID pion
// offered the server: the handshake was abbreviated if the server kept it.
type offered struct {
	dtls.SessionStore
	mu sync.Mutex
	id []byte
}

func (o *offered) Get(key []byte) (dtls.Session, error) {
	sess, err := o.SessionStore.Get(key)
	o.mu.Lock()
	o.id = bytes.Clone(sess.ID)
	o.mu.Unlock()
	return sess, err
}

// resumedAs reports whether a handshake that ended with session ID id
// resumed the session offered.
func (o *offered) resumedAs(id []byte) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.id) > 0 && bytes.Equal(o.id, id)
}

// serverSessions is a listener's dtls.SessionStore: the secrets of its
// sessions, by session ID, so that a client whose session has left memory
// resumes it in an abbreviated handshake. It holds at most max sessions,
// the least recently used leaving first, each for at most life after its
// full handshake. An entry is the Session pion gives it (the ID, the 48-byte
// master secret, the suite, the PSK identity's hash, a certificate peer's
// chain): a few hundred bytes with a pre-shared key.
type serverSessions struct {
	max  int
	life time.Duration

	mu      sync.Mutex
	m       map[string]*list.Element // of *storedSession
	lru     list.List                // front: the most recently used
	resumed int                      // sessions found for a resumption
}

type storedSession struct {
	key  string
	sess dtls.Session
	at   time.Time // when the full handshake stored it
}

func newServerSessions(max int, life time.Duration) *serverSessions {
	return &serverSessions{max: max, life: life, m: map[string]*list.Element{}}
}

func (s *serverSessions) Set(key []byte, sess dtls.Session) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[string(key)]; ok {
		e.Value.(*storedSession).sess = sess
		s.lru.MoveToFront(e)
		return nil
	}
	for s.lru.Len() >= s.max {
		s.removeLocked(s.lru.Back())
	}
	k := string(key)
	s.m[k] = s.lru.PushFront(&storedSession{key: k, sess: sess, at: time.Now()})
	return nil
}

// Get returns the session for key, or the zero Session, which pion takes
// for none.
func (s *serverSessions) Get(key []byte) (dtls.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[string(key)]
	if !ok {
		return dtls.Session{}, nil
	}
	st := e.Value.(*storedSession)
	if time.Since(st.at) > s.life {
		s.removeLocked(e)
		return dtls.Session{}, nil
	}
	s.lru.MoveToFront(e)
	s.resumed++
	return st.sess, nil
}

func (s *serverSessions) Del(key []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[string(key)]; ok {
		s.removeLocked(e)
	}
	return nil
}

func (s *serverSessions) removeLocked(e *list.Element) {
	delete(s.m, e.Value.(*storedSession).key)
	s.lru.Remove(e)
}

// Len returns how many sessions the store holds.
func (s *serverSessions) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lru.Len()
}

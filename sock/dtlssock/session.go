package dtlssock

import (
	"bytes"
	"sync"

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

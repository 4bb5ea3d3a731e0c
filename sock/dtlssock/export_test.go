package dtlssock

import (
	"net"
	"time"

	"github.com/pion/dtls/v3"
)

// NewSessionStore gives the tests the socket's in-memory session store,
// for a server that resumes sessions by ID.
func NewSessionStore() dtls.SessionStore { return &sessionStore{} }

// ServerOptions are pion's server options for cfg, for the tests' pion
// servers.
func ServerOptions(cfg *Config) []dtls.ServerOption {
	return cfg.serverOptions(dtls.RandomCIDGenerator(cidLen), nil)
}

// ListenStats is what a listener holds and what its limits did.
type ListenStats struct {
	Handshakes, Unproven, Live, Stored int   // in progress, of them unproven, established, resumable
	Held                               int64 // bytes held before handshakes completed
	Displaced, Expired, Refused        int
	Idled, Evicted                     int
}

// Stats returns ln's (a Listen listener's) figures.
func Stats(ln net.Listener) ListenStats {
	l := ln.(*listener)
	l.mu.Lock()
	defer l.mu.Unlock()
	return ListenStats{
		Handshakes: l.handshakes, Unproven: l.unproven.Len(), Live: l.live.Len(), Stored: l.sessions.Len(),
		Held:      l.held.Load(),
		Displaced: l.stats.displaced, Expired: l.stats.expired, Refused: l.stats.refused,
		Idled: l.stats.idled, Evicted: l.stats.evicted,
	}
}

// NewServerSessions gives the tests a listener's session store.
func NewServerSessions(max int, life time.Duration) dtls.SessionStore {
	return newServerSessions(max, life)
}

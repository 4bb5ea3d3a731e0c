package dtlssock

import "github.com/pion/dtls/v3"

// NewSessionStore gives the tests the socket's in-memory session store,
// for a server that resumes sessions by ID.
func NewSessionStore() dtls.SessionStore { return &sessionStore{} }

// ServerOptions are pion's server options for cfg, for the tests' pion
// servers.
func ServerOptions(cfg *Config) []dtls.ServerOption {
	return cfg.serverOptions(dtls.RandomCIDGenerator(cidLen))
}

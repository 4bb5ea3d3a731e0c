package dtlssock

import "github.com/pion/dtls/v3"

// NewSessionStore gives the tests the socket's in-memory session store,
// for a server that resumes sessions by ID.
func NewSessionStore() dtls.SessionStore { return &sessionStore{} }

package sock

// Layered is embedded by a socket that decorates another one (a TLS or DTLS
// layer, a compressing or logging one): it answers the address getters, the
// byte counters and stickiness from the socket underneath, so a layer
// writes only what it changes. Create it with Layer.
type Layered struct {
	raw Socket
}

// Layer returns the Layered for a socket decorating raw.
func Layer(raw Socket) Layered { return Layered{raw: raw} }

// Raw returns the socket underneath.
func (l Layered) Raw() Socket { return l.raw }

// RemoteHost implements RemoteHoster from the socket underneath.
func (l Layered) RemoteHost() (string, error) { return RemoteHost(l.raw) }

// RemoteHostname implements RemoteHostnamer from the socket underneath.
func (l Layered) RemoteHostname() (string, error) { return RemoteHostname(l.raw) }

// RemotePort implements RemotePorter from the socket underneath.
func (l Layered) RemotePort() (string, error) { return RemotePort(l.raw) }

// LocalHost implements LocalHoster from the socket underneath.
func (l Layered) LocalHost() (string, error) { return LocalHost(l.raw) }

// LocalPort implements LocalPorter from the socket underneath.
func (l Layered) LocalPort() (string, error) { return LocalPort(l.raw) }

// BytesSent implements ByteCounter: the count underneath, the layer's own
// overhead included (0 if the socket underneath counts nothing).
func (l Layered) BytesSent() uint64 { n, _ := BytesSent(l.raw); return n }

// BytesReceived implements ByteCounter, as BytesSent.
func (l Layered) BytesReceived() uint64 { n, _ := BytesReceived(l.raw); return n }

// SetPreferredEndpoint implements EndpointPreferrer through the socket
// underneath (a no-op if it has no stickiness).
func (l Layered) SetPreferredEndpoint(p *PreferredEndpoint) { SetPreferredEndpoint(l.raw, p) }

package sock

// Config configures a socket of tether's own (netsock.New,
// simnet.Host.NewSocket). The zero value uses Go's resolver, keeps the
// resolver's address order and has no stickiness.
type Config struct {
	// Resolver resolves names given to Connect and Bind; nil means
	// net.DefaultResolver.
	Resolver Resolver
	// Prefer puts one family's addresses first when a name resolves to
	// both (the Anjay reference prefers IPv6; tether keeps the resolver's
	// order unless told).
	Prefer Family
	// Preferred is the stickiness storage; see PreferredEndpoint.
	Preferred *PreferredEndpoint
}

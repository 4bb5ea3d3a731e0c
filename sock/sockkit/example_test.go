package sockkit_test

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/sockkit"
)

// IP address stickiness: whatever order DNS answers in, the stored endpoint
// comes first while the name still resolves to it.
func ExampleCandidates() {
	var dns sockkit.StaticResolver
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	var pe sock.PreferredEndpoint
	pe.Store(netip.AddrPortFrom(a, 5683))

	dns.Set("coap.example", b, a)
	cands, _ := sockkit.Candidates(context.Background(), &dns, "coap.example", "5683", sockkit.Policy{Sticky: &pe})
	fmt.Println(cands)

	dns.Set("coap.example", b) // the node left the pool
	cands, _ = sockkit.Candidates(context.Background(), &dns, "coap.example", "5683", sockkit.Policy{Sticky: &pe})
	fmt.Println(cands)
	// Output:
	// [192.0.2.1:5683 192.0.2.2:5683]
	// [192.0.2.2:5683]
}

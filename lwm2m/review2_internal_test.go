package lwm2m

import (
	"testing"
	"time"
)

// TestReview2BootstrapRacesReaders: a bootstrap that ends while the
// client runs makes its account the first server's (applyAccount, on the
// loop): it replaces the server's address and its /1 instance ID. The
// user's Servers() reads the address, and another server's Read of /1
// (serversObject, on that session's reader) reads the instance IDs, from
// other goroutines, at any time; neither may race with the loop's write.
func TestReview2BootstrapRacesReaders(t *testing.T) {
	c, err := New(Config{Endpoint: "x", ServerURL: "coap://10.0.0.1",
		Servers: []Server{{URL: "coap://10.0.0.3", ShortServerID: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	tg, err := newTarget("coap://10.0.0.9", nil, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := &account{target: tg, ssid: 5, inst: 3, lifetime: time.Hour, binding: "U"}
	done := make(chan struct{})
	go func() { // the loop, at the end of a server-initiated bootstrap
		defer close(done)
		c.applyAccount(a)
	}()
	_ = c.Servers()                    // the user
	_ = serversObject{c}.Instances()   // the second server reads /1
	_, _ = serversObject{c}.Read(3, 0) // or /1/3/0
	<-done
	if got := c.Servers()[0]; got.URL != "coap://10.0.0.9" || got.ShortServerID != 5 {
		t.Errorf("after the bootstrap, the first server is %+v", got)
	}
}

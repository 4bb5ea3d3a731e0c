package lwm2mtest_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/tether-iot/tether/lwm2m"
	"github.com/tether-iot/tether/lwm2m/content"
	"github.com/tether-iot/tether/lwm2m/lwm2mtest"
)

// A device (tether's own LwM2M client here; any client will do) registers
// with the test server, which reads its Device object, sets an attribute and discovers it; the
// record shows what the device did. In a test, lwm2mtest.Start(t, nil)
// replaces the first lines and closes the server when the test ends.
func Example() {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	srv, err := lwm2mtest.NewServer(pc, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	dev, err := lwm2m.New(lwm2m.Config{
		Endpoint:  "dev-1",
		ServerURL: srv.URL(), // coap://127.0.0.1:PORT
		Lifetime:  5 * time.Minute,
		Device:    lwm2m.Device{Manufacturer: "ACME", Model: "T1", FirmwareVersion: "1.0"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go dev.Run(ctx)

	if _, err := srv.WaitRegistered(ctx, "dev-1", 0); err != nil {
		fmt.Println(err)
		return
	}
	m, err := srv.Read(ctx, "dev-1", "/3/0/0", content.Text)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("/3/0/0 Manufacturer: %s\n", m.Payload)
	if _, err = srv.WriteAttributes(ctx, "dev-1", "/3/0/3", "pmax=60"); err != nil {
		fmt.Println(err)
		return
	}
	if m, err = srv.Discover(ctx, "dev-1", "/3/0/3"); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("Discover /3/0/3: %s\n", m.Payload)
	if err := dev.Stop(ctx); err != nil { // De-register
		fmt.Println(err)
		return
	}
	if err := srv.WaitDeregistered(ctx, "dev-1"); err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range srv.Records("dev-1") {
		fmt.Println(r)
	}
	// Output:
	// /3/0/0 Manufacturer: ACME
	// Discover /3/0/3: </3/0/3>;pmax=60
	// dev-1 register /rd?ep=dev-1&lt=300&lwm2m=1.1&b=U: 2.01 Created
	// dev-1 read /3/0/0: 2.05 Content
	// dev-1 write-attributes /3/0/3?pmax=60: 2.04 Changed
	// dev-1 discover /3/0/3: 2.05 Content
	// dev-1 deregister /rd/0: 2.02 Deleted
}

package lwm2m_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/tether-iot/tether/lwm2m"
	"github.com/tether-iot/tether/lwm2m/content"
	"github.com/tether-iot/tether/lwm2m/lwm2mtest"
)

// thermometer is a product's own object: IPSO Temperature (3303), one
// instance, its Sensor Value (5700) readable and observable.
type thermometer struct {
	mu      sync.Mutex
	celsius float64
}

func (t *thermometer) ID() uint16          { return 3303 }
func (t *thermometer) Version() string     { return "" }
func (t *thermometer) Instances() []uint16 { return []uint16{0} }
func (t *thermometer) Resources(uint16) []lwm2m.ResourceDef {
	return []lwm2m.ResourceDef{{ID: 5700, Ops: lwm2m.OpRead, Type: content.Float}}
}

func (t *thermometer) Read(inst, res uint16) ([]content.Record, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return []content.Record{{Path: content.ResourcePath(3303, inst, res), Value: content.FloatValue(t.celsius)}}, nil
}

func (t *thermometer) Write(uint16, uint16, []content.Record) error { return lwm2m.ErrMethodNotAllowed }
func (t *thermometer) Execute(uint16, uint16, []byte) error         { return lwm2m.ErrMethodNotAllowed }

// set changes the reading, as the device's own sensor does, and tells the
// client, whose observers are then notified.
func (t *thermometer) set(c *lwm2m.Client, celsius float64) {
	t.mu.Lock()
	t.celsius = celsius
	t.mu.Unlock()
	c.Changed(content.ResourcePath(3303, 0, 5700))
}

// A device with a product object of its own registers with an LwM2M server
// (here the repository's test server on loopback), which reads it, and
// deregisters when it stops.
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

	c, err := lwm2m.New(lwm2m.Config{
		Endpoint:  "example-1",
		ServerURL: "coap://" + pc.LocalAddr().String(),
		Lifetime:  5 * time.Minute,
		Device:    lwm2m.Device{Manufacturer: "ACME", Model: "T1"},
		Objects:   []lwm2m.Object{&thermometer{celsius: 21.5}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go c.Run(ctx)

	reg, err := srv.WaitRegistered(ctx, "example-1", 0)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("registered at %s with %s\n", reg.Location, content.AppendLinks(nil, reg.Links))
	m, err := srv.Read(ctx, "example-1", "/3303/0/5700")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("/3303/0/5700 = %s\n", m.Payload)
	if err := c.Stop(ctx); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("deregistered:", srv.WaitDeregistered(ctx, "example-1") == nil)
	// Output:
	// registered at /rd/0 with </>;rt="oma.lwm2m";ct=110,</1/0>,</3/0>,</3303/0>
	// /3303/0/5700 = 21.5
	// deregistered: true
}

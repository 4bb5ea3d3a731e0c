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
// (here lwm2mtest's, on loopback), which reads it and observes it; the
// device reports a new reading, and deregisters when it stops. In a test,
// lwm2mtest.Start(t, nil) replaces the first lines.
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

	therm := &thermometer{celsius: 21.5}
	c, err := lwm2m.New(lwm2m.Config{
		Endpoint:  "example-1",
		ServerURL: srv.URL(), // coap://127.0.0.1:PORT
		Lifetime:  5 * time.Minute,
		Device:    lwm2m.Device{Manufacturer: "ACME", Model: "T1"},
		Objects:   []lwm2m.Object{therm},
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
	m, err := srv.Read(ctx, "example-1", "/3303/0/5700", content.Text)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("/3303/0/5700 = %s\n", m.Payload)

	o, err := srv.Observe(ctx, "example-1", "/3303/0/5700", content.Text)
	if err != nil {
		fmt.Println(err)
		return
	}
	therm.set(c, 22.25) // the sensor reads a new value
	select {
	case n := <-o.Notifications:
		fmt.Printf("notified: /3303/0/5700 = %s\n", n.Payload)
	case <-ctx.Done():
		fmt.Println(ctx.Err())
		return
	}

	if err := c.Stop(ctx); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("deregistered:", srv.WaitDeregistered(ctx, "example-1") == nil)
	for _, r := range srv.Records("example-1") {
		fmt.Println(r)
	}
	// Output:
	// registered at /rd/0 with </>;rt="oma.lwm2m";ct=110,</1/0>,</3/0>,</3303/0>
	// /3303/0/5700 = 21.5
	// notified: /3303/0/5700 = 22.25
	// deregistered: true
	// example-1 register /rd?ep=example-1&lt=300&lwm2m=1.1&b=U: 2.01 Created
	// example-1 read /3303/0/5700: 2.05 Content
	// example-1 observe /3303/0/5700: 2.05 Content
	// example-1 notify /3303/0/5700: 2.05 Content
	// example-1 deregister /rd/0: 2.02 Deleted
}

// A gateway hosts clients by the thousand: Start runs one without a
// goroutine of the caller's, and a client holds none of its own while it
// waits. This one registers with two servers, one over UDP and one over
// TCP (RFC 8323), each with a registration, a /1 instance and a lifetime
// of its own.
func ExampleClient_Start() {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	udpSrv, err := lwm2mtest.NewServer(pc, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer udpSrv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	tcpSrv, err := lwm2mtest.NewTCPServer(ln, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer tcpSrv.Close()

	c, err := lwm2m.New(lwm2m.Config{
		Endpoint:  "gw-7",
		ServerURL: udpSrv.URL(), // coap://127.0.0.1:PORT, Short Server ID 1
		Servers:   []lwm2m.Server{{URL: tcpSrv.URL(), ShortServerID: 2, Lifetime: time.Hour}},
		Lifetime:  5 * time.Minute,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	for _, srv := range []*lwm2mtest.Server{udpSrv, tcpSrv} {
		reg, err := srv.WaitRegistered(ctx, "gw-7", 0)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("binding %s, lifetime %v, objects %s\n", reg.Binding, reg.Lifetime, content.AppendLinks(nil, reg.Links[1:]))
	}
	if err := c.Stop(ctx); err != nil {
		fmt.Println(err)
		return
	}
	<-c.Done()
	fmt.Println("stopped:", c.Err(), udpSrv.WaitDeregistered(ctx, "gw-7") == nil, tcpSrv.WaitDeregistered(ctx, "gw-7") == nil)
	// Output:
	// binding U, lifetime 5m0s, objects </1/0>,</1/1>,</3/0>
	// binding T, lifetime 1h0m0s, objects </1/0>,</1/1>,</3/0>
	// stopped: <nil> true true
}

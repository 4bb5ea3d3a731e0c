package lwm2m

import (
	"sync"
	"time"

	"github.com/tether-iot/tether/lwm2m/content"
)

// Device describes the device for /3 Device.
type Device struct {
	Manufacturer, Model, SerialNumber, FirmwareVersion string
	// FirmwareVersionFunc, when set, gives /3/0/3 Firmware Version on
	// every read, in place of FirmwareVersion: the version the device
	// runs now, which a successful update changes. Once Install has
	// succeeded, the client tells the observers of /3/0/3. It is called
	// with none of the client's locks held, and must not wait for the
	// client.
	FirmwareVersionFunc func() string
	// Reboot runs on a goroutine of its own when the server executes
	// /3/0/4, as the 2.04 answer is sent (so it should give that answer a
	// moment before the device goes down); nil means the client
	// registers again, as a device does after a reboot.
	Reboot func()
}

// deviceObject is /3 Device.
type deviceObject struct {
	c   *Client
	cfg Device

	mu     sync.Mutex
	offset time.Duration // Current Time as the server set it, less the clock
}

func newDeviceObject(c *Client, d Device) *deviceObject { return &deviceObject{c: c, cfg: d} }

// Resources of /3 this client has.
const (
	resManufacturer    = 0
	resModel           = 1
	resSerial          = 2
	resFirmwareVersion = 3
	resReboot          = 4
	resErrorCode       = 11
	resCurrentTime     = 13
	resBindings        = 16
)

var deviceResources = []ResourceDef{
	{ID: resManufacturer, Ops: OpRead, Type: content.String},
	{ID: resModel, Ops: OpRead, Type: content.String},
	{ID: resSerial, Ops: OpRead, Type: content.String},
	{ID: resFirmwareVersion, Ops: OpRead, Type: content.String},
	{ID: resReboot, Ops: OpExecute},
	{ID: resErrorCode, Ops: OpRead, Type: content.Integer, Multiple: true},
	{ID: resCurrentTime, Ops: OpReadWrite, Type: content.Time},
	{ID: resBindings, Ops: OpRead, Type: content.String},
}

func (d *deviceObject) ID() uint16                     { return 3 }
func (d *deviceObject) Version() string                { return "" }
func (d *deviceObject) Instances() []uint16            { return []uint16{0} }
func (d *deviceObject) Resources(uint16) []ResourceDef { return deviceResources }

func (d *deviceObject) Read(inst, res uint16) ([]content.Record, error) {
	p := content.ResourcePath(3, inst, res)
	str := func(s string) ([]content.Record, error) {
		return []content.Record{{Path: p, Value: content.StringValue(s)}}, nil
	}
	switch res {
	case resManufacturer:
		return str(d.cfg.Manufacturer)
	case resModel:
		return str(d.cfg.Model)
	case resSerial:
		return str(d.cfg.SerialNumber)
	case resFirmwareVersion:
		if d.cfg.FirmwareVersionFunc != nil {
			return str(d.cfg.FirmwareVersionFunc())
		}
		return str(d.cfg.FirmwareVersion)
	case resErrorCode:
		// One instance, 0: no error.
		return []content.Record{{Path: content.ResourceInstancePath(3, inst, res, 0), Value: content.IntValue(0)}}, nil
	case resCurrentTime:
		d.mu.Lock()
		now := time.Now().Add(d.offset)
		d.mu.Unlock()
		return []content.Record{{Path: p, Value: content.TimeValue(now)}}, nil
	case resBindings:
		b := "UT" // UDP and TCP (RFC 8323)
		if d.c.cfg.QueueMode {
			b += "Q"
		}
		return str(b)
	}
	return nil, ErrNotFound
}

func (d *deviceObject) Write(inst, res uint16, recs []content.Record) error {
	if res != resCurrentTime || len(recs) != 1 {
		return ErrMethodNotAllowed
	}
	d.mu.Lock()
	d.offset = time.Until(time.Unix(recs[0].Value.Int, 0))
	d.mu.Unlock()
	return nil
}

// Reset sets Current Time back to the device's clock, for a replace-Write
// of /3/0 that leaves it out.
func (d *deviceObject) Reset(inst, res uint16) error {
	if res != resCurrentTime {
		return ErrMethodNotAllowed
	}
	d.mu.Lock()
	d.offset = 0
	d.mu.Unlock()
	return nil
}

func (d *deviceObject) Execute(inst, res uint16, _ []byte) error {
	if res != resReboot {
		return ErrMethodNotAllowed
	}
	if d.cfg.Reboot != nil {
		go d.cfg.Reboot()
		return nil
	}
	for _, s := range d.c.sessions() {
		s.reboot.Store(true)
		s.poke()
	}
	return nil
}

package lwm2mtest_test

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/peer"
	"github.com/tether-iot/tether/lwm2m/content"
)

// datagrams is what the fake device sends and receives on: a sock.Socket
// (simnet, dtlssock, tlssock) or a connected loopback UDP socket; over
// TCP (newStreamDevice) the bytes of a stream, as a stream socket's
// Receive returns them.
type datagrams interface {
	Send(b []byte) error
	Receive(b []byte) (int, error)
	Close() error
}

// udpConn adapts a connected *net.UDPConn.
type udpConn struct{ *net.UDPConn }

func (c udpConn) Send(b []byte) error           { _, err := c.Write(b); return err }
func (c udpConn) Receive(b []byte) (int, error) { return c.Read(b) }
func (c udpConn) Close() error                  { return c.UDPConn.Close() }

// streamConn adapts a net.Conn (a loopback TCP or TLS connection).
type streamConn struct{ net.Conn }

func (c streamConn) Send(b []byte) error           { _, err := c.Write(b); return err }
func (c streamConn) Receive(b []byte) (int, error) { return c.Read(b) }

// request is a request the device received, copied.
type request struct {
	code    coap.Code
	path    string
	query   []string
	observe int // -1: no Observe option
	accept  int // -1: none
	cf      int // -1: none
	payload []byte
	token   []byte
}

// device is a minimal LwM2M client written by hand on coap/peer (a Peer
// over datagrams, a Stream over TCP): it registers, answers
// Read/Write/Execute/Write-Attributes/Discover on text values and
// Create/Delete, and sends notifications when the test says so.
type device struct {
	t      *testing.T
	p      peer.Exchanger
	read   func() // the reader's loop, until the connection ends
	conn   datagrams
	local  string // its address as the server sees it
	reader sync.WaitGroup

	mu       sync.Mutex
	values   map[string]string // path → text value
	observed map[string][]byte // path → token of the server's observation
	seq      uint32
	reqs     []request
	resets   [][]byte // tokens of notifications the server reset
}

func newDevice(t *testing.T, conn datagrams, local string) *device {
	d := &device{t: t, conn: conn, local: local,
		values:   map[string]string{"/3/0/0": "tether", "/3/0/1": "model-1", "/5/0/3": "0"},
		observed: map[string][]byte{}}
	p := peer.New(conn.Send, &peer.Config{Handler: d.handle, OnReset: func(tok []byte) {
		d.mu.Lock()
		d.resets = append(d.resets, bytes.Clone(tok))
		d.mu.Unlock()
	}})
	d.p = p
	d.read = func() {
		buf := make([]byte, 2048)
		for {
			n, err := d.conn.Receive(buf)
			if err != nil {
				return
			}
			p.Input(buf[:n])
		}
	}
	d.startReader()
	t.Cleanup(d.close)
	return d
}

// newStreamDevice is newDevice over a connected stream (TCP, TLS): a
// coap/peer.Stream, which sends its CSM at once.
func newStreamDevice(t *testing.T, conn datagrams, local string) *device {
	d := &device{t: t, conn: conn, local: local,
		values:   map[string]string{"/3/0/0": "tether", "/3/0/1": "model-1", "/5/0/3": "0"},
		observed: map[string][]byte{}}
	st, err := peer.NewStream(conn.Send, &peer.StreamConfig{Handler: d.handle})
	if err != nil {
		t.Fatal(err)
	}
	d.p = st
	d.read = func() { _ = st.Serve(conn.Receive) }
	d.startReader()
	t.Cleanup(d.close)
	return d
}

// startReader feeds the peer from the socket until Receive fails (closed,
// or shut down: a test that reconnects starts a new reader).
func (d *device) startReader() {
	d.reader.Add(1)
	go func() {
		defer d.reader.Done()
		d.read()
	}()
}

func (d *device) close() {
	d.p.Close()
	d.conn.Close()
	d.reader.Wait()
}

func optInt(opts coap.Options, id coap.OptionID) int {
	if v, ok := coap.Uint(opts, id); ok {
		return int(v)
	}
	return -1
}

// handle answers the server's requests.
func (d *device) handle(req *coap.Message) coap.Message {
	r := request{code: req.Code, observe: optInt(req.Options, coap.Observe),
		accept: optInt(req.Options, 17), cf: optInt(req.Options, coap.ContentFormat),
		payload: bytes.Clone(req.Payload), token: bytes.Clone(req.Token)}
	for _, o := range req.Options {
		switch o.ID {
		case coap.URIPath:
			r.path += "/" + string(o.Value)
		case coap.URIQuery:
			r.query = append(r.query, string(o.Value))
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reqs = append(d.reqs, r)
	v, ok := d.values[r.path]
	switch {
	case req.Code == coap.POST && strings.Count(r.path, "/") == 1: // Create, as instance 1
		d.values[r.path+"/1"] = string(r.payload)
		return coap.Message{Code: coap.Created, Options: coap.Options{
			{ID: 8, Value: []byte(r.path[1:])}, {ID: 8, Value: []byte("1")}}}
	case req.Code == coap.POST:
		return coap.Message{Code: 2<<5 | 4} // Execute, partial Write
	case req.Code == coap.GET && r.accept == int(content.LinkFormat):
		return coap.Message{Code: coap.Content, Options: cf(content.LinkFormat), Payload: []byte("<" + r.path + ">")}
	case !ok:
		return coap.Message{Code: coap.NotFound}
	case req.Code == coap.GET && r.accept > 0:
		return coap.Message{Code: 4<<5 | 6} // 4.06: text only
	case req.Code == coap.GET:
		resp := coap.Message{Code: coap.Content, Options: cf(content.Text), Payload: []byte(v)}
		switch r.observe {
		case 0:
			d.observed[r.path] = r.token
			d.seq++
			resp.Options = append(coap.Options{{ID: coap.Observe, Value: u24(d.seq)}}, resp.Options...)
		case 1:
			delete(d.observed, r.path)
		}
		return resp
	case req.Code == coap.PUT && len(r.query) > 0:
		return coap.Message{Code: 2<<5 | 4} // Write-Attributes
	case req.Code == coap.PUT:
		d.values[r.path] = string(r.payload)
		return coap.Message{Code: 2<<5 | 4}
	case req.Code == coap.DELETE:
		delete(d.values, r.path)
		return coap.Message{Code: coap.Deleted}
	}
	return coap.Message{Code: coap.MethodNotAllowed}
}

func cf(f content.Format) coap.Options {
	return coap.Options{{ID: coap.ContentFormat, Value: u24(uint32(f))}}
}

// u24 is an option's minimal unsigned encoding.
func u24(v uint32) []byte {
	var b []byte
	for ; v > 0; v >>= 8 {
		b = append([]byte{byte(v)}, b...)
	}
	return b
}

// notification is a notification of value under token; under d.mu.
func (d *device) notification(token []byte, value string) *coap.Message {
	d.seq++
	return &coap.Message{Code: coap.Content, Token: token, Payload: []byte(value),
		Options: coap.Options{{ID: coap.Observe, Value: u24(d.seq)}, {ID: coap.ContentFormat}}}
}

// notify sends a notification of path's observation with value.
func (d *device) notify(ctx context.Context, path, value string, confirmable bool) error {
	d.mu.Lock()
	tok, ok := d.observed[path]
	if !ok {
		tok = []byte("gone") // cancelled: notify under the old token anyway
		for _, r := range d.reqs {
			if r.path == path && r.observe >= 0 {
				tok = r.token
			}
		}
	}
	m := d.notification(tok, value)
	d.values[path] = value
	d.mu.Unlock()
	return d.p.Notify(ctx, m, confirmable)
}

// last returns the last request the device received.
func (d *device) last() request {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.reqs) == 0 {
		d.t.Fatal("the device received no request")
	}
	return d.reqs[len(d.reqs)-1]
}

func (d *device) resetTokens() [][]byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([][]byte(nil), d.resets...)
}

const objectLinks = `</>;rt="oma.lwm2m";ct=110,</1/0>,</3/0>,</5/0>;ver=1.1`

// rd sends a registration-interface request: method on path with query.
func (d *device) rd(ctx context.Context, code coap.Code, path string, payload string, query ...string) (*coap.Message, error) {
	req := &coap.Message{Code: code}
	for _, seg := range strings.Split(strings.Trim(path, "/"), "/") {
		req.Options = append(req.Options, coap.Option{ID: coap.URIPath, Value: []byte(seg)})
	}
	if payload != "" {
		req.Options = append(req.Options, coap.Option{ID: coap.ContentFormat, Value: u24(uint32(content.LinkFormat))})
		req.Payload = []byte(payload)
	}
	for _, q := range query {
		req.Options = append(req.Options, coap.Option{ID: coap.URIQuery, Value: []byte(q)})
	}
	return d.p.Do(ctx, req)
}

// register sends Register for ep as LwM2M version v and returns the
// location the server gave.
func (d *device) register(ctx context.Context, ep, v string, query ...string) (*coap.Message, string) {
	d.t.Helper()
	q := append([]string{"ep=" + ep, "lt=60", "lwm2m=" + v}, query...)
	resp, err := d.rd(ctx, coap.POST, "/rd", objectLinks, q...)
	if err != nil {
		d.t.Fatalf("Register: %v", err)
	}
	var loc string
	for _, o := range resp.Options {
		if o.ID == 8 {
			loc += "/" + string(o.Value)
		}
	}
	return resp, loc
}

// codeOf formats a response code, or the error.
func codeOf(m *coap.Message, err error) string {
	if err != nil {
		return err.Error()
	}
	return coap.CodeString(m.Code)
}

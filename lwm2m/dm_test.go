package lwm2m

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/lwm2m/content"
)

// testClient is a client whose handler the tests call directly, with no
// network: the Device Management semantics in isolation.
func testClient(t testing.TB) *Client {
	t.Helper()
	dir := t.TempDir()
	c, err := New(Config{
		Endpoint:  "dm-test",
		ServerURL: "coap://127.0.0.1:5683",
		Lifetime:  300 * time.Second,
		Device:    Device{Manufacturer: "Open Mobile Alliance", Model: "Lightweight M2M Client", SerialNumber: "345000123", FirmwareVersion: "1.0"},
		Firmware:  &Firmware{Dir: dir, Install: func(context.Context, string) error { return nil }},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.firmware.start(ctx)
	t.Cleanup(func() { cancel(); c.firmware.stop() })
	return c
}

// request builds a server request.
func request(code coap.Code, path string, opts ...coap.Option) *coap.Message {
	var l optionList
	l.path(path)
	l = append(l, opts...)
	return &coap.Message{Code: code, Token: []byte{1, 2}, Options: l.sorted()}
}

func uintOpt(id coap.OptionID, v uint32) coap.Option {
	var l optionList
	l.uint(id, v)
	return l[0]
}

func TestDeviceManagement(t *testing.T) {
	accept := func(f content.Format) coap.Option { return uintOpt(optAccept, uint32(f)) }
	cf := func(f content.Format) coap.Option { return uintOpt(coap.ContentFormat, uint32(f)) }
	query := func(q string) coap.Option { return coap.Option{ID: coap.URIQuery, Value: []byte(q)} }
	tests := []struct {
		name    string
		req     *coap.Message
		payload string
		code    coap.Code
		format  int    // the response's Content-Format; -1: none
		body    string // the response's payload, when not empty
	}{
		{"read a string as text", request(coap.GET, "/3/0/0"), "", coap.Content, 0, "Open Mobile Alliance"},
		{"read an integer as text", request(coap.GET, "/1/0/1"), "", coap.Content, 0, "300"},
		{"read an instance as SenML JSON", request(coap.GET, "/1/0"), "", coap.Content, 110,
			`[{"bn":"/1/0/","n":"0","v":1},{"n":"1","v":300},{"n":"2","v":0},{"n":"3","v":0},{"n":"6","vb":true},{"n":"7","vs":"U"},{"n":"23","vb":false}]`},
		{"read a multiple resource without Accept", request(coap.GET, "/5/0/8"), "", coap.Content, 110,
			`[{"bn":"/5/0/8/","n":"0","v":0},{"n":"1","v":2},{"n":"2","v":3},{"n":"3","v":4},{"n":"4","v":5}]`},
		{"read with Accept TLV", request(coap.GET, "/3/0/0", accept(content.TLV)), "", coap.Content, 11542, "\xc8\x00\x14Open Mobile Alliance"},
		{"read an object", request(coap.GET, "/5", accept(content.SenMLJSON)), "", coap.Content, 110, ""},
		{"an Accept this client does not write", request(coap.GET, "/3/0", accept(50)), "", coap.NotAcceptable, -1, ""},
		{"text of a whole instance", request(coap.GET, "/3/0", accept(content.Text)), "", coap.NotAcceptable, -1, ""},
		{"no such object", request(coap.GET, "/42"), "", coap.NotFound, -1, ""},
		{"no such instance", request(coap.GET, "/3/1"), "", coap.NotFound, -1, ""},
		{"no such resource", request(coap.GET, "/3/0/99"), "", coap.NotFound, -1, ""},
		{"the Security object is the client's", request(coap.GET, "/0/0"), "", coap.Unauthorized, -1, ""},
		{"read of an executable resource", request(coap.GET, "/3/0/4"), "", coap.MethodNotAllowed, -1, ""},
		{"write a read-only resource", request(coap.PUT, "/3/0/0", cf(content.Text)), "x", coap.MethodNotAllowed, -1, ""},
		{"write the lifetime as text", request(coap.PUT, "/1/0/1", cf(content.Text)), "120", coap.Changed, -1, ""},
		{"write a bad integer", request(coap.PUT, "/1/0/1", cf(content.Text)), "soon", coap.BadRequest, -1, ""},
		{"write in a format this client does not read", request(coap.PUT, "/1/0/1", cf(50)), "{}", coap.UnsupportedContentFormat, -1, ""},
		{"partial update of an instance in SenML JSON", request(coap.POST, "/1/0", cf(content.SenMLJSON)), `[{"bn":"/1/0/","n":"2","v":5},{"n":"3","v":60}]`, coap.Changed, -1, ""},
		{"partial update naming a read-only resource", request(coap.POST, "/1/0", cf(content.SenMLJSON)), `[{"bn":"/1/0/","n":"0","v":5}]`, coap.MethodNotAllowed, -1, ""},
		{"execute the Registration Update Trigger", request(coap.POST, "/1/0/8"), "", coap.Changed, -1, ""},
		{"execute a readable resource", request(coap.POST, "/1/0/1"), "", coap.MethodNotAllowed, -1, ""},
		{"create an instance", request(coap.POST, "/3"), "", coap.MethodNotAllowed, -1, ""},
		{"delete", request(coap.DELETE, "/3/0"), "", coap.MethodNotAllowed, -1, ""},
		{"discover an instance", request(coap.GET, "/1/0", accept(content.LinkFormat)), "", coap.Content, 40,
			"</1/0>,</1/0/0>,</1/0/1>,</1/0/2>,</1/0/3>,</1/0/6>,</1/0/7>,</1/0/8>,</1/0/9>,</1/0/23>"},
		{"discover a multiple resource", request(coap.GET, "/3/0/11", accept(content.LinkFormat)), "", coap.Content, 40, "</3/0/11>;dim=1"},
		{"write attributes", request(coap.PUT, "/5/0/3", query("pmin=1"), query("pmax=30")), "", coap.Changed, -1, ""},
		{"unknown attribute", request(coap.PUT, "/5/0/3", query("xyz=5")), "", coap.BadRequest, -1, ""},
		{"gt on an integer", request(coap.PUT, "/5/0/3", query("gt=1.5"), query("st=1")), "", coap.Changed, -1, ""},
		{"gt on a string", request(coap.PUT, "/3/0/0", query("gt=1")), "", coap.BadRequest, -1, ""},
		{"gt on an instance", request(coap.PUT, "/5/0", query("gt=1")), "", coap.BadRequest, -1, ""},
		{"lt not under gt", request(coap.PUT, "/5/0/5", query("lt=5"), query("gt=5")), "", coap.BadRequest, -1, ""},
		{"lt + 2 st not under gt", request(coap.PUT, "/5/0/5", query("lt=1"), query("gt=5"), query("st=2")), "", coap.BadRequest, -1, ""},
		{"st negative", request(coap.PUT, "/5/0/5", query("st=-1")), "", coap.BadRequest, -1, ""},
		{"gt NaN", request(coap.PUT, "/5/0/5", query("gt=NaN")), "", coap.BadRequest, -1, ""},
		{"epmax not over epmin", request(coap.PUT, "/5/0", query("epmin=10"), query("epmax=10")), "", coap.BadRequest, -1, ""},
		{"epmin and epmax on an instance", request(coap.PUT, "/5/0", query("epmin=1"), query("epmax=10")), "", coap.Changed, -1, ""},
		{"clear gt and st", request(coap.PUT, "/5/0/3", query("gt"), query("st")), "", coap.Changed, -1, ""},
		{"pmax below pmin", request(coap.PUT, "/5/0/3", query("pmin=10"), query("pmax=5")), "", coap.BadRequest, -1, ""},
		{"attributes on a missing resource", request(coap.PUT, "/5/0/99", query("pmin=1")), "", coap.NotFound, -1, ""},
		{"Update while Idle", request(coap.POST, "/5/0/2"), "", coap.MethodNotAllowed, -1, ""},
		{"push a package", request(coap.PUT, "/5/0/0", cf(content.OpaqueFormat)), "\x01\x02", coap.MethodNotAllowed, -1, ""},
		{"a malformed path", request(coap.GET, "/3/x"), "", coap.BadRequest, -1, ""},
	}
	c := testClient(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Payload = []byte(tc.payload)
			resp := c.serve(tc.req)
			if resp.Code != tc.code {
				t.Fatalf("code %v, want %v (payload %q)", coap.CodeString(resp.Code), coap.CodeString(tc.code), resp.Payload)
			}
			f, ok := coap.Uint(resp.Options, coap.ContentFormat)
			switch {
			case tc.format < 0 && ok:
				t.Errorf("Content-Format %d on a %v", f, coap.CodeString(resp.Code))
			case tc.format >= 0 && (!ok || int(f) != tc.format):
				t.Errorf("Content-Format %d (present %v), want %d", f, ok, tc.format)
			}
			if tc.body != "" && string(resp.Payload) != tc.body {
				t.Errorf("payload\n%q, want\n%q", resp.Payload, tc.body)
			}
		})
	}
	// The writes took effect.
	if got, _, _ := c.server.params(); got != 120*time.Second {
		t.Errorf("lifetime %v after the write, want 2m0s", got)
	}
	if pmin, pmax := c.server.defaultPeriods(); pmin != 5*time.Second || pmax != 60*time.Second {
		t.Errorf("default periods %v %v, want 5s 1m0s", pmin, pmax)
	}
	if !c.updateReq.Load() {
		t.Error("neither the lifetime write nor the trigger asked for an Update")
	}
	if a := c.effective(content.ResourcePath(5, 0, 3)); a.pmin != time.Second || a.pmax != 30*time.Second {
		pmin, pmax := a.pmin, a.pmax
		t.Errorf("/5/0/3 periods %v %v, want 1s 30s", pmin, pmax)
	}
}

// TestFirmwareErrorPaths drives /5's state machine through the writes and
// executes LwM2M 1.1 E.6 specifies, with no download reaching a server.
func TestFirmwareErrorPaths(t *testing.T) {
	text := func(path, v string) *coap.Message {
		m := request(coap.PUT, path, uintOpt(coap.ContentFormat, 0))
		m.Payload = []byte(v)
		return m
	}
	steps := []struct {
		name   string
		req    *coap.Message
		code   coap.Code
		state  FirmwareState
		result UpdateResult
	}{
		{"unsupported scheme", text("/5/0/1", "ftp://fw.example/fw.bin"), coap.BadRequest, StateIdle, ResultUnsupportedProtocol},
		{"coaps without DTLS credentials", text("/5/0/1", "coaps://fw.example/fw.bin"), coap.BadRequest, StateIdle, ResultUnsupportedProtocol},
		{"no host", text("/5/0/1", "coap:///fw.bin"), coap.BadRequest, StateIdle, ResultInvalidURI},
		{"too long", text("/5/0/1", "coap://fw.example/"+strings.Repeat("a", 250)), coap.BadRequest, StateIdle, ResultInvalidURI},
		{"Update while Idle", request(coap.POST, "/5/0/2"), coap.MethodNotAllowed, StateIdle, ResultInvalidURI},
		{"a download starts", text("/5/0/1", "coap://127.0.0.1:9/fw.bin"), coap.Changed, StateDownloading, ResultInitial},
		{"a second URI while Downloading", text("/5/0/1", "coap://127.0.0.1:9/other.bin"), coap.BadRequest, StateDownloading, ResultInitial},
		{"Update while Downloading", request(coap.POST, "/5/0/2"), coap.MethodNotAllowed, StateDownloading, ResultInitial},
		{"cancel by empty URI", text("/5/0/1", ""), coap.Changed, StateIdle, ResultInitial},
	}
	c := testClient(t)
	for _, s := range steps {
		resp := c.serve(s.req)
		c.firmware.mu.Lock()
		st := c.firmware.st
		c.firmware.mu.Unlock()
		if resp.Code != s.code || st.State != s.state || st.Result != s.result {
			t.Errorf("%s: %v, State %d, Result %d; want %v, %d, %d", s.name,
				coap.CodeString(resp.Code), st.State, st.Result, coap.CodeString(s.code), s.state, s.result)
		}
	}
	// The cancel removed the download's files, once the download let go
	// of them, and saved the state.
	c.firmware.settle()
	matches, _ := filepath.Glob(filepath.Join(c.firmware.cfg.Dir, "firmware.bin*"))
	if len(matches) != 0 {
		t.Errorf("files left after the cancel: %v", matches)
	}
	b, err := os.ReadFile(c.firmware.statePath)
	if err != nil {
		t.Fatal(err)
	}
	var saved fwState
	if err := json.Unmarshal(b, &saved); err != nil || saved != (fwState{}) {
		t.Errorf("saved state %s (%v), want Idle with no URI", b, err)
	}
}

// FuzzServe feeds the Device Management handler any request a server (or
// anyone who reaches the socket) can send: it must answer every one with a
// response code, and never panic. The client has no /5, so no request
// starts a download.
func FuzzServe(f *testing.F) {
	for _, m := range []*coap.Message{
		request(coap.GET, "/3/0"),
		request(coap.GET, "/3/0/11", uintOpt(optAccept, uint32(content.TLV))),
		request(coap.GET, "/1/0", uintOpt(coap.Observe, 0)),
		request(coap.PUT, "/1/0/1", uintOpt(coap.ContentFormat, 0)),
		request(coap.PUT, "/1/0", uintOpt(coap.ContentFormat, uint32(content.TLV))),
		request(coap.POST, "/1/0", uintOpt(coap.ContentFormat, uint32(content.SenMLCBOR))),
		request(coap.PUT, "/3/0/13", coap.Option{ID: coap.URIQuery, Value: []byte("pmin=1")}),
		request(coap.POST, "/1/0/8"),
		request(coap.Code(8), "/3/0"),
	} {
		m.Type, m.MessageID = coap.Confirmable, 1
		b, err := coap.AppendUDP(nil, m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	c, err := New(Config{Endpoint: "fuzz", ServerURL: "coap://127.0.0.1:5683", Device: Device{Manufacturer: "m"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m coap.Message
		if coap.DecodeUDP(b, &m) != nil || m.Code == coap.Empty || m.Code>>5 != 0 {
			return // the peer answers those itself
		}
		resp := c.serve(&m)
		if !coap.IsResponse(resp.Code) {
			t.Fatalf("answered %v", coap.CodeString(resp.Code))
		}
		if len(c.obs) > maxObservations {
			t.Fatalf("%d observations", len(c.obs))
		}
	})
}

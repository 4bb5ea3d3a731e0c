package fileserver_test

import (
	"bytes"
	"crypto/sha256"
	"net"
	"testing"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/fileserver"
	"github.com/tether-iot/tether/internal/testrig/coaprig"
)

func opt(id int, value string) coap.Option {
	return coap.Option{ID: coap.OptionID(id), Value: []byte(value)}
}

// optionCases are requests for /a.txt ("hello") with extra options, and
// what each must get (RFC 7252 5.4.1, 5.4.3, 5.4.5, 5.7.2, 5.10).
func optionCases() []struct {
	name string
	path string
	opts []coap.Option
	code coap.Code
	diag string // the 4.02's diagnostic payload
} {
	etag := sha256.Sum256([]byte("hello"))
	return []struct {
		name string
		path string
		opts []coap.Option
		code coap.Code
		diag string
	}{
		{"plain", "/a.txt", nil, coap.Content, ""},
		// Critical options the server does not know: unassigned (2051,
		// 64999), experimental (65001), OCF's (2049), OSCORE (9), EDHOC
		// (21), Q-Block1 (19), Q-Block2 (31).
		{"unassigned 2051", "/a.txt", []coap.Option{opt(2051, "x")}, coap.BadOption, "unknown critical option 2051"},
		{"unassigned 64999", "/a.txt", []coap.Option{opt(64999, "")}, coap.BadOption, "unknown critical option 64999"},
		{"experimental 65001", "/a.txt", []coap.Option{opt(65001, "x")}, coap.BadOption, "unknown critical option 65001"},
		{"OCF 2049", "/a.txt", []coap.Option{opt(2049, "\x08\x00")}, coap.BadOption, "unknown critical option 2049"},
		{"OSCORE 9", "/a.txt", []coap.Option{opt(9, "")}, coap.BadOption, "unknown critical option 9"},
		{"EDHOC 21", "/a.txt", []coap.Option{opt(21, "")}, coap.BadOption, "unknown critical option 21"},
		{"Q-Block1 19", "/a.txt", []coap.Option{opt(19, "\x06")}, coap.BadOption, "unknown critical option 19"},
		{"Q-Block2 31", "/a.txt", []coap.Option{opt(31, "\x06")}, coap.BadOption, "unknown critical option 31"},
		{"unknown on a missing file", "/missing", []coap.Option{opt(65001, "x")}, coap.BadOption, "unknown critical option 65001"},
		{"unknown on the listing", "/.well-known/core", []coap.Option{opt(2051, "x")}, coap.BadOption, "unknown critical option 2051"},
		// Elective options, known or not, are ignored.
		{"elective 65000", "/a.txt", []coap.Option{opt(65000, "x")}, coap.Content, ""},
		{"elective 2048", "/a.txt", []coap.Option{opt(2048, "x")}, coap.Content, ""},
		{"Observe", "/a.txt", []coap.Option{opt(6, "")}, coap.Content, ""},
		{"ETag", "/a.txt", []coap.Option{opt(4, "12345678")}, coap.Content, ""},
		{"No-Response", "/a.txt", []coap.Option{opt(258, "\x02")}, coap.Content, ""},
		{"Hop-Limit", "/a.txt", []coap.Option{opt(16, "\x10")}, coap.Content, ""},
		{"Size2 twice", "/a.txt", []coap.Option{opt(28, ""), opt(28, "")}, coap.Content, ""},
		// Known critical options, used or accepted.
		{"Uri-Host and Uri-Port", "/a.txt", []coap.Option{opt(3, "fw.example"), opt(7, "\x16\x33")}, coap.Content, ""},
		{"Block1 on a GET", "/a.txt", []coap.Option{opt(27, "\x02")}, coap.Content, ""},
		{"Accept its format", "/a.txt", []coap.Option{opt(17, "")}, coap.Content, ""},
		{"Accept link format", "/.well-known/core", []coap.Option{opt(17, "\x28")}, coap.Content, ""},
		{"If-Match its ETag", "/a.txt", []coap.Option{opt(1, "nope"), opt(1, string(etag[:8]))}, coap.Content, ""},
		{"If-Match empty", "/a.txt", []coap.Option{opt(1, "")}, coap.Content, ""},
		// ...and refused.
		{"Accept JSON", "/a.txt", []coap.Option{opt(17, "\x32")}, coap.NotAcceptable, ""},
		{"Accept text for the listing", "/.well-known/core", []coap.Option{opt(17, "")}, coap.NotAcceptable, ""},
		{"If-Match another ETag", "/a.txt", []coap.Option{opt(1, "12345678")}, coap.PreconditionFailed, ""},
		{"If-None-Match", "/a.txt", []coap.Option{opt(5, "")}, coap.PreconditionFailed, ""},
		{"If-None-Match, missing", "/missing", []coap.Option{opt(5, "")}, coap.NotFound, ""},
		{"Proxy-Uri", "/a.txt", []coap.Option{opt(35, "coap://elsewhere/a.txt")}, coap.ProxyingNotSupported, ""},
		{"Proxy-Scheme", "/a.txt", []coap.Option{opt(39, "coap")}, coap.ProxyingNotSupported, ""},
		// Treated as unrecognized: repeated (5.4.5), wrong length (5.4.3).
		{"Uri-Host twice", "/a.txt", []coap.Option{opt(3, "a"), opt(3, "b")}, coap.BadOption, "option 3 repeated"},
		{"Block2 twice", "/a.txt", []coap.Option{opt(23, "\x02"), opt(23, "\x12")}, coap.BadOption, "option 23 repeated"},
		{"Accept twice", "/a.txt", []coap.Option{opt(17, ""), opt(17, "")}, coap.BadOption, "option 17 repeated"},
		{"empty Uri-Host", "/a.txt", []coap.Option{opt(3, "")}, coap.BadOption, "option 3: value length out of range"},
		{"4-byte Block2", "/a.txt", []coap.Option{opt(23, "\x00\x00\x00\x02")}, coap.BadOption, "option 23: value length out of range"},
		{"If-None-Match with a value", "/a.txt", []coap.Option{opt(5, "x")}, coap.BadOption, "option 5: value length out of range"},
		{"256-byte segment", "/a.txt", []coap.Option{opt(11, string(bytes.Repeat([]byte("a"), 256)))}, coap.BadOption, "option 11: value length out of range"},
	}
}

// TestCriticalOptions: every case over UDP (Confirmable) and TCP.
func TestCriticalOptions(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.txt", []byte("hello"))
	udp, tcp := serve(t, dir, &logSink{})
	for _, network := range []string{"udp", "tcp"} {
		c := coaprig.Dial(t, network, map[string]string{"udp": udp, "tcp": tcp}[network])
		for _, tc := range optionCases() {
			if network == "udp" && tc.name == "Q-Block2 31" {
				// Served over UDP (a CON request gets its one block:
				// TestQBlock2Refusals); unrecognized over TCP.
				tc.code, tc.diag = coap.Content, ""
			}
			r := get1(t, c, append(pathOpts(tc.path), tc.opts...)...)
			if r.Code != tc.code || (tc.code == coap.BadOption && string(r.Payload) != tc.diag) {
				t.Errorf("%s, %s: %v %q, want %v %q", network, tc.name, coap.CodeString(r.Code), r.Payload, coap.CodeString(tc.code), tc.diag)
			}
			if tc.code == coap.Content && tc.path == "/a.txt" && string(r.Payload) != "hello" {
				t.Errorf("%s, %s: payload %q", network, tc.name, r.Payload)
			}
		}
	}
}

// TestCriticalOptionBeforeMethod: the options are checked first, so a POST
// with an unknown critical option is 4.02, and without one 4.05.
func TestCriticalOptionBeforeMethod(t *testing.T) {
	udp, _ := serve(t, t.TempDir(), &logSink{})
	c := coaprig.Dial(t, "udp", udp)
	for _, tc := range []struct {
		opts []coap.Option
		want coap.Code
	}{{[]coap.Option{opt(65001, "")}, coap.BadOption}, {nil, coap.MethodNotAllowed}} {
		m := &coap.Message{Code: coap.POST, Options: append(coap.Options(nil), tc.opts...)}
		m.Options = m.Options.Add(opt(int(coap.URIPath), "a"))
		if r := do(t, c, m); r.Code != tc.want {
			t.Errorf("POST with %v: %v, want %v", tc.opts, coap.CodeString(r.Code), coap.CodeString(tc.want))
		}
	}
}

// rawUDP sends one datagram to the server and returns the answer, or nil
// when none comes within wait.
func rawUDP(t *testing.T, port string, m *coap.Message, wait time.Duration) *coap.Message {
	t.Helper()
	conn, err := net.Dial("udp4", "127.0.0.1:"+port)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	b, err := coap.AppendUDP(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	conn.Write(b)
	conn.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 2048)
	n, err := conn.Read(buf)
	if err != nil {
		return nil
	}
	out := &coap.Message{Options: make(coap.Options, 0, 16)}
	if err := coap.DecodeUDP(buf[:n], out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCriticalOptionsOverUDPTypes: on the wire, a Confirmable request with
// an unknown critical option gets a piggybacked 4.02 with its diagnostic;
// a Non-confirmable one is rejected with a Reset of its message ID (RFC
// 7252 5.4.1 and 4.3); an unknown elective one changes nothing.
func TestCriticalOptionsOverUDPTypes(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.txt", []byte("hello"))
	udp, _ := serve(t, dir, &logSink{})
	for _, tc := range []struct {
		typ     coap.Type
		option  int
		want    coap.Type
		code    coap.Code
		payload string
	}{
		{coap.Confirmable, 65001, coap.Acknowledgement, coap.BadOption, "unknown critical option 65001"},
		{coap.NonConfirmable, 65001, coap.Reset, coap.Empty, ""},
		{coap.NonConfirmable, 2049, coap.Reset, coap.Empty, ""},
		{coap.Confirmable, 65000, coap.Acknowledgement, coap.Content, "hello"},
		{coap.NonConfirmable, 65000, coap.NonConfirmable, coap.Content, "hello"},
	} {
		m := &coap.Message{Type: tc.typ, Code: coap.GET, MessageID: 0x1234, Token: []byte{7, 7}}
		m.Options = m.Options.Add(opt(int(coap.URIPath), "a.txt")).Add(opt(tc.option, "x"))
		r := rawUDP(t, udp, m, 5*time.Second)
		if r == nil {
			t.Fatalf("%s with option %d: no answer", coap.TypeString(tc.typ), tc.option)
		}
		if r.Type != tc.want || r.Code != tc.code || string(r.Payload) != tc.payload {
			t.Errorf("%s with option %d: %s %v %q, want %s %v %q", coap.TypeString(tc.typ), tc.option,
				coap.TypeString(r.Type), coap.CodeString(r.Code), r.Payload, coap.TypeString(tc.want), coap.CodeString(tc.code), tc.payload)
		}
		if tc.want != coap.NonConfirmable && r.MessageID != 0x1234 {
			t.Errorf("%s with option %d: message ID %#x", coap.TypeString(tc.typ), tc.option, r.MessageID)
		}
		if wantTok := tc.want != coap.Reset; wantTok != bytes.Equal(r.Token, []byte{7, 7}) {
			t.Errorf("%s with option %d: token %v", coap.TypeString(tc.typ), tc.option, r.Token)
		}
	}
}

// TestCriticalOptionsOverDatagramListener: the path DTLS takes
// (ServeDatagramListener) answers as UDP does.
func TestCriticalOptionsOverDatagramListener(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.txt", []byte("hello"))
	srv, err := fileserver.New(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	ours, theirs := net.Pipe()
	defer ours.Close()
	done := make(chan error, 1)
	go func() { done <- srv.ServeDatagramListener(&oneConnListener{conn: theirs, closed: make(chan struct{})}) }()
	defer func() {
		srv.Close()
		if err := <-done; err != fileserver.ErrServerClosed {
			t.Errorf("ServeDatagramListener: %v", err)
		}
	}()
	for _, tc := range []struct {
		typ     coap.Type
		option  int
		want    coap.Type
		code    coap.Code
		payload string
	}{
		{coap.Confirmable, 65001, coap.Acknowledgement, coap.BadOption, "unknown critical option 65001"},
		{coap.NonConfirmable, 65001, coap.Reset, coap.Empty, ""},
		{coap.Confirmable, 65000, coap.Acknowledgement, coap.Content, "hello"},
	} {
		m := &coap.Message{Type: tc.typ, Code: coap.GET, MessageID: 0x4321, Token: []byte{1}}
		m.Options = m.Options.Add(opt(int(coap.URIPath), "a.txt")).Add(opt(tc.option, ""))
		b, _ := coap.AppendUDP(nil, m)
		ours.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := ours.Write(b); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 2048)
		n, err := ours.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		r := &coap.Message{Options: make(coap.Options, 0, 8)}
		if err := coap.DecodeUDP(buf[:n], r); err != nil {
			t.Fatal(err)
		}
		if r.Type != tc.want || r.Code != tc.code || string(r.Payload) != tc.payload {
			t.Errorf("%s with option %d: %s %v %q", coap.TypeString(tc.typ), tc.option, coap.TypeString(r.Type), coap.CodeString(r.Code), r.Payload)
		}
	}
}

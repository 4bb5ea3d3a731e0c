package coap_test

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/tether-iot/tether/coap"
)

func newMsg() *coap.Message {
	return &coap.Message{Options: make(coap.Options, 0, 16)}
}

// sample builds a message with every option tether uses.
func sample(typ coap.Type, code coap.Code, payload []byte) *coap.Message {
	m := newMsg()
	m.Type, m.Code, m.MessageID = typ, code, 0x1234
	m.Token = []byte{1, 2, 3, 4, 5, 6, 7, 8}
	buf := make([]byte, 0, 64)
	m.Options = m.Options.Add(coap.Option{ID: coap.URIPath, Value: []byte("fw")})
	m.Options = m.Options.Add(coap.Option{ID: coap.URIPath, Value: []byte("image.bin")})
	m.Options = m.Options.Add(coap.Option{ID: coap.ETag, Value: []byte{0xde, 0xad, 0xbe, 0xef}})
	m.Options = m.Options.Add(coap.Option{ID: coap.IfMatch, Value: []byte{0xde, 0xad}})
	m.Options, buf = coap.AppendUint(m.Options, buf, coap.Observe, 0)
	m.Options, buf = coap.AppendUint(m.Options, buf, coap.ContentFormat, 42)
	m.Options, buf = coap.AppendUint(m.Options, buf, coap.Block2, coap.Block{Num: 4095, More: true, SZX: 6}.Value())
	m.Options, buf = coap.AppendUint(m.Options, buf, coap.Block1, coap.Block{Num: 1, SZX: 2}.Value())
	m.Options, buf = coap.AppendUint(m.Options, buf, coap.Size2, 5<<20)
	m.Options, _ = coap.AppendUint(m.Options, buf, coap.Size1, 300)
	m.Payload = payload
	return m
}

func equalMsg(t *testing.T, got, want *coap.Message, udp bool) {
	t.Helper()
	if got.Code != want.Code || !bytes.Equal(got.Token, want.Token) || !bytes.Equal(got.Payload, want.Payload) {
		t.Fatalf("decoded %v, want %v", got, want)
	}
	if udp && (got.Type != want.Type || got.MessageID != want.MessageID) {
		t.Fatalf("decoded type %v MID %d, want %v %d", got.Type, got.MessageID, want.Type, want.MessageID)
	}
	if !slices.EqualFunc(got.Options, want.Options, func(a, b coap.Option) bool { return a.ID == b.ID && bytes.Equal(a.Value, b.Value) }) {
		t.Fatalf("options %v, want %v", got.Options, want.Options)
	}
}

func TestRoundTripUDP(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    *coap.Message
	}{
		{"CON GET, every option", sample(coap.Confirmable, coap.GET, nil)},
		{"ACK 2.05 with 1 KiB", sample(coap.Acknowledgement, coap.Content, bytes.Repeat([]byte{0xAB}, 1024))},
		{"NON 4.04", sample(coap.NonConfirmable, coap.NotFound, []byte("not found"))},
		{"empty ACK", &coap.Message{Type: coap.Acknowledgement, Code: coap.Empty, MessageID: 7}},
		{"RST", &coap.Message{Type: coap.Reset, Code: coap.Empty, MessageID: 65535}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wire, err := coap.AppendUDP(nil, tc.m)
			if err != nil {
				t.Fatal(err)
			}
			got := newMsg()
			if err := coap.DecodeUDP(wire, got); err != nil {
				t.Fatal(err)
			}
			equalMsg(t, got, tc.m, true)
			blk, ok, err := coap.GetBlock(got.Options, coap.Block2, false)
			if len(tc.m.Options) > 0 && (!ok || err != nil || blk != (coap.Block{Num: 4095, More: true, SZX: 6})) {
				t.Fatalf("Block2 = %v %v %v", blk, ok, err)
			}
		})
	}
}

func TestRoundTripTCP(t *testing.T) {
	csm := newMsg()
	csm.Code = coap.CSM
	var buf []byte
	csm.Options, buf = coap.AppendUint(csm.Options, buf, coap.MaxMessageSize, 8192)
	csm.Options = csm.Options.Add(coap.Option{ID: coap.BlockWiseTransfer})
	_ = buf
	for _, tc := range []struct {
		name string
		m    *coap.Message
	}{
		{"GET", sample(0, coap.GET, nil)},
		{"2.05 with 64 KiB (extended length)", sample(0, coap.Content, bytes.Repeat([]byte{1}, 64<<10))},
		{"2.05 with 300 bytes", sample(0, coap.Content, bytes.Repeat([]byte{2}, 300))},
		{"CSM", csm},
		{"Ping", &coap.Message{Code: coap.Ping, Token: []byte{9}}},
		{"Pong", &coap.Message{Code: coap.Pong, Token: []byte{9}}},
		{"Release", &coap.Message{Code: coap.Release}},
		{"Abort", &coap.Message{Code: coap.Abort, Payload: []byte("bye")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wire, err := coap.AppendTCP([]byte("prefix"), tc.m)
			if err != nil {
				t.Fatal(err)
			}
			wire = wire[len("prefix"):]
			for cut := 0; cut < len(wire); cut += 1 + len(wire)/7 {
				if _, err := coap.DecodeTCP(wire[:cut], newMsg(), 1<<20); !errors.Is(err, coap.ErrShortFrame) {
					t.Fatalf("decoding %d of %d bytes: %v, want ErrShortFrame", cut, len(wire), err)
				}
			}
			got := newMsg()
			n, err := coap.DecodeTCP(append(wire, 0xff, 0xff), got, 1<<20) // a next frame follows
			if err != nil || n != len(wire) {
				t.Fatalf("DecodeTCP = %d, %v; want %d", n, err, len(wire))
			}
			equalMsg(t, got, tc.m, false)
		})
	}
}

func TestDecodeGrowsOptions(t *testing.T) {
	m := sample(coap.Confirmable, coap.GET, nil)
	for i := 0; i < 40; i++ {
		m.Options = m.Options.Add(coap.Option{ID: coap.URIQuery, Value: []byte{byte('a' + i%26)}})
	}
	wire, err := coap.AppendUDP(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	var got coap.Message // no room for options at all
	if err := coap.DecodeUDP(wire, &got); err != nil {
		t.Fatalf("decoding %d options into an empty Message: %v", len(m.Options), err)
	}
	equalMsg(t, &got, m, true)
	tcp, _ := coap.AppendTCP(nil, m)
	var got2 coap.Message
	if _, err := coap.DecodeTCP(tcp, &got2, 1<<20); err != nil {
		t.Fatalf("TCP: %v", err)
	}
	equalMsg(t, &got2, m, false)
}

func TestMalformed(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":              {},
		"short header":       {0x40, 0x01},
		"version 2":          {0x80, 0x01, 0, 1},
		"token length 9":     {0x49, 0x01, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9},
		"token cut short":    {0x44, 0x01, 0, 1, 1, 2},
		"option delta 15":    {0x40, 0x01, 0, 1, 0xf1, 0},
		"option cut short":   {0x40, 0x01, 0, 1, 0xb5, 'a'},
		"marker, no payload": {0x40, 0x01, 0, 1, 0xff},
	} {
		if err := coap.DecodeUDP(b, newMsg()); !errors.Is(err, coap.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func TestFrameLimit(t *testing.T) {
	// A header announcing a 4 GiB frame: refused before anything is read.
	huge := []byte{0xf0, 0xff, 0xff, 0xff, 0x00, 0x45}
	if _, err := coap.FrameLength(huge, 1<<20); !errors.Is(err, coap.ErrTooLarge) {
		t.Fatalf("4 GiB frame: %v, want ErrTooLarge", err)
	}
	m := sample(0, coap.Content, make([]byte, 2000))
	wire, _ := coap.AppendTCP(nil, m)
	if _, err := coap.DecodeTCP(wire, newMsg(), 1152); !errors.Is(err, coap.ErrTooLarge) {
		t.Fatalf("2000-byte frame with limit 1152: %v, want ErrTooLarge", err)
	}
}

func TestBlock(t *testing.T) {
	for _, b := range []coap.Block{{0, true, 0}, {1, false, 6}, {coap.MaxBlockNum, true, 3}, {17, true, coap.BERT}} {
		got, err := coap.ParseBlock(b.Value(), true)
		if err != nil || got != b {
			t.Errorf("ParseBlock(%v.Value()) = %v, %v", b, got, err)
		}
	}
	if _, err := coap.ParseBlock(coap.Block{SZX: coap.BERT}.Value(), false); !errors.Is(err, coap.ErrBadBlock) {
		t.Errorf("BERT over UDP: %v, want ErrBadBlock", err)
	}
	if _, err := coap.ParseBlock(1<<24, false); !errors.Is(err, coap.ErrBadBlock) {
		t.Errorf("a 4-byte block value: %v", err)
	}
	for size, szx := range map[int]uint8{16: 0, 32: 1, 64: 2, 128: 3, 256: 4, 512: 5, 1024: 6} {
		if got, err := coap.SZXFor(size); err != nil || got != szx || (coap.Block{SZX: szx}).Size() != size {
			t.Errorf("SZXFor(%d) = %d, %v", size, got, err)
		}
	}
	for _, bad := range []int{0, 8, 100, 2048} {
		if _, err := coap.SZXFor(bad); err == nil {
			t.Errorf("SZXFor(%d) accepted it", bad)
		}
	}
	if b := (coap.Block{Num: 3, SZX: coap.BERT}); b.Offset() != 3072 || b.String() != "3/0/1024" {
		t.Errorf("BERT block 3: offset %d, %s", b.Offset(), b)
	}
}

func TestParamsValidate(t *testing.T) {
	if err := coap.DefaultParams.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []coap.Params{
		{AckTimeout: 0, AckRandomFactor: 1.5, MaxRetransmit: 4, NStart: 1},
		{AckTimeout: 1, AckRandomFactor: 0.5, MaxRetransmit: 4, NStart: 1},
		{AckTimeout: 1, AckRandomFactor: 1.5, MaxRetransmit: -1, NStart: 1},
		{AckTimeout: 1, AckRandomFactor: 1.5, MaxRetransmit: 4, NStart: 2},
	} {
		if err := p.Validate(); !errors.Is(err, coap.ErrBadParams) {
			t.Errorf("Validate(%+v) = %v", p, err)
		}
	}
	if got := coap.DefaultParams.MaxTransmitWait().Seconds(); got != 93 {
		t.Errorf("MAX_TRANSMIT_WAIT = %vs, RFC 7252 says 93s", got)
	}
}

func TestContentFormatFor(t *testing.T) {
	for name, want := range map[string]coap.MediaType{
		"a.txt": 0, "b.json": 50, "c.cbor": 60, "d.xml": 41, "e.bin": 42, "noext": 42, "F.JSON": 50,
	} {
		if got := coap.ContentFormatFor(name); got != want {
			t.Errorf("ContentFormatFor(%q) = %d, want %d", name, got, want)
		}
	}
}

func TestCodecAllocs(t *testing.T) {
	m := sample(coap.Acknowledgement, coap.Content, make([]byte, 1024))
	wire, _ := coap.AppendUDP(nil, m)
	out, buf := newMsg(), make([]byte, 0, 2048)
	allocs := testing.AllocsPerRun(100, func() {
		if err := coap.DecodeUDP(wire, out); err != nil {
			t.Fatal(err)
		}
		buf, _ = coap.AppendUDP(buf[:0], out)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per decode+encode", allocs)
	}
}

func FuzzDecodeUDP(f *testing.F) {
	for _, m := range []*coap.Message{sample(coap.Confirmable, coap.GET, nil), sample(coap.Acknowledgement, coap.Content, []byte("x"))} {
		w, _ := coap.AppendUDP(nil, m)
		f.Add(w)
	}
	f.Add([]byte{0x40, 0x01, 0, 1, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		m := newMsg()
		if coap.DecodeUDP(b, m) != nil {
			return
		}
		coap.GetBlock(m.Options, coap.Block2, false)
		coap.Uint(m.Options, coap.Size2)
		w, err := coap.AppendUDP(nil, m)
		if err != nil {
			return // go-coap decodes some things it will not encode (e.g. over-long options)
		}
		m2 := newMsg()
		if err := coap.DecodeUDP(w, m2); err != nil {
			t.Fatalf("re-decoding our own encoding of %x: %v", b, err)
		}
		equalMsg(t, m2, m, true)
	})
}

func FuzzDecodeTCP(f *testing.F) {
	for _, m := range []*coap.Message{sample(0, coap.GET, nil), sample(0, coap.Content, make([]byte, 300)), {Code: coap.CSM}} {
		w, _ := coap.AppendTCP(nil, m)
		f.Add(w)
	}
	f.Add([]byte{0xf0, 0xff, 0xff, 0xff, 0x00, 0x45})
	f.Fuzz(func(t *testing.T, b []byte) {
		m := newMsg()
		n, err := coap.DecodeTCP(b, m, 4096)
		if err != nil {
			return
		}
		if n > len(b) || n > 4096 {
			t.Fatalf("frame length %d of %d bytes, limit 4096", n, len(b))
		}
		w, err := coap.AppendTCP(nil, m)
		if err != nil {
			return
		}
		m2 := newMsg()
		if _, err := coap.DecodeTCP(w, m2, 1<<20); err != nil {
			t.Fatalf("re-decoding our own encoding: %v", err)
		}
		equalMsg(t, m2, m, false)
	})
}

// TestCodeString: every code package coap names has the number and the
// name its registry gives it (RFC 7252 12.1, RFC 7959, RFC 8132, RFC 8323,
// RFC 8516, RFC 8768); an unregistered code is its number alone.
func TestCodeString(t *testing.T) {
	for _, tc := range []struct {
		c    coap.Code
		want string
	}{
		{coap.Empty, "0.00 Empty"},
		{coap.GET, "0.01 GET"},
		{coap.POST, "0.02 POST"},
		{coap.PUT, "0.03 PUT"},
		{coap.DELETE, "0.04 DELETE"},
		{coap.FETCH, "0.05 FETCH"},
		{coap.PATCH, "0.06 PATCH"},
		{coap.IPATCH, "0.07 iPATCH"},
		{coap.Created, "2.01 Created"},
		{coap.Deleted, "2.02 Deleted"},
		{coap.Valid, "2.03 Valid"},
		{coap.Changed, "2.04 Changed"},
		{coap.Content, "2.05 Content"},
		{coap.Continue, "2.31 Continue"},
		{coap.BadRequest, "4.00 Bad Request"},
		{coap.Unauthorized, "4.01 Unauthorized"},
		{coap.BadOption, "4.02 Bad Option"},
		{coap.Forbidden, "4.03 Forbidden"},
		{coap.NotFound, "4.04 Not Found"},
		{coap.MethodNotAllowed, "4.05 Method Not Allowed"},
		{coap.NotAcceptable, "4.06 Not Acceptable"},
		{coap.RequestEntityIncomplete, "4.08 Request Entity Incomplete"},
		{coap.Conflict, "4.09 Conflict"},
		{coap.PreconditionFailed, "4.12 Precondition Failed"},
		{coap.RequestEntityTooLarge, "4.13 Request Entity Too Large"},
		{coap.UnsupportedContentFormat, "4.15 Unsupported Content-Format"},
		{coap.UnprocessableEntity, "4.22 Unprocessable Entity"},
		{coap.TooManyRequests, "4.29 Too Many Requests"},
		{coap.InternalServerError, "5.00 Internal Server Error"},
		{coap.NotImplemented, "5.01 Not Implemented"},
		{coap.BadGateway, "5.02 Bad Gateway"},
		{coap.ServiceUnavailable, "5.03 Service Unavailable"},
		{coap.GatewayTimeout, "5.04 Gateway Timeout"},
		{coap.ProxyingNotSupported, "5.05 Proxying Not Supported"},
		{coap.HopLimitReached, "5.08 Hop Limit Reached"},
		{coap.CSM, "7.01 CSM"},
		{coap.Ping, "7.02 Ping"},
		{coap.Pong, "7.03 Pong"},
		{coap.Release, "7.04 Release"},
		{coap.Abort, "7.05 Abort"},
		{coap.Code(0x9f), "4.31"},
	} {
		if got := coap.CodeString(tc.c); got != tc.want {
			t.Errorf("CodeString(%#x) = %q, want %q", uint8(tc.c), got, tc.want)
		}
	}
}

func TestUintOptionRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		v    uint32
		size int
	}{{0, 0}, {1, 1}, {255, 1}, {256, 2}, {1 << 20, 3}, {1<<32 - 1, 4}} {
		o := coap.UintOption(coap.Size1, tc.v)
		got, ok := coap.Uint(coap.Options{o}, coap.Size1)
		if len(o.Value) != tc.size || !ok || got != tc.v {
			t.Errorf("%d: %d bytes, read back %d (%v); want %d bytes", tc.v, len(o.Value), got, ok, tc.size)
		}
	}
}

package lwm2m

import (
	"testing"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/lwm2m/content"
)

// FuzzReviewServe is FuzzServe with seeds for what FuzzServe's corpus
// does not reach: Block1, FETCH and iPATCH composite requests, Create and
// Delete, and a bootstrap in progress.
func FuzzReviewServe(f *testing.F) {
	b1 := func(num uint32, more bool, szx uint32) coap.Option {
		v := num<<4 | szx
		if more {
			v |= 8
		}
		return uintOpt(coap.Block1, v)
	}
	cf := func(fm content.Format) coap.Option { return uintOpt(coap.ContentFormat, uint32(fm)) }
	seeds := []struct {
		m       *coap.Message
		payload string
	}{
		{request(coap.PUT, "/1/0/1", cf(content.Text), b1(0, true, 0)), "0123456789abcdef"},
		{request(coap.PUT, "/1/0/1", cf(content.Text), b1(1, false, 0)), "1"},
		{request(coap.FETCH, "", cf(content.SenMLJSON)), `[{"n":"/3/0/0"},{"n":"/1/0"}]`},
		{request(coap.FETCH, "", cf(content.SenMLJSON), uintOpt(coap.Observe, 0)), `[{"n":"/3/0/0"}]`},
		{request(coap.FETCH, "", cf(content.SenMLCBOR)), "\x81\xa1\x00\x66/3/0/0"},
		{request(coap.IPATCH, "", cf(content.SenMLJSON)), `[{"n":"/1/0/1","v":60}]`},
		{request(coap.POST, "/3", cf(content.SenMLJSON)), `[{"n":"/3/1/0","vs":"x"}]`},
		{request(coap.DELETE, "/3/0"), ""},
		{request(coap.PUT, "/3/0/13", coap.Option{ID: coap.URIQuery, Value: []byte("gt=5")}, coap.Option{ID: coap.URIQuery, Value: []byte("st=1")}), ""},
		{request(coap.POST, "/bs"), ""},
		{request(coap.PUT, "/0/1", cf(content.SenMLJSON)), `[{"n":"/0/1/0","vs":"coap://x"}]`},
	}
	for _, s := range seeds {
		s.m.Type, s.m.MessageID, s.m.Payload = coap.Confirmable, 1, []byte(s.payload)
		b, err := coap.AppendUDP(nil, s.m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
		f.Add(b, true)
	}
	c, err := New(Config{Endpoint: "fuzz", ServerURL: "coap://127.0.0.1:5683", Device: Device{Manufacturer: "m"}, MaxRequestSize: 4096})
	if err != nil {
		f.Fatal(err)
	}
	bs := &bootstrapping{finished: make(chan *account, 1)}
	f.Fuzz(func(t *testing.T, b []byte, bootstrap bool) {
		var m coap.Message
		if coap.DecodeUDP(b, &m) != nil || m.Code == coap.Empty || m.Code>>5 != 0 {
			return
		}
		if bootstrap {
			c.bsNow.Store(bs)
			defer c.bsNow.Store(nil)
			select {
			case <-bs.finished:
			default:
			}
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

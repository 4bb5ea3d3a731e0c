package lwm2mtest_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/peer"
	"github.com/tether-iot/tether/lwm2m/lwm2mtest"
)

// TestRecordsKept: a Server keeps the latest MaxRecords records, oldest
// first, and none when MaxRecords is negative.
func TestRecordsKept(t *testing.T) {
	all := []string{
		"dev-1 register /rd?ep=dev-1&lt=60&lwm2m=1.1: 2.01 Created",
		"dev-1 read /3/0/0: 2.05 Content",
		"dev-1 read /3/0/1: 2.05 Content",
		"dev-1 read /5/0/3: 2.05 Content",
		"dev-1 read /3/0/9: 4.04 Not Found",
	}
	for _, tc := range []struct {
		max  int
		want []string
	}{
		{0, all},
		{len(all), all},
		{3, all[2:]},
		{1, all[4:]},
		{-1, nil},
	} {
		t.Run(fmt.Sprint(tc.max), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := simnetRig(t, &lwm2mtest.Options{MaxRecords: tc.max})
				ctx := t.Context()
				d := r.dial(t)
				d.register(ctx, "dev-1", "1.1")
				for _, p := range []string{"/3/0/0", "/3/0/1", "/5/0/3", "/3/0/9"} {
					if _, err := r.srv.Read(ctx, "dev-1", p); err != nil {
						t.Fatal(err)
					}
				}
				var got []string
				for _, rec := range r.srv.Records("dev-1") {
					got = append(got, rec.String())
				}
				if !slices.Equal(got, tc.want) {
					t.Errorf("MaxRecords %d: %q, want %q", tc.max, got, tc.want)
				}
				if others := r.srv.Records("dev-2"); len(others) != 0 {
					t.Errorf("Records(dev-2) = %v, want none", others)
				}
			})
		})
	}
}

// TestRecordsOwnPayloads: what Records returns is the caller's.
func TestRecordsOwnPayloads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := simnetRig(t, nil)
		ctx := t.Context()
		d := r.dial(t)
		d.register(ctx, "dev-1", "1.1")
		m, err := r.srv.Read(ctx, "dev-1", "/3/0/0")
		if err != nil {
			t.Fatal(err)
		}
		m.Payload[0] = 'X' // the caller owns the answer, not the record
		first := r.srv.Records("dev-1")
		first[1].Payload[0] = 'Y'
		first[0].Query[0] = "ep=other"
		again := r.srv.Records("dev-1")
		if string(again[1].Payload) != "tether" || again[0].Query[0] != "ep=dev-1" {
			t.Errorf("records changed by their readers: %q %q", again[1].Payload, again[0].Query)
		}
	})
}

// TestRecordsAnError: a request that no answer ends is recorded with its
// error, and so is an Observe.
func TestRecordsAnError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := simnetRig(t, nil)
		d := r.dial(t)
		d.register(t.Context(), "dev-1", "1.1")
		d.p.Close() // the device answers nothing from now on
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		if _, err := r.srv.Read(ctx, "dev-1", "/3/0/0"); !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, peer.ErrTimeout) {
			t.Fatalf("Read of a silent device: %v", err)
		}
		if _, err := r.srv.Observe(ctx, "dev-1", "/5/0/3"); err == nil {
			t.Fatal("Observe of a silent device succeeded")
		}
		recs := r.srv.Records("dev-1")
		if len(recs) != 3 {
			t.Fatalf("records %v, want register, read, observe", recs)
		}
		for i, op := range []lwm2mtest.Op{lwm2mtest.OpRead, lwm2mtest.OpObserve} {
			if rec := recs[i+1]; rec.Op != op || rec.Err == nil || rec.Code != 0 || rec.Payload != nil {
				t.Errorf("record %d: %+v, want %s with its error", i+1, rec, op)
			}
		}
	})
}

func TestRecordString(t *testing.T) {
	for _, tc := range []struct {
		r    lwm2mtest.Record
		want string
	}{
		{lwm2mtest.Record{Endpoint: "dev-1", Op: lwm2mtest.OpRead, Path: "/3/0/0", Code: coap.Content, Payload: []byte("x")},
			"dev-1 read /3/0/0: 2.05 Content"},
		{lwm2mtest.Record{Endpoint: "dev-1", Op: lwm2mtest.OpRegister, Path: "/rd", Query: []string{"ep=dev-1", "lt=60"}, Code: coap.Created},
			"dev-1 register /rd?ep=dev-1&lt=60: 2.01 Created"},
		{lwm2mtest.Record{Op: lwm2mtest.OpUpdate, Path: "/rd/7", Code: coap.NotFound},
			"update /rd/7: 4.04 Not Found"},
		{lwm2mtest.Record{Endpoint: "dev-1", Op: lwm2mtest.OpExecute, Path: "/5/0/2", Err: peer.ErrTimeout},
			"dev-1 execute /5/0/2: " + peer.ErrTimeout.Error()},
		{lwm2mtest.Record{Endpoint: "dev-1", Op: lwm2mtest.OpCancel, Path: "/5/0/3"},
			"dev-1 cancel /5/0/3"},
	} {
		if got := tc.r.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.r, got, tc.want)
		}
	}
}

func TestLocation(t *testing.T) {
	loc := func(segs ...string) *coap.Message {
		m := &coap.Message{Code: coap.Created}
		for _, s := range segs {
			m.Options = append(m.Options, coap.Option{ID: 8, Value: []byte(s)})
		}
		return m
	}
	for _, tc := range []struct {
		m    *coap.Message
		want string
	}{
		{loc("rd", "0"), "/rd/0"},
		{loc("3303", "1"), "/3303/1"},
		{loc(), ""},
		{&coap.Message{Options: coap.Options{{ID: coap.URIPath, Value: []byte("rd")}}}, ""},
	} {
		if got := lwm2mtest.Location(tc.m); got != tc.want {
			t.Errorf("Location(%v) = %q, want %q", tc.m.Options, got, tc.want)
		}
	}
}

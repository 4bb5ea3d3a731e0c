package dtlssock

import (
	"testing"
)

// TestRecords splits a datagram the way the handshake watch reads it: the
// flight-5 datagram of a PSK handshake holds ClientKeyExchange and
// ChangeCipherSpec in epoch 0 and the encrypted Finished in epoch 1.
func TestRecords(t *testing.T) {
	flight5 := unhex("16 fefd 0000 000000000002 0005 1000000001" + // handshake: client_key_exchange (truncated body)
		"14 fefd 0000 000000000003 0001 01" + // change_cipher_spec
		"16 fefd 0001 000000000000 0003 aabbcc") // epoch 1: Finished, encrypted
	var got []record
	for r := range records(flight5) {
		got = append(got, r)
	}
	if len(got) != 3 || got[0].typ != contentHandshake || got[0].body[0] != 0x10 ||
		got[1].typ != contentCCS || got[2].epoch != 1 || len(got[2].body) != 3 {
		t.Fatalf("records = %+v", got)
	}
	truncated := flight5[:len(flight5)-1]
	n := 0
	for range records(truncated) {
		n++
	}
	if n != 2 {
		t.Fatalf("a truncated last record: %d records yielded, want the 2 whole ones", n)
	}
	alert := unhex("15 fefd 0000 000000000001 0002 0228") // fatal handshake_failure
	for r := range records(alert) {
		if r.typ != contentAlert || r.body[0] != alertFatal || r.body[1] != 40 {
			t.Fatalf("alert record = %+v", r)
		}
	}
}

func FuzzRecords(f *testing.F) {
	f.Add(unhex("16 fefd 0000 000000000002 0005 1000000001 14 fefd 0000 000000000003 0001 01"))
	f.Add(unhex("19 fefd 0001 000000000002 e42f47cf24b16c16 0003 022a15"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		total := 0
		for r := range records(b) {
			if r.typ != contentCID && (r.epoch != int(b[total+3])<<8|int(b[total+4])) {
				t.Fatalf("record at %d: epoch %d", total, r.epoch)
			}
			total += recordHeaderLen + 2 + len(r.body)
			if total > len(b) {
				t.Fatalf("records run past the datagram: %d > %d", total, len(b))
			}
		}
	})
}

package dtlssock

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/pion/dtls/v3/pkg/protocol/alert"

	"github.com/tether-iot/tether/sock"
)

func unhex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// TestUnwrapEpoch0Alert: the record pion sent on the wire when a
// certificate failed verification (bad_certificate inside an epoch-0
// tls12_cid record with the server's 8-byte CID) becomes the plain alert.
func TestUnwrapEpoch0Alert(t *testing.T) {
	const plain = "15 fefd 0000 000000000002 0002 022a" // fatal, bad_certificate
	for _, tc := range []struct {
		name, in, want string
	}{
		{"seen from pion", "19 fefd 0000 000000000002 e42f47cf24b16c16 0003 022a15", plain},
		{"padded", "19 fefd 0000 000000000002 e42f47cf24b16c16 0005 022a150000", plain},
		{"no CID", "19 fefd 0000 000000000002 0003 022a15", plain},
		{"handshake inside", "19 fefd 0000 000000000002 e42f47cf24b16c16 0003 010016", ""},
		{"length does not frame it", "19 fefd 0000 000000000002 e42f47cf24b16c16 0009 022a15", ""},
		{"too short", "19 fefd 0000 0000 15", ""},
		{"all padding", "19 fefd 0000 000000000002 0000", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := unwrapEpoch0Alert(unhex(tc.in))
			if want := unhex(tc.want); !bytes.Equal(got, want) || (got == nil) != (tc.want == "") {
				t.Fatalf("got % x, want % x", got, want)
			}
		})
	}
}

// FuzzUnwrapEpoch0Alert: any input gives nil or one 15-byte plain alert
// record in epoch 0, and never a panic.
func FuzzUnwrapEpoch0Alert(f *testing.F) {
	f.Add(unhex("19 fefd 0000 000000000002 e42f47cf24b16c16 0003 022a15"))
	f.Add(unhex("19 fefd 0000 000000000002 0003 022a15"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		out := unwrapEpoch0Alert(b)
		if out != nil && (len(out) != 15 || out[0] != 21 || out[11] != 0 || out[12] != 2) {
			t.Fatalf("% x -> % x", b, out)
		}
	})
}

// TestAlertsThatRefuse: a fatal alert that refuses the credentials is
// ErrAuth (the download ends, exit 67); one that only ends this handshake
// (IllegalParameter for a ClientHello that met an older handshake's
// state, seen under load from 1000 devices at once) is not, so the
// download retries.
func TestAlertsThatRefuse(t *testing.T) {
	for _, tc := range []struct {
		d    alert.Description
		auth bool
	}{
		{alert.InternalError, true}, // pion's answer to an unknown PSK identity
		{alertUnknownPSKIdentity, true},
		{alert.DecryptError, true},
		{alert.BadCertificate, true},
		{alert.UnknownCA, true},
		{alert.HandshakeFailure, true},
		{alert.IllegalParameter, false},
		{alert.AccessDenied, false},
		{alert.UnexpectedMessage, false},
		{alert.DecodeError, false},
	} {
		w := &handshakeWatch{alert: int(tc.d) + 1}
		err := w.explain(errors.New("handshake failed"), nil)
		if got := errors.Is(err, sock.ErrAuth); got != tc.auth {
			t.Errorf("%v: %v, ErrAuth %v; want %v", tc.d, err, got, tc.auth)
		}
	}
}

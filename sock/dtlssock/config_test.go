package dtlssock

import (
	"testing"

	"github.com/pion/dtls/v3"
)

// TestCipherSuiteNumbers: the constants are the IANA numbers pion knows
// the suites by.
func TestCipherSuiteNumbers(t *testing.T) {
	for _, tc := range []struct {
		ours CipherSuite
		pion dtls.CipherSuiteID
	}{
		{TLS_PSK_WITH_AES_128_CCM_8, dtls.TLS_PSK_WITH_AES_128_CCM_8},
		{TLS_PSK_WITH_AES_128_CCM, dtls.TLS_PSK_WITH_AES_128_CCM},
		{TLS_PSK_WITH_AES_128_GCM_SHA256, dtls.TLS_PSK_WITH_AES_128_GCM_SHA256},
	} {
		if dtls.CipherSuiteID(tc.ours) != tc.pion {
			t.Errorf("%#04x is %v to pion, want %v", uint16(tc.ours), dtls.CipherSuiteID(tc.ours), tc.pion)
		}
	}
}

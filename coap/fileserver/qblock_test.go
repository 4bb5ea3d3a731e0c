package fileserver_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/fileserver"
	"github.com/tether-iot/tether/internal/testrig/coaprig"
	"github.com/tether-iot/tether/sock/simnet"
)

// The wire-level tests of Q-Block2 (RFC 9177) follow the RFC's examples of
// Q-Block2 in section 10.2 (without Observe, which the file server does not
// do): the whole body asked for in one request and sent in sets of
// MAX_PAYLOADS, the sets paced by NON_TIMEOUT when the client says nothing,
// a "Continue" that brings the next set at once, lost blocks asked for
// (several Q-Block2 options, M unset, or M set for the rest of a set), and
// the server giving up after NON_MAX_RETRANSMIT sets with no word from the
// client. Time is simulated, so the instants are exact; the link has no
// delay, so a response is seen at the instant it is sent.

// qrig is a raw CoAP client and tether's file server on a simulated
// network, recording every datagram the server sends.
type qrig struct {
	t     *testing.T
	pc    net.PacketConn
	srv   net.Addr
	start time.Time
	mid   uint16

	mu   sync.Mutex
	got  []string
	echo []byte // the last Echo value the server sent; get sends it
}

func newQRig(t *testing.T, files map[string]int, opts *fileserver.Options) *qrig {
	t.Helper()
	dir := t.TempDir()
	for name, size := range files {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i / 1024)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	n := simnet.New(1)
	srvHost, dev := n.AddHost("server", "10.0.0.1"), n.AddHost("device", "10.0.0.2")
	spc, err := srvHost.ListenPacket("udp", ":5683")
	if err != nil {
		t.Fatal(err)
	}
	coaprig.Serve(t, dir, opts, spc, nil)
	pc, err := dev.ListenPacket("udp", ":40000")
	if err != nil {
		t.Fatal(err)
	}
	r := &qrig{t: t, pc: pc, srv: spc.LocalAddr(), start: time.Now()}
	r.srv = &net.UDPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 5683}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var m coap.Message
			if err := coap.DecodeUDP(buf[:n], &m); err != nil {
				t.Errorf("junk from the server: %v", err)
				continue
			}
			r.mu.Lock()
			r.got = append(r.got, r.describe(&m))
			if e, ok := coap.Bytes(m.Options, coap.Echo); ok {
				r.echo = append([]byte(nil), e...)
			}
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return r
}

// describe formats a response as the RFC's figures do, with the instant:
// "2.4s NON 2.05 T:f1 QB2:10/1/1024".
func (r *qrig) describe(m *coap.Message) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v %s %s T:%x", time.Since(r.start), typeName(m.Type), coap.CodeString(m.Code), []byte(m.Token))
	for _, o := range m.Options {
		if o.ID == coap.QBlock2 || o.ID == coap.Block2 {
			blk, _ := coap.ParseBlock(uintOf(o.Value), false)
			name := "QB2"
			if o.ID == coap.Block2 {
				name = "B2"
			}
			fmt.Fprintf(&b, " %s:%v", name, blk)
		}
	}
	if _, ok := coap.Bytes(m.Options, coap.Echo); ok {
		b.WriteString(" Echo")
	}
	if m.Code != coap.Content && len(m.Payload) > 0 {
		fmt.Fprintf(&b, " %q", m.Payload)
	}
	return b.String()
}

func typeName(t coap.Type) string {
	return [...]string{"CON", "NON", "ACK", "RST"}[t&3]
}

func uintOf(b []byte) uint32 {
	var v uint32
	for _, c := range b {
		v = v<<8 | uint32(c)
	}
	return v
}

// answer does what a client of RFC 9177 does first: it asks for block 0
// in a confirmable request, whose answer carries the Echo value that lets
// its address draw bursts; then the clock starts again.
func (r *qrig) answer(path string) {
	r.t.Helper()
	r.get(coap.Confirmable, 0xee, path, "0/0/1024")
	r.expect(time.Second, "0s ACK 2.05 Content T:ee QB2:0/1/1024 Echo")
	r.start = time.Now()
}

// since is the simulated time since the rig started.
func (r *qrig) since() time.Duration { return time.Since(r.start) }

// get sends a GET for path with the Q-Block2 options given as "n/m/size".
func (r *qrig) get(typ coap.Type, token byte, path string, qb2 ...string) {
	r.t.Helper()
	m := coap.Message{Type: typ, Code: coap.GET, Token: []byte{token}}
	r.mid++
	m.MessageID = int32(r.mid)
	m.Options = m.Options.Add(coap.Option{ID: coap.URIPath, Value: []byte(path)})
	r.mu.Lock()
	if r.echo != nil {
		m.Options = m.Options.Add(coap.Option{ID: coap.Echo, Value: r.echo})
	}
	r.mu.Unlock()
	for _, s := range qb2 {
		var num, more, size int
		if _, err := fmt.Sscanf(s, "%d/%d/%d", &num, &more, &size); err != nil {
			r.t.Fatal(err)
		}
		szx, err := coap.SZXFor(size)
		if err != nil {
			r.t.Fatal(err)
		}
		v := coap.Block{Num: uint32(num), More: more == 1, SZX: szx}.Value()
		var val []byte
		for v > 0 {
			val = append([]byte{byte(v)}, val...)
			v >>= 8
		}
		m.Options = m.Options.Add(coap.Option{ID: coap.QBlock2, Value: val})
	}
	b, err := coap.AppendUDP(nil, &m)
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.pc.WriteTo(b, r.srv); err != nil {
		r.t.Fatal(err)
	}
}

// expect waits d of simulated time and checks what the server sent since
// the last call, line by line.
func (r *qrig) expect(d time.Duration, want ...string) {
	r.t.Helper()
	time.Sleep(d)
	synctest.Wait()
	r.mu.Lock()
	got := r.got
	r.got = nil
	r.mu.Unlock()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		r.t.Fatalf("the server sent\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// set returns the lines of blocks from..to (inclusive) of a body of last+1
// blocks, sent at instant at with token tok.
func set(at time.Duration, tok string, from, to, last int) []string {
	var out []string
	for n := from; n <= to; n++ {
		m := 1
		if n == last {
			m = 0
		}
		out = append(out, fmt.Sprintf("%v NON 2.05 Content T:%s QB2:%d/%d/1024", at, tok, n, m))
	}
	return out
}

// fixedPacing makes NON_TIMEOUT_RANDOM exactly NON_TIMEOUT (a random factor
// of 1), so the instants of paced sets are exact.
var fixedPacing = &fileserver.Options{QBlock: coap.NonParams{AckRandomFactor: 1}}

// TestQBlock2WholeBodyAndContinue: RFC 9177 10.2.2. The whole body is
// asked for (QB2:0/1); the first set comes at once; the client says
// nothing, so the second comes NON_TIMEOUT later, with the same token; the
// client's Continue (QB2:20/1, a new token) brings the last set at once;
// nothing follows.
func TestQBlock2WholeBodyAndContinue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newQRig(t, map[string]int{"fw.bin": 25*1024 - 100}, fixedPacing)
		r.answer("fw.bin")
		r.get(coap.NonConfirmable, 0xf0, "fw.bin", "0/1/1024")
		r.expect(time.Second, set(0, "f0", 0, 9, 24)...)
		r.expect(2*time.Second, set(2*time.Second, "f0", 10, 19, 24)...)
		r.get(coap.NonConfirmable, 0xf1, "fw.bin", "20/1/1024")
		r.expect(time.Minute, set(3*time.Second, "f1", 20, 24, 24)...)
	})
}

// TestQBlock2Recovery: RFC 9177 10.2.3 and 10.2.4. The client lost blocks
// 3 and 5 of the first set and asks for them with its Continue, in one
// request (three Q-Block2 options); then it asks for block 12 and the
// rest of its set (M set, 10.2.4); each block asked for is sent once.
func TestQBlock2Recovery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newQRig(t, map[string]int{"fw.bin": 30 * 1024}, fixedPacing)
		r.answer("fw.bin")
		r.get(coap.NonConfirmable, 0xf0, "fw.bin", "0/1/1024")
		r.expect(time.Second, set(0, "f0", 0, 9, 29)...)
		r.get(coap.NonConfirmable, 0xf1, "fw.bin", "3/0/1024", "5/0/1024", "10/1/1024")
		want := append(set(time.Second, "f1", 3, 3, 29), set(time.Second, "f1", 5, 5, 29)...)
		r.expect(time.Second, append(want, set(time.Second, "f1", 10, 19, 29)...)...)
		r.get(coap.NonConfirmable, 0xf2, "fw.bin", "12/1/1024")
		r.expect(time.Second, set(2*time.Second, "f2", 12, 19, 29)...)
		// Overlapping options: block 15 once, though asked for twice.
		r.get(coap.NonConfirmable, 0xf3, "fw.bin", "14/1/1024", "15/0/1024")
		r.expect(0, set(3*time.Second, "f3", 14, 19, 29)...)
		// The pacing set up by the Continue goes on: the last set, NON_TIMEOUT
		// after the client's last request, with its token.
		r.expect(time.Minute, set(5*time.Second, "f3", 20, 29, 29)...)
	})
}

// TestQBlock2GivesUp: with no word from the client, each next set waits
// twice as long, and after NON_MAX_RETRANSMIT sets the server stops; a
// request from the client resumes the transfer, until NON_PARTIAL_TIMEOUT
// of silence has made the server forget it.
func TestQBlock2GivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newQRig(t, map[string]int{"fw.bin": 100 * 1024}, fixedPacing)
		r.answer("fw.bin")
		paced := func(tok byte) {
			at := r.since()
			r.get(coap.NonConfirmable, tok, "fw.bin", "0/1/1024")
			r.expect(0, set(at, fmt.Sprintf("%x", tok), 0, 9, 99)...)
			for i, d := range []time.Duration{2, 4, 8, 16} { // NON_TIMEOUT, doubling
				at += d * time.Second
				r.expect(d*time.Second, set(at, fmt.Sprintf("%x", tok), 10*(i+1), 10*(i+1)+9, 99)...)
			}
			r.expect(time.Minute) // NON_MAX_RETRANSMIT sets unasked: nothing more
		}
		paced(0xf0)
		// Silent for NON_PARTIAL_TIMEOUT (247 s): forgotten, a request for
		// a block is answered, and nothing more is sent.
		time.Sleep(247*time.Second - time.Minute)
		at := r.since()
		r.get(coap.NonConfirmable, 0xf1, "fw.bin", "45/0/1024")
		r.expect(time.Minute, set(at, "f1", 45, 45, 99)...)

		// A new transfer needs a fresh Echo (the rig's is five minutes
		// old): asked for again, as a client does after a 4.01.
		fresh := r.since()
		r.get(coap.Confirmable, 0xed, "fw.bin", "0/0/1024")
		r.expect(time.Second, fmt.Sprintf("%v ACK 2.05 Content T:ed QB2:0/1/1024 Echo", fresh))
		// Before NON_PARTIAL_TIMEOUT, a request resumes the paused transfer.
		paced(0xf2)
		at = r.since()
		r.get(coap.NonConfirmable, 0xf3, "fw.bin", "41/0/1024")
		r.expect(0, set(at, "f3", 41, 41, 99)...)
		r.expect(2*time.Second, set(at+2*time.Second, "f3", 50, 59, 99)...)
	})
}

// TestQBlock2ProofIsPerTransfer: an address that proved it receives is
// not trusted for long after: five minutes after its download, a request
// in its name with a stale Echo value (a forger replaying what it saw, or
// any off-path forger) draws a 4.01, not a burst (it drew 52 KB from 14
// bytes when a proof lasted ten minutes); while a transfer it started is
// in progress, its requests draw bursts.
func TestQBlock2ProofIsPerTransfer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newQRig(t, map[string]int{"fw.bin": 30 * 1024}, fixedPacing)
		r.answer("fw.bin")
		r.get(coap.NonConfirmable, 0xa0, "fw.bin", "0/1/1024")
		r.expect(0, set(0, "a0", 0, 9, 29)...)
		r.get(coap.NonConfirmable, 0xa1, "fw.bin", "10/1/1024") // a Continue, in the same minute
		r.expect(0, set(0, "a1", 10, 19, 29)...)
		r.expect(2*time.Second, set(2*time.Second, "a1", 20, 29, 29)...) // the last set, paced
		time.Sleep(5 * time.Minute)
		at := r.since()
		r.get(coap.NonConfirmable, 0xa2, "fw.bin", "0/1/1024")
		r.expect(time.Minute, fmt.Sprintf("%v NON 4.01 Unauthorized T:a2 Echo", at))
	})
}

// TestQBlock2Refusals: what is answered with an error, or not with a
// burst: options out of order or of different sizes (4.00), a block past
// the end (4.02), Q-Block2 switched off (a Reset for NON, 4.02 for CON).
func TestQBlock2Refusals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newQRig(t, map[string]int{"fw.bin": 30 * 1024}, fixedPacing)
		r.answer("fw.bin")
		r.get(coap.NonConfirmable, 1, "fw.bin", "5/0/1024", "3/0/1024")
		r.expect(time.Second, `0s NON 4.00 Bad Request T:01 "Q-Block2 options out of increasing order"`)
		r.get(coap.NonConfirmable, 2, "fw.bin", "3/0/1024", "5/0/512")
		r.expect(time.Second, `1s NON 4.00 Bad Request T:02 "Q-Block2 options of different sizes"`)
		r.get(coap.NonConfirmable, 3, "fw.bin", "30/0/1024")
		r.expect(time.Second, `2s NON 4.02 Bad Option T:03 "no such block"`)
		// Smaller blocks than the server's: sets of MAX_PAYLOADS 512-byte blocks.
		r.get(coap.NonConfirmable, 5, "fw.bin", "58/1/512")
		r.expect(time.Second, "3s NON 2.05 Content T:05 QB2:58/1/512", "3s NON 2.05 Content T:05 QB2:59/0/512")
	})
	synctest.Test(t, func(t *testing.T) {
		r := newQRig(t, map[string]int{"fw.bin": 3000}, &fileserver.Options{NoQBlock: true})
		r.get(coap.NonConfirmable, 1, "fw.bin", "0/1/1024")
		r.expect(time.Second, "0s RST 0.00 Empty T:")
		r.get(coap.Confirmable, 2, "fw.bin", "0/1/1024")
		r.expect(time.Second, `1s ACK 4.02 Bad Option T:02 "unknown critical option 31"`)
	})
}

// TestQBlock2Confirmable: a Confirmable request for one block gets it
// piggybacked, with the Echo value (as RFC 9177 clients ask first); one for
// a burst from an address not verified gets a 4.01 with the value, as a
// Non-confirmable one does (RFC 9175 2.4), and nothing else; asked again
// with it (as libcoap's client does, in CON mode as in NON), it gets its
// first block piggybacked and the rest of the set Non-confirmable at once,
// then paced sets, as a Non-confirmable request would. A Q-Block2 GET in
// an ACK, as libcoap's client sends one for a lost block, is served as NON.
func TestQBlock2Confirmable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newQRig(t, map[string]int{"fw.bin": 30 * 1024}, fixedPacing)
		r.get(coap.Confirmable, 1, "fw.bin", "0/1/1024")
		r.expect(time.Minute, "0s ACK 4.01 Unauthorized T:01 Echo")
		r.get(coap.Confirmable, 2, "fw.bin", "0/1/1024")
		r.expect(2*time.Second, append([]string{"1m0s ACK 2.05 Content T:02 QB2:0/1/1024"},
			append(set(60*time.Second, "02", 1, 9, 29), set(62*time.Second, "02", 10, 19, 29)...)...)...)
		r.get(coap.Confirmable, 3, "fw.bin", "20/1/1024") // a Continue
		r.expect(time.Minute, append([]string{"1m2s ACK 2.05 Content T:03 QB2:20/1/1024"}, set(62*time.Second, "03", 21, 29, 29)...)...)
		// libcoap's client in CON mode asks for a lost block in an ACK
		// (sic): served as a NON request.
		r.get(coap.Acknowledgement, 4, "fw.bin", "28/0/1024")
		r.expect(time.Second, "2m2s NON 2.05 Content T:04 QB2:28/1/1024")
	})
}

// TestQBlock2OnlyToAddressesThatAnswer: a burst goes only to an address
// that has shown it receives (RFC 7252 11.3: a forged source must not make
// the server an amplifier). A Non-confirmable request for the whole body
// without the address's Echo value gets a 4.01 with one, as small as the
// request, and no pacing follows; a wrong or another address's value gets
// the same; the value from the 4.01 brings the burst. A single block is
// served to anyone.
func TestQBlock2OnlyToAddressesThatAnswer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newQRig(t, map[string]int{"fw.bin": 30 * 1024}, fixedPacing)
		r.get(coap.NonConfirmable, 1, "fw.bin", "0/1/1024")
		r.expect(time.Minute, "0s NON 4.01 Unauthorized T:01 Echo")
		good := r.echo
		r.echo = []byte{1, 2, 3, 4, 5, 6, 7, 8}
		r.get(coap.NonConfirmable, 2, "fw.bin", "0/1/1024", "20/1/1024")
		r.expect(time.Second, "1m0s NON 4.01 Unauthorized T:02 Echo")
		r.get(coap.NonConfirmable, 3, "fw.bin", "7/0/1024") // one block: no amplification
		r.expect(time.Second, "1m1s NON 2.05 Content T:03 QB2:7/1/1024")
		r.echo = good
		r.get(coap.NonConfirmable, 4, "fw.bin", "0/1/1024")
		r.expect(time.Second, set(62*time.Second, "04", 0, 9, 29)...)
	})
}

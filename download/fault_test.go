package download_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/download"
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/simnet"
)

const fileURL = "coap://fw.sim/fw.bin"

func TestLossDuplicationReordering(t *testing.T) {
	data := testrig.Bytes(256<<10, 1)
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(7)
		newServer(t, w.n.AddHost("a", "10.0.0.1"), "fw.bin", data)
		w.name("fw.sim", "10.0.0.1")
		w.dev.SetLink(simnet.LinkConfig{Delay: 20 * time.Millisecond, Jitter: 10 * time.Millisecond, Loss: 0.3, Duplicate: 0.05, Reorder: 0.05})
		var sink memSink
		want := sha256.Sum256(data)
		d, err := download.Start(context.Background(), fileURL, &sink, &download.Options{NewSocket: w.socket, SHA256: want[:]})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Wait(); err != nil {
			t.Fatal(err)
		}
		if sink.sum() != want {
			t.Fatal("SHA-256 differs")
		}
		t.Logf("256 KiB over 30%% loss: %+v, network %+v", d.Progress(), w.n.Stats())
	})
}

func TestPartitionInTheMiddle(t *testing.T) {
	data := testrig.Bytes(128<<10, 2)
	synctest.Test(t, func(t *testing.T) {
		w, _ := serving(t, data, 10*time.Millisecond)
		var sink memSink
		var cut time.Time
		opts := &download.Options{NewSocket: w.socket, Progress: func(p download.Progress) {
			if cut.IsZero() && p.Written >= int64(len(data)/2) {
				cut = time.Now()
				w.dev.SetDown(true)
				time.AfterFunc(10*time.Second, func() { w.dev.SetDown(false) })
			}
		}}
		start := time.Now()
		d, err := download.Start(context.Background(), fileURL, &sink, opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Wait(); err != nil {
			t.Fatal(err)
		}
		if sink.sum() != sha256.Sum256(data) {
			t.Fatal("SHA-256 differs")
		}
		el := time.Since(start)
		if cut.IsZero() || el < 10*time.Second || el > 60*time.Second {
			t.Fatalf("download took %v with a 10s partition at %v", el, cut.Sub(start))
		}
		t.Logf("10 s partition: done after %v (simulated), %+v", el, d.Progress())
	})
}

// twoNodes is the same file on two servers, A and B, behind one name.
func twoNodes(t *testing.T, data []byte) (w world, a, b *server) {
	w = newWorld(1)
	a = newServer(t, w.n.AddHost("a", "10.0.0.1"), "fw.bin", data)
	b = newServer(t, w.n.AddHost("b", "10.0.0.3"), "fw.bin", data)
	w.dev.SetLink(simnet.LinkConfig{Delay: 5 * time.Millisecond})
	return w, a, b
}

// halfway returns a Progress callback that closes the channel once half of
// the body is written.
func halfway(total int, half chan<- struct{}) func(download.Progress) {
	var once sync.Once
	return func(p download.Progress) {
		if p.Written >= int64(total/2) {
			once.Do(func() { close(half) })
		}
	}
}

// suspendedHalfway starts a download of data from fileURL on w and
// suspends it once half is written.
func suspendedHalfway(t *testing.T, w world, data []byte) (*download.Download, *memSink) {
	t.Helper()
	sink := new(memSink)
	half := make(chan struct{})
	d, err := download.Start(context.Background(), fileURL, sink, &download.Options{NewSocket: w.socket, Progress: halfway(len(data), half)})
	if err != nil {
		t.Fatal(err)
	}
	<-half
	if err := d.Suspend(); err != nil {
		t.Fatal(err)
	}
	if d.Phase() != download.Suspended || d.Written() >= int64(len(data)) {
		t.Fatalf("not suspended mid-way: %d of %d bytes", d.Written(), len(data))
	}
	return d, sink
}

func TestDNSOrderFlippedWhileSuspended(t *testing.T) {
	data := testrig.Bytes(64<<10, 3)
	synctest.Test(t, func(t *testing.T) {
		w, a, b := twoNodes(t, data)
		w.name("fw.sim", "10.0.0.1", "10.0.0.3")
		d, sink := suspendedHalfway(t, w, data)
		w.name("fw.sim", "10.0.0.3", "10.0.0.1") // B first now
		before := a.Total()
		d.Resume()
		if err := d.Wait(); err != nil {
			t.Fatal(err)
		}
		if sink.sum() != sha256.Sum256(data) {
			t.Fatal("SHA-256 differs")
		}
		if b.Total() != 0 || a.Total() <= before {
			t.Fatalf("after the flip: %d requests to A (was %d), %d to B; want all on A", a.Total(), before, b.Total())
		}
		if st, _ := d.State(); st.Preferred != "10.0.0.1:5683" {
			t.Fatalf("preferred endpoint %q", st.Preferred)
		}
	})
}

func TestPreferredRemovedFromDNS(t *testing.T) {
	data := testrig.Bytes(64<<10, 4)
	synctest.Test(t, func(t *testing.T) {
		w, a, b := twoNodes(t, data)
		w.name("fw.sim", "10.0.0.1", "10.0.0.3")
		d, sink := suspendedHalfway(t, w, data)
		w.name("fw.sim", "10.0.0.3") // A left the pool
		a.stop()
		d.Resume()
		if err := d.Wait(); err != nil {
			t.Fatalf("moving to B with the same ETag: %v", err)
		}
		if sink.sum() != sha256.Sum256(data) {
			t.Fatal("SHA-256 differs")
		}
		if st, _ := d.State(); st.Preferred != "10.0.0.3:5683" || b.Total() == 0 {
			t.Fatalf("preferred %q, %d requests to B", st.Preferred, b.Total())
		}
	})
}

func TestServerRestarted(t *testing.T) {
	data := testrig.Bytes(64<<10, 5)
	for _, changed := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			w, a := serving(t, data, 0)
			dir := t.TempDir()
			path := filepath.Join(dir, "fw.bin")
			restarted := false
			opts := &download.Options{NewSocket: w.socket, Progress: func(p download.Progress) {
				if !restarted && p.Written >= int64(len(data)/2) {
					restarted = true
					a.stop()
					time.AfterFunc(5*time.Second, func() {
						if changed {
							a.write("fw.bin", testrig.Bytes(len(data), 99))
						}
						a.start()
					})
				}
			}}
			fd, err := download.ToFile(context.Background(), fileURL, path, opts)
			if err != nil {
				t.Fatal(err)
			}
			err = fd.Wait()
			if !changed {
				got, rerr := os.ReadFile(path)
				if err != nil || rerr != nil || sha256.Sum256(got) != sha256.Sum256(data) {
					t.Fatalf("restart with the same file: %v, %v", err, rerr)
				}
				return
			}
			if !errors.Is(err, download.ErrResourceChanged) {
				t.Fatalf("restart with a changed file: %v, want ErrResourceChanged", err)
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the partial download was renamed to the final name: %v", err)
			}
			part, _ := os.ReadFile(path + download.PartSuffix)
			if len(part) == 0 || len(part) >= len(data) || string(part) != string(data[:len(part)]) {
				t.Fatalf("the .part file holds %d bytes, not a prefix of the old version", len(part))
			}
		})
	}
}

// TestThousandSuspendResumeCycles: a download suspended and resumed a
// thousand times, each time as soon as a block has arrived, ends with the
// exact bytes. In lockstep each resume asks again for at most the one
// block in flight; with Q-Block2 for at most a burst (MAX_PAYLOADS, 10).
func TestThousandSuspendResumeCycles(t *testing.T) {
	data := testrig.Bytes(2048*128, 6) // 2048 blocks of 128 bytes
	for _, mode := range []struct {
		name     string
		qblock   bool
		perCycle int
	}{{"lockstep", false, 1}, {"Q-Block2", true, 10}} {
		synctest.Test(t, func(t *testing.T) {
			w, a := serving(t, data, time.Millisecond)
			var sink memSink
			d, err := download.Start(context.Background(), fileURL, &sink, &download.Options{NewSocket: w.socket, BlockSize: 128, QBlock: mode.qblock})
			if err != nil {
				t.Fatal(err)
			}
			cycles := 0
			for cycles < 1000 {
				last := d.Written()
				for d.Written() == last && d.Err() == nil {
					time.Sleep(500 * time.Microsecond)
				}
				if d.Err() != nil {
					break
				}
				if err := d.Suspend(); err != nil {
					t.Fatal(err)
				}
				time.Sleep(time.Millisecond)
				if err := d.Resume(); err != nil {
					t.Fatal(err)
				}
				cycles++
			}
			if err := d.Wait(); err != nil {
				t.Fatal(err)
			}
			if cycles != 1000 {
				t.Fatalf("%s: only %d cycles before the end", mode.name, cycles)
			}
			if sink.sum() != sha256.Sum256(data) {
				t.Fatalf("%s: SHA-256 differs", mode.name)
			}
			again, blocks := a.Refetched()
			if blocks != 2048 || again > mode.perCycle*cycles {
				t.Fatalf("%s: %d blocks requested again over %d resumes of %d blocks; want at most %d per resume", mode.name, again, cycles, blocks, mode.perCycle)
			}
			t.Logf("%s, 1000 cycles: %d block requests repeated (%.2f per resume), %+v", mode.name, again, float64(again)/1000, d.Progress())
		})
	}
}

// required hides Shutdown (and every other capability) of a socket.
type required struct{ sock.Socket }

func TestSuspendNeedsShutdown(t *testing.T) {
	data := testrig.Bytes(64<<10, 7)
	synctest.Test(t, func(t *testing.T) {
		w, _ := serving(t, data, 5*time.Millisecond)
		var sink memSink
		factory := func(n string) (sock.Socket, error) { s, err := w.socket(n); return required{s}, err }
		d, err := download.Start(context.Background(), fileURL, &sink, &download.Options{NewSocket: factory})
		if err != nil {
			t.Fatal(err)
		}
		for d.Written() == 0 {
			time.Sleep(time.Millisecond)
		}
		if err := d.Suspend(); !errors.Is(err, sock.ErrNotSupported) {
			t.Fatalf("Suspend over a socket without Shutdown: %v", err)
		}
		if err := d.Wait(); err != nil || sink.sum() != sha256.Sum256(data) {
			t.Fatalf("the download should go on: %v", err)
		}
	})
}

func TestOfflineModePerTransport(t *testing.T) {
	data := testrig.Bytes(32<<10, 8)
	synctest.Test(t, func(t *testing.T) {
		w, a := serving(t, data, 5*time.Millisecond)
		var c download.Controller
		if err := c.EnterOffline(download.UDP); err != nil {
			t.Fatal(err)
		}
		var udpSink, tcpSink memSink
		ud, err := c.Start(context.Background(), fileURL, &udpSink, &download.Options{NewSocket: w.socket})
		if err != nil {
			t.Fatal(err)
		}
		td, err := c.Start(context.Background(), "coap+tcp://fw.sim/fw.bin", &tcpSink, &download.Options{NewSocket: w.socket})
		if err != nil {
			t.Fatal(err)
		}
		if err := td.Wait(); err != nil {
			t.Fatalf("TCP download while UDP is offline: %v", err)
		}
		time.Sleep(time.Minute)
		if !c.IsOffline(download.UDP) || c.IsOffline(download.TCP) || ud.Phase() != download.Suspended || ud.Written() != 0 || a.Total() != 0 {
			t.Fatalf("the UDP download started while offline did not wait: written %d, %d UDP requests", ud.Written(), a.Total())
		}
		if err := c.ExitOffline(download.UDP); err != nil {
			t.Fatal(err)
		}
		if err := ud.Wait(); err != nil {
			t.Fatal(err)
		}
		if udpSink.sum() != sha256.Sum256(data) || tcpSink.sum() != sha256.Sum256(data) {
			t.Fatal("SHA-256 differs")
		}
		if n := len(c.Downloads()); n != 0 {
			t.Fatalf("%d downloads still owned after they ended", n)
		}
	})
}

// TestRestartFromSavedState: a process killed in the middle of a download
// (lockstep, or a Q-Block2 burst) leaves a state from which the next run
// continues, asking again for at most the block (lockstep) or the burst
// (Q-Block2) that was in flight, and nothing but the rest; blocks written
// past a gap are taken back from the file.
func TestRestartFromSavedState(t *testing.T) {
	data := testrig.Bytes(64<<10, 9)
	for _, mode := range []struct {
		name   string
		qblock bool
		again  int
	}{{"lockstep", false, 1}, {"Q-Block2", true, 10}} {
		synctest.Test(t, func(t *testing.T) {
			w, a := serving(t, data, 5*time.Millisecond)
			path := filepath.Join(t.TempDir(), "fw.bin")
			ctx, cancel := context.WithCancel(context.Background())
			fd, err := download.ToFile(ctx, fileURL, path, &download.Options{NewSocket: w.socket, QBlock: mode.qblock, Progress: func(p download.Progress) {
				if p.Written >= int64(len(data)/2) {
					cancel() // the process is killed
				}
			}})
			if err != nil {
				t.Fatal(err)
			}
			if err := fd.Wait(); !errors.Is(err, context.Canceled) {
				t.Fatalf("interrupted download: %v", err)
			}
			st, err := download.LoadState(path + download.StateSuffix)
			if err != nil || st.Written < int64(len(data)/2) {
				t.Fatalf("saved state: %+v, %v", st, err)
			}
			held := st.Written
			for _, b := range st.Pending {
				held += int64(b.Size)
			}
			time.Sleep(time.Second) // the first run's last requests land before the count
			first, mark := a.Total(), a.Mark()
			want := sha256.Sum256(data)
			fd, err = download.ToFile(context.Background(), fileURL, path, &download.Options{NewSocket: w.socket, SHA256: want[:], QBlock: mode.qblock})
			if err != nil {
				t.Fatal(err)
			}
			if err := fd.Wait(); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(path)
			if sha256.Sum256(got) != want {
				t.Fatal("SHA-256 differs")
			}
			if again, _ := a.Refetched(); again > mode.again || a.Total()-first > (len(data)-int(held))/1024+1 {
				t.Fatalf("%s: the second run asked for %d blocks (%d again); it should ask only for the %d bytes it lacked", mode.name, a.Total()-first, again, len(data)-int(held))
			}
			t.Logf("%s: killed with %d bytes written and %d past a gap; the second run asked for %d blocks: %v", mode.name, st.Written, held-st.Written, a.Total()-first, a.Since(mark))
			for _, leftover := range []string{download.PartSuffix, download.StateSuffix} {
				if _, err := os.Stat(path + leftover); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s left behind", leftover)
				}
			}
		})
	}
}

func TestHostileEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(1)
		newServer(t, w.n.AddHost("a", "10.0.0.1"), "fw.bin", []byte("x"))
		w.name("fw.sim", "10.0.0.1")
		path := filepath.Join(t.TempDir(), "missing.bin")
		fd, err := download.ToFile(context.Background(), "coap://fw.sim/missing.bin", path, &download.Options{NewSocket: w.socket})
		if err != nil {
			t.Fatal(err)
		}
		err = fd.Wait()
		if err == nil || errors.Is(err, context.Canceled) {
			t.Fatalf("download of a missing file: %v", err)
		}
		if _, serr := os.Stat(path); !errors.Is(serr, os.ErrNotExist) {
			t.Fatal("a failed download produced the final file")
		}
		t.Logf("missing file: %v", err)
	})
	for _, bad := range []string{"ftp://x/y", "coaps+udp://x/y", "coap://x", "coap://user@x/y", "coap://x:99999/y", "coap://" + string(make([]byte, 300)) + "/y"} {
		if _, err := download.Start(context.Background(), bad, &memSink{}, nil); !errors.Is(err, download.ErrBadURL) {
			t.Errorf("Start(%.30q): %v, want ErrBadURL", bad, err)
		}
	}
}

// TestDeviceAddressChanges: the device gets a new IP address mid-download
// (its network renumbered it); replies to the old one are lost, the
// download times out, reconnects from the new address and continues.
func TestDeviceAddressChanges(t *testing.T) {
	data := testrig.Bytes(64<<10, 13)
	synctest.Test(t, func(t *testing.T) {
		w, _ := serving(t, data, 5*time.Millisecond)
		half := make(chan struct{})
		var sink memSink
		d, err := download.Start(context.Background(), fileURL, &sink, &download.Options{NewSocket: w.socket, Progress: halfway(len(data), half)})
		if err != nil {
			t.Fatal(err)
		}
		<-half
		w.dev.SetAddrs("10.0.0.42")
		if err := d.Wait(); err != nil {
			t.Fatal(err)
		}
		if sink.sum() != sha256.Sum256(data) {
			t.Fatal("SHA-256 differs")
		}
		if p := d.Progress(); p.Retries == 0 {
			t.Fatalf("finished without reconnecting: %+v", p)
		}
	})
}

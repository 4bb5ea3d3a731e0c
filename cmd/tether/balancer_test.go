//go:build unix

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tether-iot/tether/download"
	"github.com/tether-iot/tether/internal/peertest"
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/dtlssock"
	"github.com/tether-iot/tether/sock/netsock"
)

// nginxStream is the module that gives nginx its UDP proxy (Debian's
// libnginx-mod-stream).
const nginxStream = "/usr/lib/nginx/modules/ngx_stream_module.so"

// TestBehindNginx: two `tether serve` instances behind nginx's UDP stream
// proxy, as a fleet's server scales out, and 200 devices downloading
// through it at once, plain and coaps, with an offline period in the
// middle of every download. The balancer hashes each device's address and
// port to one instance (affinity: a DTLS session lives in one instance);
// every device gets the exact file. Runs when nginx and its stream module
// are installed (.ci/run installs them); skips, or fails with
// TETHER_REQUIRE_PEERS=1, when they are not.
func TestBehindNginx(t *testing.T) {
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		peertest.Missing(t, "nginx", "not found in $PATH; Debian's nginx-light and libnginx-mod-stream have it")
	}
	if _, err := os.Stat(nginxStream); err != nil {
		peertest.Missing(t, "nginx's stream module", nginxStream+" is missing; Debian's libnginx-mod-stream has it")
	}
	bin := buildTether(t)
	image := testrig.Bytes(48<<10, 31)
	want := sha256.Sum256(image)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "fw.bin"), image, 0o644); err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(t.TempDir(), "psk")
	if err := os.WriteFile(keys, []byte("fleet fleet-secret-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// Two instances, each on its own ports.
	var udp, dtls []int
	for range 2 {
		u, d := peertest.FreePort(t), peertest.FreePort(t)
		cmd := exec.Command(bin, "serve", dir, "--udp", "127.0.0.1:"+strconv.Itoa(u), "--dtls", "127.0.0.1:"+strconv.Itoa(d), "--psk-file", keys, "-q")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		udp, dtls = append(udp, u), append(dtls, d)
	}
	front, frontS := peertest.FreePort(t), peertest.FreePort(t)
	prefix := t.TempDir()
	conf := fmt.Sprintf(`load_module %s;
error_log %s/error.log warn;
pid %s/nginx.pid;
events { worker_connections 4096; }
stream {
	upstream coap  { hash $remote_addr consistent; server 127.0.0.1:%d; server 127.0.0.1:%d; }
	upstream coaps { hash $remote_addr consistent; server 127.0.0.1:%d; server 127.0.0.1:%d; }
	server { listen 127.0.0.1:%d udp; proxy_pass coap;  proxy_timeout 5m; }
	server { listen 127.0.0.1:%d udp; proxy_pass coaps; proxy_timeout 5m; }
}
`, nginxStream, prefix, prefix, udp[0], udp[1], dtls[0], dtls[1], front, frontS)
	confPath := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	ng := exec.Command(nginx, "-p", prefix, "-c", confPath, "-e", filepath.Join(prefix, "error.log"), "-g", "daemon off; worker_processes 1;")
	var ngErr bytes.Buffer
	ng.Stderr = &ngErr
	ng.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its workers with it
	if err := ng.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// SIGTERM: the master stops its workers and exits; should it not,
		// the whole group is killed, workers included (a SIGKILL of the
		// master alone leaves them running).
		ng.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { ng.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-ng.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})

	psk := &dtlssock.Config{PSK: func([]byte) ([]byte, error) { return []byte("fleet-secret-key"), nil }, PSKIdentity: []byte("fleet")}
	for _, tc := range []struct {
		name string
		url  string
		dtls *dtlssock.Config
	}{
		{"coap", "coap://127.0.0.1:" + strconv.Itoa(front) + "/fw.bin", nil},
		{"coaps", "coaps://127.0.0.1:" + strconv.Itoa(frontS) + "/fw.bin", psk},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			const devices = 200
			start := time.Now()
			var ctl download.Controller
			bufs := make([]*bytes.Buffer, devices)
			var ds []*download.Download
			var halfway sync.WaitGroup
			halfway.Add(devices)
			for i := range devices {
				bufs[i] = new(bytes.Buffer)
				var once sync.Once
				// Each device on its own address, as devices are: the
				// balancer's affinity follows it.
				host := fmt.Sprintf("127.0.%d.%d", 1+i/250, 2+i%250)
				newSocket := func(network string) (sock.Socket, error) {
					s, err := netsock.New(network, nil)
					if err != nil {
						return nil, err
					}
					if err := sock.Bind(ctx, s, host, "0"); err != nil {
						s.Close()
						return nil, err
					}
					return s, nil
				}
				opts := &download.Options{DTLS: tc.dtls, NewSocket: newSocket, RetryDelay: 200 * time.Millisecond, GiveUpAfter: 2 * time.Minute,
					Progress: func(p download.Progress) {
						if p.Written >= int64(len(image)/2) || p.Phase == download.Ended {
							once.Do(halfway.Done)
						}
					}}
				d, err := ctl.Start(ctx, tc.url, download.Stream(bufs[i]), opts)
				if err != nil {
					t.Fatal(err)
				}
				ds = append(ds, d)
			}
			// Offline once most are halfway (some may have finished).
			halfwayDone := make(chan struct{})
			go func() { halfway.Wait(); close(halfwayDone) }()
			select {
			case <-halfwayDone:
			case <-ctx.Done():
				t.Fatalf("the devices never got halfway; nginx said %s", ngErr.String())
			}
			t.Logf("halfway after %v", time.Since(start).Round(time.Millisecond))
			if err := ctl.EnterOffline(download.UDP); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond)
			if err := ctl.ExitOffline(download.UDP); err != nil {
				t.Fatal(err)
			}
			exact := 0
			for i, d := range ds {
				if err := d.Wait(); err != nil {
					t.Errorf("device %d: %v", i, err)
					continue
				}
				if sha256.Sum256(bufs[i].Bytes()) == want {
					exact++
				}
			}
			t.Logf("all done after %v", time.Since(start).Round(time.Millisecond))
			if exact != devices {
				t.Errorf("%d of %d devices got the exact file through nginx", exact, devices)
			}
		})
	}
}

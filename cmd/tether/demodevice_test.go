package main

import (
	"strings"
	"testing"
)

// TestDemoDevice runs `tether demo device` and checks that it ends with
// status 0 having printed every step of the story, in order. It times
// nothing: the offline gap is made by holding the file server's request
// halfway until the device is offline, not by racing the download.
func TestDemoDevice(t *testing.T) {
	code, stdout, stderr := runCmd("demo", "device")
	if code != 0 {
		t.Fatalf("demo device: exit %d\n%s\n%s", code, stdout, stderr)
	}
	steps := []string{
		"LwM2M server at coap://127.0.0.1:",
		"device demo-device registered at /rd/0: /1/0,/3/0,/5/0",
		"server reads /3/0: manufacturer tether, model demo, serial 1, firmware version 1.0",
		"server writes /5/0/1 Package URI: 2.04 Changed",
		"   10%",
		"   50%  512.0 KiB",
		"device offline at byte 524288 (50%)",
		"(unchanged: nothing sent)",
		"device online: the download resumes at byte 524288 (block 512), where it stopped",
		"device registered again at /rd/",
		"  100%  1.0 MiB",
		"server reads /5/0/3 State: 2 (downloaded)",
		"server executes /5/0/2 Update: 2.04 Changed",
		"device installs firmware 2.0 into ",
		"server reads /5/0/5 Update Result: 1 (success), /5/0/3 State: 0 (idle)",
		"server executes /3/0/4 Reboot: 2.04 Changed",
		"device reboots into the installed image and registers at /rd/",
		"server reads /3/0/3 Firmware Version: 2.0",
		"done in ",
	}
	rest := stdout
	for _, step := range steps {
		i := strings.Index(rest, step)
		if i < 0 {
			t.Fatalf("demo device did not print %q after what came before it:\n%s", step, stdout)
		}
		rest = rest[i+len(step):]
	}
	if stderr != "" {
		t.Errorf("demo device wrote to stderr: %q", stderr)
	}
	t.Log("\n" + stdout)
}

// TestDemoDeviceUsage: help, and no arguments.
func TestDemoDeviceUsage(t *testing.T) {
	if code, stdout, stderr := runCmd("demo", "device", "-h"); code != 0 || !strings.Contains(stdout, "Examples:") || !strings.Contains(stdout, "tether demo device") {
		t.Errorf("demo device -h: exit %d, %q %q", code, stdout, stderr)
	}
	if code, _, stderr := runCmd("demo", "device", "extra"); code != exitUsage || !strings.Contains(stderr, "demo device takes no arguments") {
		t.Errorf("demo device extra: exit %d, %q", code, stderr)
	}
	if code, stdout, _ := runCmd("demo", "-h"); code != 0 || !strings.Contains(stdout, "device") {
		t.Errorf("demo -h does not list device: exit %d, %q", code, stdout)
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/tether-iot/tether/lwm2m"
)

// deviceInfo are /3's values that describe the product.
type deviceInfo struct {
	manufacturer, model, serial, firmwareVersion string
}

// deviceSource is where tether device takes /3's values: the flags, then
// --device-info's file or --device-info-cmd's output over them. The file
// or command is read again after each successful update, since the update
// changes the firmware version.
type deviceSource struct {
	file, cmd string
	stderr    io.Writer

	mu   sync.Mutex
	info deviceInfo
}

func newDeviceSource(ctx context.Context, f *deviceFlags, stderr io.Writer) (*deviceSource, error) {
	if f.infoFile != "" && f.infoCmd != "" {
		return nil, usageError{errors.New("--device-info and --device-info-cmd: give one")}
	}
	s := &deviceSource{file: f.infoFile, cmd: f.infoCmd, stderr: stderr, info: f.info}
	if s.info.serial == "" {
		s.info.serial = f.endpoint
	}
	if s.info.firmwareVersion == "" {
		s.info.firmwareVersion = version()
	}
	if err := s.reload(ctx); err != nil {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx) // a signal: exit as one
		}
		return nil, usageError{err}
	}
	return s, nil
}

// reload reads the file or runs the command, if any.
func (s *deviceSource) reload(ctx context.Context) error {
	var text []byte
	var err error
	switch {
	case s.file != "":
		if text, err = os.ReadFile(s.file); err != nil {
			return fmt.Errorf("--device-info: %w", err)
		}
	case s.cmd != "":
		cmd := exec.CommandContext(ctx, "/bin/sh", "-c", s.cmd)
		cmd.WaitDelay = time.Second // a child that keeps the output open does not hold us up
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if text, err = cmd.Output(); err != nil {
			return fmt.Errorf("--device-info-cmd %q: %w: %s", s.cmd, err, strings.TrimSpace(stderr.String()))
		}
	default:
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	info, err := parseDeviceInfo(text, s.info)
	if err != nil {
		return err
	}
	s.info = info
	return nil
}

// parseDeviceInfo reads 'key=value' lines over base; blank lines and
// lines starting with # are skipped.
func parseDeviceInfo(text []byte, base deviceInfo) (deviceInfo, error) {
	info := base
	sc := bufio.NewScanner(bytes.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			return base, fmt.Errorf("device info line %d: %q is not key=value", n, line)
		}
		value = strings.TrimSpace(value)
		switch strings.TrimSpace(key) {
		case "manufacturer":
			info.manufacturer = value
		case "model":
			info.model = value
		case "serial":
			info.serial = value
		case "firmware_version":
			info.firmwareVersion = value
		default:
			return base, fmt.Errorf("device info line %d: unknown key %q (manufacturer, model, serial, firmware_version)", n, key)
		}
	}
	return info, sc.Err()
}

func (s *deviceSource) get() deviceInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.info
}

// device is /3 as the client serves it: the firmware version asked for
// on every read.
func (s *deviceSource) device() lwm2m.Device {
	info := s.get()
	return lwm2m.Device{
		Manufacturer: info.manufacturer, Model: info.model, SerialNumber: info.serial,
		FirmwareVersionFunc: func() string { return s.get().firmwareVersion },
	}
}

// afterInstall wraps an installer: once it succeeds, /3's values are read
// again. A source that cannot be read keeps the old values; the install
// still succeeded.
func (s *deviceSource) afterInstall(install func(context.Context, string) error) func(context.Context, string) error {
	return func(ctx context.Context, image string) error {
		if err := install(ctx, image); err != nil {
			return err
		}
		if err := s.reload(ctx); err != nil {
			fmt.Fprintf(s.stderr, "tether: after the update: %v\n", err)
		}
		return nil
	}
}

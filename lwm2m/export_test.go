package lwm2m

import "os"

// WatchMoves makes c call reg with every move of its registration and fw
// with every move of /5 it makes or tries, and whether the table allowed
// it (fw runs with the firmware's lock held: it must not block). Set
// before Run.
func WatchMoves(c *Client, reg func(from, to RegState, allowed bool), fw func(from, to FirmwareState, allowed bool)) {
	c.onMove, c.onFwMove = reg, fw
}

// WatchSessionMoves makes c call reg with every move of the registration
// of each server after the first, by Short Server ID. Set before Run.
func WatchSessionMoves(c *Client, reg func(ssid uint16, from, to RegState, allowed bool)) {
	c.onSessionMove = reg
}

// RegAllowed and FirmwareAllowed are the machines' tables.
var (
	RegAllowed      = regAllowed
	FirmwareAllowed = fwAllowed
)

// SetStateWriter replaces how c saves /5's state (os.WriteFile's
// signature), to fail as a full disk does.
func SetStateWriter(c *Client, write func(path string, b []byte, perm os.FileMode) error) {
	c.firmware.mu.Lock()
	c.firmware.writeState = write
	c.firmware.mu.Unlock()
}

// SettleFirmware waits until every download and removal of /5's image
// started so far has let go of it.
func SettleFirmware(c *Client) { c.firmware.settle() }

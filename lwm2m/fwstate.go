package lwm2m

import (
	"fmt"
	"strconv"
)

// FirmwareState is /5/0/3 State, LwM2M 1.1 E.6.
type FirmwareState int

// The states of /5 Firmware Update.
const (
	StateIdle        FirmwareState = 0 // nothing downloaded, or the update done
	StateDownloading FirmwareState = 1 // the image is being downloaded
	StateDownloaded  FirmwareState = 2 // the image is complete and verified
	StateUpdating    FirmwareState = 3 // Install runs
)

var firmwareStateNames = [...]string{"idle", "downloading", "downloaded", "updating"}

// String returns the state's name.
func (s FirmwareState) String() string {
	if s < 0 || int(s) >= len(firmwareStateNames) {
		return "state(" + strconv.Itoa(int(s)) + ")"
	}
	return firmwareStateNames[s]
}

// UpdateResult is /5/0/5 Update Result, LwM2M 1.1 E.6.
type UpdateResult int

// The results of /5 Firmware Update.
const (
	ResultInitial             UpdateResult = 0 // no result yet
	ResultSuccess             UpdateResult = 1 // the update succeeded
	ResultNoStorage           UpdateResult = 2 // not enough storage for the image
	ResultOutOfMemory         UpdateResult = 3 // out of memory while downloading
	ResultConnectionLost      UpdateResult = 4 // the download failed on the network
	ResultIntegrityFailure    UpdateResult = 5 // the image failed its check
	ResultUnsupportedPackage  UpdateResult = 6 // the package type is not supported
	ResultInvalidURI          UpdateResult = 7 // the Package URI is invalid (or 4.04)
	ResultUpdateFailed        UpdateResult = 8 // Install failed
	ResultUnsupportedProtocol UpdateResult = 9 // the Package URI's scheme is not supported
)

// fwEvent is what moves /5: a server's operation, or the end of a
// download or an install.
type fwEvent int

const (
	fwWriteURI       fwEvent = iota // a Package URI with a scheme this client downloads
	fwRefuseURI                     // a Package URI refused: Result 7 or 9, or 2 when the state cannot be saved
	fwReset                         // an empty Package or Package URI
	fwDownloaded                    // the download completed and verified
	fwDownloadFailed                // the download ended without the image
	fwUpdate                        // Execute /5/0/2
	fwInstalled                     // Install returned nil
	fwInstallFailed                 // Install returned an error, or the process died during it
	fwImageLost                     // Downloaded, but the image is gone (found at start)
)

var fwEventNames = [...]string{"write URI", "refuse URI", "reset", "downloaded", "download failed", "update", "installed", "install failed", "image lost"}

func (e fwEvent) String() string { return fwEventNames[e] }

// fwKey is a state and an event in it.
type fwKey struct {
	from FirmwareState
	on   fwEvent
}

// fwMoves is /5's machine, the one table every move goes through
// (firmwareObject.moveLocked). A pair that is not here is refused: with
// 4.00 for a Package URI written outside Idle, 4.05 for an Update outside
// Downloaded and for a reset while Updating, as LwM2M 1.1 E.6 and Anjay
// answer.
//
//	                 write URI                  downloaded
//	┌─▶ Idle(0) ───────────────▶ Downloading(1) ───────────▶ Downloaded(2) ◀──┐
//	│    │ ▲ ▲                         │                        │      │       │
//	│    └─┘ └──── download failed, ───┘                        │      │update │install failed
//	│ refuse URI,  reset                                        │      ▼       │(Result 8)
//	│ reset    ▲──────────────── reset, image lost ─────────────┘   Updating(3)┘
//	│                                                                  │
//	└──────────────────────────── installed (Result 1) ────────────────┘
var fwMoves = map[fwKey]FirmwareState{
	{StateIdle, fwWriteURI}:              StateDownloading,
	{StateIdle, fwRefuseURI}:             StateIdle,
	{StateIdle, fwReset}:                 StateIdle,
	{StateDownloading, fwDownloaded}:     StateDownloaded,
	{StateDownloading, fwDownloadFailed}: StateIdle,
	{StateDownloading, fwReset}:          StateIdle,
	{StateDownloaded, fwUpdate}:          StateUpdating,
	{StateDownloaded, fwReset}:           StateIdle,
	{StateDownloaded, fwImageLost}:       StateIdle,
	{StateUpdating, fwInstalled}:         StateIdle,
	{StateUpdating, fwInstallFailed}:     StateDownloaded,
}

// fwNext is where event e moves /5 from state s, or an error with the code
// the server's operation is refused with.
func fwNext(s FirmwareState, e fwEvent) (FirmwareState, error) {
	if to, ok := fwMoves[fwKey{s, e}]; ok {
		return to, nil
	}
	switch e {
	case fwWriteURI, fwRefuseURI:
		return s, fmt.Errorf("%w: Package URI written in state %d (%v)", ErrBadRequest, s, s)
	case fwUpdate, fwReset:
		return s, fmt.Errorf("%w: %v in state %d (%v)", ErrMethodNotAllowed, e, s, s)
	}
	return s, fmt.Errorf("lwm2m: BUG: firmware event %v in state %v", e, s)
}

// fwAllowed reports whether some event moves /5 from one state to
// another.
func fwAllowed(from, to FirmwareState) bool {
	for k, s := range fwMoves {
		if k.from == from && s == to {
			return true
		}
	}
	return false
}

package download

import "slices"

// Phase is where a download is in its life; the package documentation
// draws the machine. Progress.Phase reports it.
type Phase int

// The phases of a download.
const (
	// Starting: the download was created; a file download re-reads and
	// verifies what an earlier run left in NAME.part.
	Starting Phase = iota
	// Attempting: connecting to the server and fetching blocks.
	Attempting
	// BackingOff: an attempt failed on something transient; the next one
	// is at Progress.NextAttempt, or sooner on Resume or Reconnect.
	BackingOff
	// Suspended: offline (Suspend, or a Controller's EnterOffline); the
	// socket is shut down with its association kept, and the give-up
	// clock is stopped.
	Suspended
	// Verifying: the body is complete; its size and SHA-256 are checked,
	// a file's from the disk, and the file is put in place.
	Verifying
	// Ended: Done is closed and Err says how.
	Ended
)

var phaseNames = [...]string{"starting", "attempting", "backing off", "suspended", "verifying", "ended"}

// String returns the phase's name, as the package documentation spells it.
func (p Phase) String() string {
	if p < 0 || int(p) >= len(phaseNames) {
		return "phase(?)"
	}
	return phaseNames[p]
}

// transitions lists, for each phase, the phases it may move to. Suspend
// moves any phase but Ended to Suspended, from another goroutine; every
// other move is the engine's.
var transitions = [...][]Phase{
	Starting:   {Attempting, Suspended, Verifying, Ended},
	Attempting: {BackingOff, Suspended, Verifying, Ended},
	BackingOff: {Attempting, Suspended, Ended},
	Suspended:  {Attempting, Ended},
	Verifying:  {Attempting, Suspended, Ended},
	Ended:      nil,
}

// allowed reports whether a download may move from one phase to another.
func allowed(from, to Phase) bool {
	return from >= 0 && int(from) < len(transitions) && slices.Contains(transitions[from], to)
}

// setPhaseLocked moves the download to phase to, if the machine allows it
// from where it is, and reports whether it moved. d.mu is held.
func (d *Download) setPhaseLocked(to Phase) bool {
	from := d.phase
	if !allowed(from, to) {
		if from != to {
			d.log.Error("download: BUG: refused a phase change", "from", from, "to", to)
		}
		return false
	}
	d.phase = to
	d.log.Debug("download: phase", "from", from, "to", to)
	return true
}

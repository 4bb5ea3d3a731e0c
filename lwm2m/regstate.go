package lwm2m

import "slices"

// RegState is where the client's registration is: the loop in Run is in
// exactly one of these, and every move goes through one function checked
// against one table. Status.State reports it. Run's documentation draws
// the machine.
type RegState int

// The states of the registration.
const (
	// Registering: the server holds no registration of ours; a Register
	// goes out now (and is in flight while the state lasts).
	Registering RegState = iota
	// Waiting: a Register (or the connection before it) failed; the next
	// try is after the back-off.
	Waiting
	// Registered: the server knows the client; requests are served,
	// notifications sent, an Update goes out when it falls due.
	Registered
	// Updating: a Registration Update is in flight.
	Updating
	// Asleep: queue mode after MAX_TRANSMIT_WAIT of quiet; the socket is
	// closed until something is due.
	Asleep
	// Offline: EnterOffline; nothing goes on the wire, notifications that
	// fall due are stored.
	Offline
	// Reconnecting: back online, or Reconnect: the connection is made
	// again; a DTLS session that resumed keeps the registration.
	Reconnecting
	// Deregistering: Stop; one bounded De-register, if the server holds a
	// registration and the client is online.
	Deregistering
	// Stopped: Run returned.
	Stopped
	// Bootstrapping: the client asks the bootstrap server for an account
	// (Bootstrap-Request) and serves its writes until Bootstrap-Finish:
	// at first start without a server, when registering keeps failing,
	// or when a server executes /1/x/9 (Bootstrap-Request Trigger).
	Bootstrapping
)

var regStateNames = [...]string{"registering", "waiting", "registered", "updating", "asleep", "offline", "reconnecting", "deregistering", "stopped", "bootstrapping"}

// String returns the state's name, as the documentation spells it.
func (s RegState) String() string {
	if s < 0 || int(s) >= len(regStateNames) {
		return "regstate(?)"
	}
	return regStateNames[s]
}

// regTransitions lists, for each state, the states it may move to. Every
// state but Stopped may end (Run's context ends, or Stop).
//
// Commands (offline, online, Reconnect, Stop) are carried out between two
// steps, never during an exchange, so Updating, which lasts one exchange,
// ends in Registered, Registering or Waiting before any command moves on.
// Stop deregisters only what the server holds: from a state without a
// registration, or offline, it stops at once.
var regTransitions = [...][]RegState{
	Registering:   {Registered, Waiting, Offline, Reconnecting, Bootstrapping, Stopped},
	Waiting:       {Registering, Bootstrapping, Offline, Reconnecting, Stopped},
	Registered:    {Updating, Asleep, Registering, Offline, Reconnecting, Deregistering, Bootstrapping, Stopped},
	Updating:      {Registered, Registering, Waiting, Stopped},
	Asleep:        {Registered, Registering, Waiting, Offline, Reconnecting, Deregistering, Bootstrapping, Stopped},
	Offline:       {Reconnecting, Asleep, Stopped},
	Reconnecting:  {Registered, Registering, Waiting, Offline, Deregistering, Bootstrapping, Stopped},
	Deregistering: {Stopped},
	Stopped:       nil,
	Bootstrapping: {Registering, Waiting, Offline, Reconnecting, Stopped},
}

// regAllowed reports whether the registration may move from one state to
// another.
func regAllowed(from, to RegState) bool {
	return from >= 0 && int(from) < len(regTransitions) && slices.Contains(regTransitions[from], to)
}

// move moves the registration to state to, if the table allows it from
// where it is, and reports whether it moved. Only Run's goroutine calls
// it. A refused move is a bug, logged at error level.
func (c *Client) move(to RegState) bool {
	r := &c.reg
	from := r.state
	if from == to {
		return true
	}
	allowed := regAllowed(from, to)
	switch {
	case c.isRoot() && c.onMove != nil:
		c.onMove(from, to, allowed)
	case !c.isRoot() && c.root.onSessionMove != nil:
		c.root.onSessionMove(c.server.shortID(), from, to, allowed)
	}
	if !allowed {
		c.log.Error("lwm2m: BUG: refused a registration move", "from", from, "to", to)
		return false
	}
	r.state = to
	c.log.Debug("lwm2m: registration", "from", from, "to", to)
	c.setStatus(func(s *Status) {
		s.State = to
		s.Offline = to == Offline
		s.Asleep = to == Asleep
	})
	return true
}

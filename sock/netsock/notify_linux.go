package netsock

import (
	"os"
	"sync"
	"time"

	"github.com/tether-iot/tether/sock"
	"golang.org/x/sys/unix"
)

var _ sock.ReadNotifier = (*Socket)(nil)

// NotifyRead implements sock.ReadNotifier for UDP, on Linux only: f is
// called from one goroutine the whole process shares, which waits in
// epoll_wait(2) for every socket that has a function and exists only while
// one has; an idle socket holds no goroutine. After a call, the next comes
// once a Receive has found the queue empty (sock.ErrTimeout) or reported
// an error, and data waits again. f runs with a lock held that Receive and
// NotifyRead take: it must return at once and must not call the socket.
// A TCP socket keeps f but never calls it. If the kernel refuses to watch
// the socket (fs.epoll.max_user_watches reached, no memory), f is not
// called for it until its next Connect or Bind.
func (s *Socket) NotifyRead(f func()) {
	s.core.Mu.Lock()
	defer s.core.Mu.Unlock()
	n := &s.rn
	n.mu.Lock() // waits for a call in progress, which holds n.mu
	n.f = f
	n.mu.Unlock()
	switch {
	case f == nil:
		s.unwatchLocked()
	case n.id != 0:
		// Watched already: re-armed, so that the new function hears of
		// data that waits even if the old one was told and never drained.
		n.rearm()
	default:
		s.watchLocked()
	}
}

// notifier is a socket's sock.ReadNotifier state. f, id, fd and armed
// change only with the socket's core.Mu and mu both held; the poller reads
// them with mu held, and holds mu while it calls f, so that NotifyRead(nil)
// returns once no call is in progress. Lock order: core.Mu, then mu, then
// the poller's mu; the poller never takes core.Mu and holds no lock of its
// own while it calls f.
type notifier struct {
	mu    sync.Mutex
	f     func()
	id    int32 // the current OS socket's registration with the poller; 0: none
	fd    int   // that OS socket's descriptor, open while id != 0
	armed bool  // the registration will report readability (EPOLLONESHOT not yet spent)
}

// watchLocked registers the OS socket with the poller when the socket has
// a function to call and can receive. Data already queued is reported at
// once: EPOLL_CTL_ADD checks readiness.
func (s *Socket) watchLocked() {
	n := &s.rn
	if n.f == nil || n.id != 0 || s.udp == nil || s.core.St == sock.StateShutdown {
		return
	}
	rc, err := s.udp.SyscallConn()
	if err != nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var (
		id   int32
		aerr error
		fd   int
	)
	if err := rc.Control(func(u uintptr) {
		fd = int(u)
		id, aerr = thePoller.add(n, fd)
	}); err != nil || aerr != nil {
		return
	}
	n.id, n.fd, n.armed = id, fd, true
}

// unwatchLocked removes the OS socket from the poller, before it is closed
// or shut down: an event the poller has already taken for it is dropped
// (its id is no longer the socket's), and a new descriptor with the same
// number gets a new id.
func (s *Socket) unwatchLocked() {
	n := &s.rn
	if n.id == 0 {
		return
	}
	n.mu.Lock()
	id, fd := n.id, n.fd
	n.id, n.fd, n.armed = 0, -1, false
	n.mu.Unlock()
	thePoller.remove(id, fd)
}

// rearmLocked re-arms the registration of OS socket generation gen after
// a Receive on it found the queue empty or reported an error.
func (s *Socket) rearmLocked(gen uint64) {
	if s.gen == gen && s.rn.id != 0 {
		s.rn.rearm()
	}
}

// rearm re-arms a spent one-shot registration; EPOLL_CTL_MOD checks
// readiness, so data that arrived since the owner's last Receive is
// reported at once. The caller holds core.Mu.
func (n *notifier) rearm() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.armed {
		return // nothing spent: no system call
	}
	if thePoller.modify(n.id, n.fd) == nil {
		n.armed = true
	}
}

// fire calls f for an event of registration id, unless that registration
// has gone meanwhile.
func (n *notifier) fire(id int32) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.id != id {
		return
	}
	n.armed = false
	if n.f != nil {
		n.f()
	}
}

// poller is the process's one epoll set for sockets with a notify
// function, and the goroutine that waits on it. The goroutine starts with
// the first registration and ends, closing the set, when the last one is
// removed; so an idle process (a test binary at its end) has none.
//
// Registrations are one-shot (EPOLLIN|EPOLLONESHOT), re-armed by the
// Receive that finds the queue empty. Edge-triggered (EPOLLET) would also
// lose nothing with an owner that drains until EAGAIN, but Linux signals an
// edge for every datagram that arrives, so a burst read while it arrives
// would call f several times; one-shot calls it once per drain, as the
// contract says, and an owner that stops at an error (an ICMP port
// unreachable) is re-armed by that error too.
type poller struct {
	mu   sync.Mutex
	epfd int // -1: no poller
	evfd int // an eventfd that wakes the goroutine to see whether to end
	regs map[int32]*notifier
	last int32 // the last id given; 0 is the eventfd's
}

var thePoller = poller{epfd: -1, evfd: -1}

const pollEvents = unix.EPOLLIN | unix.EPOLLONESHOT

// add registers fd for n, starting the poller if none runs, and returns the
// registration's id.
func (p *poller) add(n *notifier, fd int) (int32, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.epfd < 0 {
		if err := p.startLocked(); err != nil {
			return 0, err
		}
	}
	for {
		if p.last++; p.last <= 0 {
			p.last = 1 // after 2³¹ registrations; skip those still in use
		}
		if p.regs[p.last] == nil {
			break
		}
	}
	id := p.last
	ev := unix.EpollEvent{Events: pollEvents, Fd: id}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		p.wakeIfIdleLocked()
		return 0, os.NewSyscallError("epoll_ctl", err)
	}
	p.regs[id] = n
	return id, nil
}

// modify re-arms registration id of fd.
func (p *poller) modify(id int32, fd int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	ev := unix.EpollEvent{Events: pollEvents, Fd: id}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, fd, &ev); err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	return nil
}

// remove deregisters id, whose descriptor fd is still open.
func (p *poller) remove(id int32, fd int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, nil)
	delete(p.regs, id)
	p.wakeIfIdleLocked()
}

// wakeIfIdleLocked has the goroutine look whether it should end.
func (p *poller) wakeIfIdleLocked() {
	if len(p.regs) == 0 && p.evfd >= 0 {
		var one = [8]byte{1} // host byte order: 1 in the low byte on little-endian, non-zero on any
		_, _ = unix.Write(p.evfd, one[:])
	}
}

func (p *poller) startLocked() error {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return os.NewSyscallError("epoll_create1", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return os.NewSyscallError("eventfd", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: 0}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		unix.Close(evfd)
		unix.Close(epfd)
		return os.NewSyscallError("epoll_ctl", err)
	}
	p.epfd, p.evfd = epfd, evfd
	if p.regs == nil {
		p.regs = make(map[int32]*notifier)
	}
	go p.run(epfd, evfd)
	return nil
}

// due is an event taken from the epoll set, to be delivered.
type due struct {
	n  *notifier
	id int32
}

// run waits for events and calls each socket's function, with no lock of
// the poller's held, until no socket is registered.
func (p *poller) run(epfd, evfd int) {
	events := make([]unix.EpollEvent, 128)
	var ready []due
	var drain [8]byte
	for {
		k, err := unix.EpollWait(epfd, events, -1)
		if err != nil && err != unix.EINTR {
			time.Sleep(10 * time.Millisecond) // cannot happen (EBADF, EFAULT, EINVAL); never spin
		}
		p.mu.Lock()
		for _, ev := range events[:max(k, 0)] {
			if ev.Fd == 0 {
				_, _ = unix.Read(evfd, drain[:])
			} else if n := p.regs[ev.Fd]; n != nil {
				ready = append(ready, due{n, ev.Fd})
			}
		}
		if len(p.regs) == 0 {
			p.epfd, p.evfd = -1, -1
			p.mu.Unlock()
			unix.Close(evfd)
			unix.Close(epfd)
			return
		}
		p.mu.Unlock()
		for _, d := range ready {
			d.n.fire(d.id)
		}
		clear(ready)
		ready = ready[:0]
	}
}

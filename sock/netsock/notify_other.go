//go:build !linux

package netsock

// Outside Linux a Socket has no NotifyRead, so it is no sock.ReadNotifier:
// an owner that wants to be told of data falls back to a goroutine in
// Receive, as lwm2m does. These hooks of the Linux poller do nothing.

type notifier struct{}

func (s *Socket) watchLocked()         {}
func (s *Socket) unwatchLocked()       {}
func (s *Socket) rearmLocked(_ uint64) {}

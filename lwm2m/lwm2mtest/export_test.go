package lwm2mtest

// SetTestHookObserved makes every Observe call f between its first
// response and the observation's start, and returns the function that
// removes it.
func SetTestHookObserved(f func()) (restore func()) {
	testHookObserved = f
	return func() { testHookObserved = nil }
}

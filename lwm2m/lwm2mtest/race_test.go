//go:build race

package lwm2mtest_test

// raceEnabled: the race detector slows the big tests tenfold.
const raceEnabled = true

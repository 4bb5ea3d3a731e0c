//go:build !race

package lwm2mtest_test

const raceEnabled = false

//go:build race

package dsttest

// raceEnabled is true when the test binary is built with -race: the
// programs it runs are then built with -race too, so that dstd's own data
// races fail the integration tests.
const raceEnabled = true

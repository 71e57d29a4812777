//go:build !race

package dsttest

// raceEnabled: see race_on.go.
const raceEnabled = false

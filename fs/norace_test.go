//go:build !race

package fs_test

// raceEnabled: see race_test.go.
const raceEnabled = false

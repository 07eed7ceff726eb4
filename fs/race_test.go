//go:build race

package fs_test

// raceEnabled: the race detector slows every goroutine, so timing bounds get more slack.
const raceEnabled = true

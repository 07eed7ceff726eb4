package main

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// cpuProfileEnv names the environment variable that makes any encfs command write a Go CPU
// profile of its whole run to that file (for `go tool pprof`): how performance work looks
// inside a real mount, with the kernel, FUSE and the readers around it, which a benchmark of
// one package cannot show. It is an environment variable rather than a flag so that it
// reaches the sidecar through the bench scripts and container images unchanged.
const cpuProfileEnv = "ENCFS_CPU_PROFILE"

// startCPUProfile starts the profile ENCFS_CPU_PROFILE asks for, if any, and returns the
// function that finishes writing it.
func startCPUProfile() (stop func(), err error) {
	path := os.Getenv(cpuProfileEnv)
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cpuProfileEnv, err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", cpuProfileEnv, err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

package blockdev

import (
	"log/slog"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

var ioFlusherOnce sync.Once

// setIOFlusher marks every thread of this process as an I/O flusher (PR_SET_IO_FLUSHER): its
// memory allocations never wait for the kernel to write dirty pages back, which could need
// this very process to serve the writes (see doc.go, "Memory"). Threads created later inherit
// the mark. It needs CAP_SYS_RESOURCE and a binary without cgo; without them it logs why.
func setIOFlusher(log *slog.Logger) {
	ioFlusherOnce.Do(func() {
		_, _, errno := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_SET_IO_FLUSHER, 1, 0)
		if errno == syscall.ENOTSUP {
			log.Info("not marking the process as an I/O flusher: this binary is built with cgo (build with CGO_ENABLED=0, as the release image is)")
		} else if errno != 0 {
			log.Warn("cannot mark the process as an I/O flusher; under memory pressure, a write to a volume may wait on its own writeback",
				"err", errno)
		}
	})
}

package blockdev

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// bufferedLoop turns direct I/O off, to measure what it gains (BenchmarkLoop).
var bufferedLoop bool

// loopDev is a loop device attached to a file.
type loopDev struct {
	f        *os.File // the open loop device; holding it keeps the device from autoclearing
	path     string   // /dev/loopN
	name     string   // loopN
	directIO bool     // the kernel accepted direct I/O
}

// attachLoop attaches a free loop device to the file at backing, with 4096-byte logical
// blocks, in direct-I/O mode when the kernel allows it (so pages are cached once, by the
// filesystem above, not again for the backing file), and with autoclear, so that it detaches
// itself when its last user lets go even if this process is killed.
func attachLoop(backing string, readOnly bool) (*loopDev, error) {
	flag := os.O_RDWR
	if readOnly {
		flag = os.O_RDONLY
	}
	bf, err := os.OpenFile(backing, flag, 0)
	if err != nil {
		return nil, fmt.Errorf("open the device file %s: %w", backing, err)
	}
	defer bf.Close() // the loop device holds its own reference
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/loop-control (loop devices need root and the loop module): %w", err)
	}
	defer ctl.Close()
	var lastErr error
	// Another process may take the free device between our asking and configuring it.
	for range 20 {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, fmt.Errorf("find a free loop device: %w", err)
		}
		l, err := configure(n, bf, readOnly)
		if err == nil {
			return l, nil
		}
		lastErr = err
		if !errors.Is(err, unix.EBUSY) {
			return nil, err
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil, fmt.Errorf("attach a loop device: every free one was taken first: %w", lastErr)
}

func configure(n int, backing *os.File, readOnly bool) (*loopDev, error) {
	path := "/dev/loop" + strconv.Itoa(n)
	flag := os.O_RDWR
	if readOnly {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(path, flag|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	cfg := unix.LoopConfig{Fd: uint32(backing.Fd()), Size: 4096}
	cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR | unix.LO_FLAGS_DIRECT_IO
	if bufferedLoop {
		cfg.Info.Flags &^= unix.LO_FLAGS_DIRECT_IO
	}
	if readOnly {
		cfg.Info.Flags |= unix.LO_FLAGS_READ_ONLY
	}
	copy(cfg.Info.File_name[:], FsName)
	err = unix.IoctlLoopConfigure(int(f.Fd()), &cfg)
	if errors.Is(err, unix.EINVAL) {
		// Kernels that cannot do direct I/O on this file refuse the flag; buffered works.
		cfg.Info.Flags &^= unix.LO_FLAGS_DIRECT_IO
		err = unix.IoctlLoopConfigure(int(f.Fd()), &cfg)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("configure %s: %w", path, err)
	}
	l := &loopDev{f: f, path: path, name: "loop" + strconv.Itoa(n)}
	l.directIO = readSys(l.name, "dio") == "1"
	return l, nil
}

// detach clears the loop device. If something still holds it (a filesystem that could only be
// detached lazily), the kernel detaches it when that lets go (autoclear).
func (l *loopDev) detach() error {
	err := unix.IoctlSetInt(int(l.f.Fd()), unix.LOOP_CLR_FD, 0)
	l.f.Close()
	if err != nil && !errors.Is(err, unix.ENXIO) {
		return fmt.Errorf("detach %s: %w", l.path, err)
	}
	// The detach completes asynchronously: wait until the device lets go of the file, so
	// that the FUSE filesystem behind it can be unmounted.
	deadline := time.Now().Add(10 * time.Second)
	for readSys(l.name, "backing_file") != "" {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s still holds its file 10s after detaching", l.path)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// readSys reads /sys/block/<name>/loop/<attr>, or "" if it does not exist (not attached).
func readSys(name, attr string) string {
	b, err := os.ReadFile(filepath.Join("/sys/block", name, "loop", attr))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

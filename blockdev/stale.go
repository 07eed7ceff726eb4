package blockdev

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/encfs/encfs/mount"
)

// CleanStale removes what a killed run left behind: for every FUSE mount of a device (source
// FsName) whose daemon has exited, it lazily unmounts the filesystems mounted on loop devices
// backed by its file, detaches those loop devices, and unmounts the FUSE mount. Live devices,
// and loop devices backed by anything else, are left alone. scripts/cleanup.sh does the same
// from the shell.
func CleanStale(log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	ms, err := mount.Mounts()
	if err != nil {
		return err
	}
	dead := map[string]bool{}
	for _, m := range ms {
		if m.IsFUSE() && m.Source == FsName && disconnected(m.MountPoint) {
			dead[m.MountPoint] = true
		}
	}
	if len(dead) == 0 {
		return nil
	}
	var errs []error
	loops, _ := filepath.Glob("/sys/block/loop*")
	for _, dir := range loops {
		name := filepath.Base(dir)
		backing := strings.TrimSuffix(readSys(name, "backing_file"), " (deleted)")
		if backing == "" || !dead[filepath.Dir(backing)] {
			continue
		}
		dev := "/dev/" + name
		for _, m := range ms {
			if m.Source == dev {
				log.Warn("unmounting a filesystem whose device's encfs process is gone", "path", m.MountPoint, "loop", dev)
				if err := unix.Unmount(m.MountPoint, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
					errs = append(errs, fmt.Errorf("unmount %s: %w", m.MountPoint, err))
				}
			}
		}
		log.Warn("detaching a loop device whose encfs process is gone", "loop", dev)
		if f, err := os.OpenFile(dev, os.O_RDONLY, 0); err == nil {
			// Still held by a lazily unmounted filesystem, it detaches itself when that lets go.
			unix.IoctlSetInt(int(f.Fd()), unix.LOOP_CLR_FD, 0)
			f.Close()
		}
	}
	for dir := range dead {
		log.Warn("removing a dead FUSE mount of a device", "path", dir)
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", dir, err))
		}
		os.Remove(dir)
	}
	return errors.Join(errs...)
}

// disconnected reports whether the FUSE mount at dir has lost its daemon; one that does not
// answer within two seconds (stopped, not dead) counts as alive.
func disconnected(dir string) bool {
	res := make(chan bool, 1)
	go func() { res <- mount.Disconnected(dir) }()
	select {
	case dead := <-res:
		return dead
	case <-time.After(2 * time.Second):
		return false
	}
}

package mount

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// CleanStale removes a FUSE mount left at path by an earlier run, so that a restarted sidecar
// can mount again. Such a mount shows up in the mount table as a FUSE filesystem, and, once
// its daemon has died, fails every access with ENOTCONN. It is detached lazily, which cannot
// hang on a daemon that is stuck rather than dead. Other kinds of mounts at path (a volume the
// mount point lives on) are left alone. A path that does not exist needs no cleaning.
func CleanStale(path string, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	p, err := canonical(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	// Several runs may have crashed in turn, each leaving a mount on top of the last.
	for range 16 {
		ms, err := MountsAt(p)
		if err != nil {
			return err
		}
		if len(ms) == 0 || !ms[len(ms)-1].IsFUSE() {
			break
		}
		m := ms[len(ms)-1]
		log.Warn("removing a FUSE mount left at the mount point by an earlier run", "path", p, "type", m.FSType, "source", m.Source)
		if err := unmountOnce(p, true); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("remove stale mount at %s: %w", p, err)
		}
	}
	// A dead FUSE mount can also be visible without being in this table (another mount
	// namespace put it there); the kernel then answers ENOTCONN.
	if Disconnected(p) {
		log.Warn("removing a disconnected FUSE mount at the mount point", "path", p)
		if err := unmountOnce(p, true); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("remove stale mount at %s: %w", p, err)
		}
	}
	return nil
}

// Disconnected reports whether path is a FUSE mount whose daemon has gone (ENOTCONN). It
// looks up a name that cannot be cached: the kernel may answer a stat of the mount point itself
// from attributes cached before the daemon died.
func Disconnected(path string) bool {
	var b [8]byte
	rand.Read(b[:])
	var st unix.Stat_t
	err := unix.Lstat(filepath.Join(path, ".encfs-probe-"+hex.EncodeToString(b[:])), &st)
	return errors.Is(err, unix.ENOTCONN)
}

package mount

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// ErrInUse reports a mount point that already holds a live mount. encfs never mounts over one:
// that would hide a filesystem someone is using (another encfs serving readers, a user's own
// FUSE filesystem, a volume) and swap what a reader sees under it.
var ErrInUse = errors.New("mount point in use")

// probeTimeout bounds the check of whether a FUSE mount's daemon still answers. A daemon that
// is stopped rather than dead never answers; it counts as alive (it may yet resume).
const probeTimeout = 2 * time.Second

// CleanStale removes a dead FUSE mount left at path by an earlier run (its daemon has exited,
// so every access fails with ENOTCONN), so that a restarted sidecar can mount again. It is
// detached lazily, which cannot hang. A live mount at path, FUSE or any other kind, is left
// alone and reported as an error wrapping ErrInUse that names its type and source. A path
// that does not exist needs no cleaning.
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
	// Several runs may have crashed in turn, each leaving a dead mount on top of the last.
	for range 16 {
		ms, err := MountsAt(p)
		if err != nil {
			return err
		}
		if len(ms) == 0 {
			break
		}
		top := ms[len(ms)-1]
		if !top.IsFUSE() || !disconnectedWithin(p, probeTimeout) {
			return inUse(p, top)
		}
		log.Warn("removing a dead FUSE mount left at the mount point by an earlier run (its daemon has exited)",
			"path", p, "type", top.FSType, "source", top.Source)
		if err := unmountOnce(p, true); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("remove stale mount at %s: %w", p, err)
		}
	}
	// A dead FUSE mount can also be visible without being in this table (another mount
	// namespace put it there); the kernel then answers ENOTCONN.
	if disconnectedWithin(p, probeTimeout) {
		log.Warn("removing a disconnected FUSE mount at the mount point", "path", p)
		if err := unmountOnce(p, true); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("remove stale mount at %s: %w", p, err)
		}
	}
	return nil
}

// Check reports, changing nothing, whether Mount(f, o) could use its mount point: an error
// wrapping ErrInUse for a live mount there (at the hidden directory with Publish), or the
// missing-parent error. A dead mount is no obstacle: Mount removes it. Callers run it before
// slow work (key release, packing) so that a mount point in use fails at once.
func Check(o Options) error {
	target, err := canonical(o.Mountpoint)
	if err != nil {
		return err
	}
	dir := target
	if o.Publish {
		if dir = o.HiddenDir; dir == "" {
			dir = HiddenDir(target)
		}
		if dir, err = canonical(dir); err != nil {
			return err
		}
	}
	ms, err := MountsAt(dir)
	if err != nil || len(ms) == 0 {
		return err
	}
	top := ms[len(ms)-1]
	if top.IsFUSE() && disconnectedWithin(dir, probeTimeout) {
		return nil
	}
	return inUse(dir, top)
}

// inUse explains a live mount at p and what to do about it.
func inUse(p string, m Info) error {
	if m.IsFUSE() {
		return fmt.Errorf("%w: %s is a live %s mount (source %q) whose daemon still answers; "+
			"only a dead one is replaced: stop that process or unmount it (umount %s), or choose another mount point",
			ErrInUse, p, m.FSType, m.Source, p)
	}
	return fmt.Errorf("%w: %s is a live %s mount (source %q); mounting over it would hide it: "+
		"choose an empty directory that is not a mount point (a subdirectory of a shared volume, not its root)",
		ErrInUse, p, m.FSType, m.Source)
}

// Disconnected reports whether path is a FUSE mount whose daemon has gone (ENOTCONN). It
// looks up a name that cannot be cached: the kernel may answer a stat of the mount point itself
// from attributes cached before the daemon died. On a FUSE mount whose daemon is stopped it
// blocks until the daemon answers; disconnectedWithin bounds that.
func Disconnected(path string) bool {
	var b [8]byte
	rand.Read(b[:])
	var st unix.Stat_t
	err := unix.Lstat(filepath.Join(path, ".encfs-probe-"+hex.EncodeToString(b[:])), &st)
	return errors.Is(err, unix.ENOTCONN)
}

// disconnectedWithin is Disconnected, taking a mount that does not answer within d as alive.
func disconnectedWithin(path string, d time.Duration) bool {
	res := make(chan bool, 1)
	go func() { res <- Disconnected(path) }()
	select {
	case dead := <-res:
		return dead
	case <-time.After(d):
		return false
	}
}

package mount

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// unmountOnce unmounts dir once: umount(2) as root, fusermount3 -u otherwise. lazy detaches
// the mount from the tree even while files on it are open (MNT_DETACH, fusermount -z).
// "Busy" comes back as unix.EBUSY and "not mounted" as unix.EINVAL, whichever way was used.
func unmountOnce(dir string, lazy bool) error {
	if os.Geteuid() == 0 {
		flags := 0
		if lazy {
			flags = unix.MNT_DETACH
		}
		return unix.Unmount(dir, flags)
	}
	bin, err := fusermount()
	if err != nil {
		return err
	}
	args := []string{"-u", "-q"}
	if lazy {
		args = append(args, "-z")
	}
	out, err := exec.Command(bin, append(args, dir)...).CombinedOutput()
	switch msg := strings.ToLower(string(out)); {
	case err == nil:
		return nil
	case strings.Contains(msg, "busy"):
		return unix.EBUSY
	case strings.Contains(msg, "not mounted") || strings.Contains(msg, "not found"):
		return unix.EINVAL
	default:
		return fmt.Errorf("%s: %v: %s", bin, err, strings.TrimSpace(string(out)))
	}
}

func fusermount() (string, error) {
	for _, name := range []string{"fusermount3", "fusermount"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("neither fusermount3 nor fusermount is installed, and unmounting without them needs root")
}

// unmountDir unmounts dir, retrying while it is busy (a reader still has a file open or its
// working directory there) until timeout, then detaching it lazily so that nothing is left
// in the mount table. It reports whether the lazy detach was needed.
func unmountDir(dir string, timeout time.Duration, log *slog.Logger) (lazy bool, err error) {
	deadline := time.Now().Add(timeout)
	delay := 10 * time.Millisecond
	for {
		err := unmountOnce(dir, false)
		switch {
		case err == nil, errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return false, nil // unmounted, or already gone (for example unmounted by hand)
		case !errors.Is(err, unix.EBUSY):
			return false, err
		case time.Now().After(deadline):
			log.Warn("mount still busy; detaching it lazily (it disappears from the tree now and goes away when the last file on it is closed)",
				"path", dir, "waited", timeout)
			if err := unmountOnce(dir, true); err != nil && !errors.Is(err, unix.EINVAL) {
				return true, err
			}
			return true, nil
		}
		time.Sleep(delay)
		delay = min(2*delay, 250*time.Millisecond)
	}
}

// abortConnection ends a FUSE connection through the fusectl filesystem: every pending and
// later request on it fails, and the daemon's request loops exit. It is the last step after a
// lazy unmount, when files still held open would otherwise keep them serving until those
// files are closed.
func abortConnection(dev string) error {
	major, minor, ok := strings.Cut(dev, ":")
	if !ok {
		return fmt.Errorf("bad device number %q", dev)
	}
	ma, err1 := strconv.ParseUint(major, 10, 32)
	mi, err2 := strconv.ParseUint(minor, 10, 32)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("bad device number %q", dev)
	}
	// The kernel names the connection after its dev_t in the kernel's encoding. Minimal
	// container images often lack the fusectl mount systemd makes at boot; then there is
	// nothing to write to, and the connection ends when the process exits instead.
	conn := filepath.Join("/sys/fs/fuse/connections", strconv.FormatUint(ma<<20|mi, 10))
	return os.WriteFile(filepath.Join(conn, "abort"), []byte("1"), 0)
}

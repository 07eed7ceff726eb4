package mount

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// HiddenDir is where a published mount is really mounted: a hidden directory beside target.
// It is in the same directory so that the target can be a relative symlink, which resolves
// the same in every container that shares the volume, wherever it is mounted there.
func HiddenDir(target string) string {
	return filepath.Join(filepath.Dir(target), "."+filepath.Base(target)+".encfs-mnt")
}

// Publish atomically makes target a symlink to the hidden mount directory: consumers see
// either nothing (or an earlier run's link) or the live mount, never an empty directory.
// target may be missing, a symlink (replaced atomically) or an empty directory (removed
// first; it holds nothing a consumer could miss).
func Publish(target, hidden string) error {
	st, err := os.Lstat(target)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	case st.Mode()&fs.ModeSymlink != 0:
	case st.IsDir():
		if err := os.Remove(target); err != nil {
			return fmt.Errorf("publish: %s is a directory that cannot be replaced by the mount's symlink: %w", target, err)
		}
	default:
		return fmt.Errorf("publish: %s exists and is not a symlink or an empty directory", target)
	}
	tmp := filepath.Join(filepath.Dir(target), "."+filepath.Base(target)+".encfs-link-"+strconv.Itoa(os.Getpid()))
	os.Remove(tmp) // a leftover of a crashed run with the same pid
	if err := os.Symlink(filepath.Base(hidden), tmp); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	if err := os.Rename(tmp, target); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("publish: %w", err)
	}
	return nil
}

// Unpublish removes target if it is still the symlink Publish made.
func Unpublish(target, hidden string) error {
	if dest, err := os.Readlink(target); err != nil || dest != filepath.Base(hidden) {
		return nil // gone already, or replaced by someone else: not ours to remove
	}
	return os.Remove(target)
}

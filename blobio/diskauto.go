package blobio

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// AutoDiskCache as ChunkOptions.DiskCache gives the layer a disk cache of its own, for a mount
// whose operator named none: a private directory on the container's ephemeral storage, removed
// when the layer closes. Ciphertext is safe on local disk (it is verified at every use), and a
// data loader that reads a dataset again and again needs a cache the size of the dataset, more
// than memory holds.
const AutoDiskCache = "auto"

// autoCacheBase is where automatic disk caches live: $ENCFS_CACHE_DIR, else the system's
// temporary directory.
func autoCacheBase() string {
	if d := os.Getenv("ENCFS_CACHE_DIR"); d != "" {
		return d
	}
	return os.TempDir()
}

// autoCachePrefix starts the name of every automatic cache directory; the pid that follows
// tells whether its owner is still alive.
const autoCachePrefix = "encfs-cache-"

// newAutoDiskDir creates the private cache directory of this process under the base, after
// removing those whose process is gone (a crash, a SIGKILL). bound is the size it may take:
// want (0: sized to the image, size plus a chunk), at most half of the free space there.
func newAutoDiskDir(size, chunk, want int64) (dir string, bound int64, err error) {
	base := autoCacheBase()
	removeDeadAutoDirs(base)
	var st unix.Statfs_t
	if err := unix.Statfs(base, &st); err != nil {
		return "", 0, fmt.Errorf("disk cache: %s: %w", base, err)
	}
	free := int64(st.Bavail) * st.Bsize
	if want <= 0 {
		want = size + chunk
	}
	bound = min(want, free/2)
	if bound < 2*chunk {
		return "", 0, fmt.Errorf("%w: %s has %d MiB free; an automatic cache takes at most half of it, too little to hold two chunks", ErrDiskCache, base, free>>20)
	}
	dir, err = os.MkdirTemp(base, fmt.Sprintf("%s%d-", autoCachePrefix, os.Getpid()))
	if err != nil {
		return "", 0, fmt.Errorf("disk cache: %w", err)
	}
	return dir, bound, nil
}

// removeDeadAutoDirs removes the automatic cache directories of processes that no longer run.
func removeDeadAutoDirs(base string) {
	entries, _ := os.ReadDir(base)
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), autoCachePrefix)
		if !ok || !e.IsDir() {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.RemoveAll(filepath.Join(base, e.Name()))
		}
	}
}

package fs_test

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/encfs/encfs/fs/fstest"
	"github.com/encfs/encfs/image"
)

// TestHostileIndexLookups mounts an authentic image whose index has a directory entry back to
// an ancestor and an entry that lists a directory as a file: looking them up gives EIO, so
// the mount never shows a directory cycle; the sound part of the tree still reads.
func TestHostileIndexLookups(t *testing.T) {
	dir := image.Inode{Mode: syscall.S_IFDIR | 0o755, Nlink: 2}
	file := image.Inode{Mode: syscall.S_IFREG | 0o644, Nlink: 1}
	const typeDir, typeReg = syscall.S_IFDIR >> 12, syscall.S_IFREG >> 12
	key := fstest.NewKey(t)
	img := fstest.IndexImage(t, key, []image.Inode{dir, dir, dir, file}, map[uint64][]image.DirEntry{
		0: {{Name: "a", Ino: 1, Type: typeDir}},
		1: {{Name: "b", Ino: 2, Type: typeDir}, {Name: "empty", Ino: 3, Type: typeReg}, {Name: "fake-file", Ino: 1, Type: typeReg}},
		2: {{Name: "up", Ino: 1, Type: typeDir}},
	})
	m := fstest.Mount(t, img, key, nil)
	for _, p := range []string{"a/b/up", "a/fake-file"} {
		if _, err := os.Lstat(filepath.Join(m.Dir, p)); !errors.Is(err, syscall.EIO) {
			t.Errorf("lookup %s: %v, want EIO", p, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(m.Dir, "a", "empty")); err != nil || len(b) != 0 {
		t.Errorf("the sound file: %q, %v", b, err)
	}
}

package fs_test

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/encfs/encfs/fs/fstest"
	"github.com/encfs/encfs/internal/testtree"
)

// TestTreeMatchesSource packs the varied tree and compares the mount with the source, byte
// for byte and stat for stat.
func TestTreeMatchesSource(t *testing.T) {
	src := testtree.Build(t, t.TempDir())
	m := fstest.MountTree(t, src, nil)
	testtree.Equal(t, testtree.Snapshot(t, src), testtree.Snapshot(t, m.Dir))

	// Owners, and that every name resolves to the inode number its hard links share.
	var srcSt, mntSt unix.Stat_t
	filepath.Walk(src, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(src, p)
		if err := unix.Lstat(p, &srcSt); err != nil {
			t.Fatal(err)
		}
		if err := unix.Lstat(filepath.Join(m.Dir, rel), &mntSt); err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		if srcSt.Uid != mntSt.Uid || srcSt.Gid != mntSt.Gid {
			t.Errorf("%s: owner %d:%d, want %d:%d", rel, mntSt.Uid, mntSt.Gid, srcSt.Uid, srcSt.Gid)
		}
		if srcSt.Mode&unix.S_IFMT == unix.S_IFLNK && mntSt.Size != srcSt.Size {
			t.Errorf("%s: symlink size %d, want %d", rel, mntSt.Size, srcSt.Size)
		}
		return nil
	})
	ino := func(rel string) uint64 {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(m.Dir, rel), &st); err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}
	if a, b := ino("b4097"), ino("small/hardlink-b4097"); a != b {
		t.Errorf("hard links have inode numbers %d and %d, want one", a, b)
	}
	if ino(".") != 1 {
		t.Errorf("root inode number %d, want 1", ino("."))
	}
	// Stable: a remount gives the same numbers.
	if a, b := ino("small/a.txt"), ino("small/b.txt"); a == b || a == 0 || b == 0 {
		t.Errorf("distinct files have inode numbers %d and %d", a, b)
	}
}

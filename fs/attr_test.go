package fs_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	encfs "github.com/encfs/encfs/fs"
	"github.com/encfs/encfs/fs/fstest"
)

func TestXattrs(t *testing.T) {
	src := t.TempDir()
	writeFiles(t, src, map[string]int{"with": 1, "without": 1})
	if err := unix.Setxattr(filepath.Join(src, "with"), "user.b", []byte("second"), 0); err != nil {
		t.Skipf("no user xattrs on the temp filesystem: %v", err)
	}
	unix.Setxattr(filepath.Join(src, "with"), "user.a", []byte("first value"), 0)
	m := fstest.MountTree(t, src, nil)
	p := filepath.Join(m.Dir, "with")

	buf := make([]byte, 256)
	n, err := unix.Listxattr(p, buf)
	if err != nil || !bytes.Equal(buf[:n], []byte("user.a\x00user.b\x00")) {
		t.Errorf("listxattr: %q, %v", buf[:max(n, 0)], err)
	}
	if n, err := unix.Listxattr(p, nil); err != nil || n != len("user.a\x00user.b\x00") {
		t.Errorf("listxattr size: %d, %v", n, err)
	}
	if n, err := unix.Getxattr(p, "user.a", buf); err != nil || string(buf[:n]) != "first value" {
		t.Errorf("getxattr: %q, %v", buf[:max(n, 0)], err)
	}
	if n, err := unix.Getxattr(p, "user.a", nil); err != nil || n != len("first value") {
		t.Errorf("getxattr size: %d, %v", n, err)
	}
	if _, err := unix.Getxattr(p, "user.a", buf[:3]); !errors.Is(err, syscall.ERANGE) {
		t.Errorf("getxattr into a small buffer: %v, want ERANGE", err)
	}
	if _, err := unix.Getxattr(p, "user.missing", buf); !errors.Is(err, syscall.ENODATA) {
		t.Errorf("getxattr of a missing name: %v, want ENODATA", err)
	}
	if n, err := unix.Listxattr(filepath.Join(m.Dir, "without"), buf); err != nil || n != 0 {
		t.Errorf("listxattr without xattrs: %d, %v", n, err)
	}
}

func TestStatfs(t *testing.T) {
	src := t.TempDir()
	writeFiles(t, src, map[string]int{"a": 100000, "b/c": 1})
	m := fstest.MountTree(t, src, nil)
	var st unix.Statfs_t
	if err := unix.Statfs(m.Dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type != 0x65735546 { // FUSE_SUPER_MAGIC
		t.Errorf("type %#x, want FUSE", st.Type)
	}
	if st.Blocks == 0 || st.Bfree != 0 || st.Bavail != 0 || st.Files != 4 || st.Ffree != 0 || st.Namelen != 255 {
		t.Errorf("statfs %+v: want a full filesystem of 4 inodes", st)
	}
	if st.Flags&unix.ST_RDONLY == 0 {
		t.Errorf("flags %#x: not read-only", st.Flags)
	}
}

func TestOwnerOverride(t *testing.T) {
	src := t.TempDir()
	writeFiles(t, src, map[string]int{"f": 1})
	uid, gid := uint32(4242), uint32(4343)
	m := fstest.MountTree(t, src, &fstest.Options{FS: encfs.Options{UID: &uid, GID: &gid}})
	for _, rel := range []string{".", "f"} {
		st, err := os.Lstat(filepath.Join(m.Dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		sys := st.Sys().(*syscall.Stat_t)
		if sys.Uid != uid || sys.Gid != gid {
			t.Errorf("%s: owner %d:%d, want %d:%d", rel, sys.Uid, sys.Gid, uid, gid)
		}
	}
}

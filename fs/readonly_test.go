package fs_test

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	encfs "github.com/encfs/encfs/fs"
	"github.com/encfs/encfs/fs/fstest"
	"github.com/encfs/encfs/image"
)

// TestWritesFailWithEROFS tries every kind of change through the mount.
func TestWritesFailWithEROFS(t *testing.T) {
	src := t.TempDir()
	writeFiles(t, src, map[string]int{"file": 10, "dir/inner": 10})
	if err := os.Chmod(filepath.Join(src, "file"), 0o444); err != nil {
		t.Fatal(err)
	}
	m := fstest.MountTree(t, src, nil)
	p := func(rel string) string { return filepath.Join(m.Dir, rel) }
	open := func(flags int) func() error {
		return func() error {
			f, err := os.OpenFile(p("file"), flags, 0)
			if err == nil {
				f.Close()
			}
			return err
		}
	}
	for name, op := range map[string]func() error{
		"open O_WRONLY":  open(os.O_WRONLY),
		"open O_RDWR":    open(os.O_RDWR),
		"open O_TRUNC":   open(os.O_RDONLY | os.O_TRUNC),
		"open O_APPEND":  open(os.O_WRONLY | os.O_APPEND),
		"create":         func() error { _, err := os.Create(p("new")); return err },
		"create in dir":  func() error { return os.WriteFile(p("dir/new"), nil, 0o644) },
		"mkdir":          func() error { return os.Mkdir(p("newdir"), 0o755) },
		"unlink":         func() error { return os.Remove(p("file")) },
		"rmdir":          func() error { return unix.Rmdir(p("dir")) },
		"rename":         func() error { return os.Rename(p("file"), p("renamed")) },
		"chmod":          func() error { return os.Chmod(p("file"), 0o777) },
		"chown":          func() error { return os.Chown(p("file"), 1, 1) },
		"utimes":         func() error { return os.Chtimes(p("file"), time.Now(), time.Now()) },
		"truncate":       func() error { return os.Truncate(p("file"), 0) },
		"symlink":        func() error { return os.Symlink("file", p("link")) },
		"link":           func() error { return os.Link(p("file"), p("hardlink")) },
		"mknod":          func() error { return unix.Mknod(p("fifo"), unix.S_IFIFO|0o644, 0) },
		"setxattr":       func() error { return unix.Setxattr(p("file"), "user.x", []byte("y"), 0) },
		"removexattr":    func() error { return unix.Removexattr(p("file"), "user.x") },
		"chmod root dir": func() error { return os.Chmod(m.Dir, 0o700) },
	} {
		if err := op(); !errors.Is(err, syscall.EROFS) {
			t.Errorf("%s: %v, want EROFS", name, err)
		}
	}
	// Reading still works, and nothing changed.
	if b, err := os.ReadFile(p("file")); err != nil || len(b) != 10 {
		t.Errorf("read after the attempts: %d bytes, %v", len(b), err)
	}
}

// TestNodesRefuseWrites drives the nodes through go-fuse's request layer without a kernel, so
// that they are seen to answer EROFS themselves, not only because the mount is read-only.
func TestNodesRefuseWrites(t *testing.T) {
	src := t.TempDir()
	writeFiles(t, src, map[string]int{"file": 10})
	key := fstest.NewKey(t)
	im := fstest.OpenImage(t, fstest.Pack(t, src, key), key, image.Options{})
	f, err := encfs.New(t.Context(), im, encfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	raw := fusefs.NewNodeFS(f.Root(), &fusefs.Options{RootStableAttr: f.RootStableAttr()})
	cancel := make(chan struct{})
	root := fuse.InHeader{NodeId: fuse.FUSE_ROOT_ID}
	var entry fuse.EntryOut
	if st := raw.Lookup(cancel, &root, "file", &entry); !st.Ok() {
		t.Fatalf("lookup: %v", st)
	}
	file := fuse.InHeader{NodeId: entry.NodeId}
	if entry.Ino != 2 || entry.Size != 10 {
		t.Errorf("lookup: inode %d size %d, want 2 and 10", entry.Ino, entry.Size)
	}
	var open fuse.OpenOut
	var attr fuse.AttrOut
	for name, st := range map[string]fuse.Status{
		"open O_WRONLY": raw.Open(cancel, &fuse.OpenIn{InHeader: file, Flags: syscall.O_WRONLY}, &open),
		"open O_RDWR":   raw.Open(cancel, &fuse.OpenIn{InHeader: file, Flags: syscall.O_RDWR}, &open),
		"open O_TRUNC":  raw.Open(cancel, &fuse.OpenIn{InHeader: file, Flags: syscall.O_TRUNC}, &open),
		"setattr":       raw.SetAttr(cancel, &fuse.SetAttrIn{SetAttrInCommon: fuse.SetAttrInCommon{InHeader: file, Valid: fuse.FATTR_MODE, Mode: 0o777}}, &attr),
		"create":        raw.Create(cancel, &fuse.CreateIn{InHeader: root, Flags: syscall.O_WRONLY}, "new", &fuse.CreateOut{}),
		"mkdir":         raw.Mkdir(cancel, &fuse.MkdirIn{InHeader: root}, "d", &entry),
		"mknod":         raw.Mknod(cancel, &fuse.MknodIn{InHeader: root, Mode: syscall.S_IFIFO}, "p", &entry),
		"symlink":       raw.Symlink(cancel, &root, "file", "l", &entry),
		"link":          raw.Link(cancel, &fuse.LinkIn{InHeader: root, Oldnodeid: file.NodeId}, "h", &entry),
		"unlink":        raw.Unlink(cancel, &root, "file"),
		"rmdir":         raw.Rmdir(cancel, &root, "file"),
		"rename":        raw.Rename(cancel, &fuse.RenameIn{InHeader: root, Newdir: fuse.FUSE_ROOT_ID}, "file", "other"),
		"setxattr":      raw.SetXAttr(cancel, &fuse.SetXAttrIn{InHeader: file}, "user.x", []byte("y")),
		"removexattr":   raw.RemoveXAttr(cancel, &file, "user.x"),
	} {
		if st != fuse.EROFS {
			t.Errorf("%s: %v, want EROFS", name, st)
		}
	}
	// Opening for reading answers ENOSYS, which tells the kernel to open files by itself from
	// then on (file.go); flushes too. TestOpensAndClosesStayInTheKernel checks what the kernel
	// makes of it.
	if st := raw.Open(cancel, &fuse.OpenIn{InHeader: file, Flags: syscall.O_RDONLY}, &open); st != fuse.ENOSYS {
		t.Errorf("open for reading: %v, want ENOSYS", st)
	}
	if st := raw.Flush(cancel, &fuse.FlushIn{InHeader: file}); st != fuse.ENOSYS {
		t.Errorf("flush: %v, want ENOSYS", st)
	}
}

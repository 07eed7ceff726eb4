package fs

import (
	"context"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/encfs/encfs/image"
)

var (
	_ fusefs.NodeLookuper       = (*node)(nil)
	_ fusefs.NodeOpendirHandler = (*node)(nil)
)

// dirEntries returns the directory's entries, reading them from the index the first time.
// The lock is held across that one read on purpose: concurrent first lookups in a large
// directory then share a single load instead of each decoding the whole list.
func (n *node) dirEntries(ctx context.Context) ([]image.DirEntry, syscall.Errno) {
	if !n.in.IsDir() {
		return nil, syscall.ENOTDIR
	}
	n.dirMu.Lock()
	defer n.dirMu.Unlock()
	if !n.loaded {
		entries, err := n.fsys.im.ReadDir(ctx, &n.in)
		if err != nil {
			return nil, n.fsys.ioError(ctx, "readdir", n, 0, 0, err)
		}
		n.entries, n.loaded = entries, true
	}
	return n.entries, 0
}

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	ctx, cancel := n.fsys.requestContext(ctx)
	defer cancel()
	entries, errno := n.dirEntries(ctx)
	if errno != 0 {
		return nil, errno
	}
	e, ok := image.Lookup(entries, name)
	if !ok {
		out.SetEntryTimeout(Timeout) // names never appear in an immutable image
		return nil, syscall.ENOENT
	}
	in, err := n.fsys.im.EntryInode(ctx, e)
	if err != nil {
		return nil, n.fsys.ioError(ctx, "lookup", n, 0, 0, err)
	}
	child := n.fsys.newNode(in)
	child.fillAttr(&out.Attr)
	out.SetEntryTimeout(Timeout)
	out.SetAttrTimeout(Timeout)
	// A hard link's second name finds the node already registered under the same StableAttr;
	// go-fuse then returns that one and drops child.
	return n.NewInode(ctx, child, fusefs.StableAttr{Mode: in.Mode & modeType, Ino: fuseIno(in.Ino)}), 0
}

// OpendirHandle lists the directory. The listing never changes, so the kernel may cache it
// (FOPEN_CACHE_DIR) and keep that cache across opens.
func (n *node) OpendirHandle(ctx context.Context, _ uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	ctx, cancel := n.fsys.requestContext(ctx)
	defer cancel()
	entries, errno := n.dirEntries(ctx)
	if errno != 0 {
		return nil, 0, errno
	}
	parent := n.EmbeddedInode()
	if _, p := n.Parent(); p != nil {
		parent = p
	}
	return &dirHandle{self: n.StableAttr().Ino, parent: parent.StableAttr().Ino, entries: entries},
		fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE, 0
}

// dirHandle lists "." and "..", then a loaded entry slice without copying it. The offset of
// an entry is its position plus one, so the kernel can seek back into a large listing.
// go-fuse serialises the calls on one handle.
type dirHandle struct {
	self, parent uint64
	entries      []image.DirEntry
	pos          int
}

var (
	_ fusefs.FileReaddirenter = (*dirHandle)(nil)
	_ fusefs.FileSeekdirer    = (*dirHandle)(nil)
	_ fusefs.FileReleasedirer = (*dirHandle)(nil)
)

func (d *dirHandle) Readdirent(context.Context) (*fuse.DirEntry, syscall.Errno) {
	var de fuse.DirEntry
	switch i := d.pos - 2; {
	case d.pos == 0:
		de = fuse.DirEntry{Name: ".", Mode: syscall.S_IFDIR, Ino: d.self}
	case d.pos == 1:
		de = fuse.DirEntry{Name: "..", Mode: syscall.S_IFDIR, Ino: d.parent}
	case i < len(d.entries):
		e := &d.entries[i]
		de = fuse.DirEntry{Name: e.Name, Mode: uint32(e.Type) << 12, Ino: fuseIno(e.Ino)}
	default:
		return nil, 0
	}
	d.pos++
	de.Off = uint64(d.pos)
	return &de, 0
}

func (d *dirHandle) Seekdir(_ context.Context, off uint64) syscall.Errno {
	if off > uint64(len(d.entries)+2) {
		return syscall.EINVAL
	}
	d.pos = int(off)
	return 0
}

func (d *dirHandle) Releasedir(context.Context, uint32) {}

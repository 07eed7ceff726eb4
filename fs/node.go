package fs

import (
	"context"
	"sync"
	"sync/atomic"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/encfs/encfs/image"
)

const modeType = syscall.S_IFMT

// blockSize is st_blksize: the preferred I/O size. Programs that size their buffers by it
// (cp, cat) then ask for whole FUSE requests instead of 4 KiB at a time.
const blockSize = 1 << 20

// node is one inode of the image: a directory, regular file or symlink. Its record is decoded
// once, when it is looked up, and never changes. Directories also hold their entry list once
// something needed it (see dir.go).
type node struct {
	fusefs.Inode
	fsys *FS
	in   image.Inode
	read atomic.Bool               // read at least once (see firstRead)
	ra   atomic.Pointer[readahead] // sequential-read detection of a file larger than Options.SmallFile

	dirMu   sync.Mutex // serialises the first load of entries, so one load serves all waiters
	entries []image.DirEntry
	loaded  bool
}

func (f *FS) newNode(in image.Inode) *node { return &node{fsys: f, in: in} }

var (
	_ fusefs.NodeGetattrer  = (*node)(nil)
	_ fusefs.NodeStatfser   = (*node)(nil)
	_ fusefs.NodeReadlinker = (*node)(nil)
)

// fillAttr writes the inode's attributes, with the owner override applied.
func (n *node) fillAttr(out *fuse.Attr) {
	in := &n.in
	out.Ino = fuseIno(in.Ino)
	out.Mode = in.Mode
	out.Nlink = in.Nlink
	out.Size = in.Size
	out.Blocks = (in.Size + 511) / 512
	out.Blksize = blockSize
	out.Uid, out.Gid = in.UID, in.GID
	if o := n.fsys.opts.UID; o != nil {
		out.Uid = *o
	}
	if o := n.fsys.opts.GID; o != nil {
		out.Gid = *o
	}
	// The image stores one time; access and change times repeat it, as a read-only copy should.
	sec, nsec := uint64(in.MtimeSec), in.MtimeNsec
	out.Mtime, out.Mtimensec = sec, nsec
	out.Atime, out.Atimensec = sec, nsec
	out.Ctime, out.Ctimensec = sec, nsec
}

func (n *node) Getattr(_ context.Context, _ fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.fillAttr(&out.Attr)
	out.SetTimeout(Timeout)
	return 0
}

// Statfs reports a full filesystem: the image has no free space and no free inodes.
func (n *node) Statfs(_ context.Context, out *fuse.StatfsOut) syscall.Errno {
	im := n.fsys.im
	out.Bsize = image.BlockSize
	out.Frsize = image.BlockSize
	out.Blocks = im.ContentBytes() / image.BlockSize
	out.Files = im.Superblock().InodeCount
	out.NameLen = image.MaxNameLen
	return 0
}

func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	if !n.in.IsSymlink() {
		return nil, syscall.EINVAL
	}
	ctx, cancel := n.fsys.requestContext(ctx)
	defer cancel()
	target, err := n.fsys.im.Readlink(ctx, &n.in)
	if err != nil {
		return nil, n.fsys.ioError(ctx, "readlink", n, 0, 0, err)
	}
	return []byte(target), 0
}

// path names the node for logs: its path inside the image, from the last known parent chain.
func (n *node) path() string { return "/" + n.Path(nil) }

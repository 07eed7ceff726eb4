package fs

import (
	"context"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Everything that would change the tree fails with EROFS. The mount is read-only too, so the
// kernel normally refuses these before they arrive; answering here as well keeps the
// filesystem read-only however it is mounted, and gives EROFS rather than go-fuse's default
// ENOTSUP.

var (
	_ fusefs.NodeSetattrer     = (*node)(nil)
	_ fusefs.NodeWriter        = (*node)(nil)
	_ fusefs.NodeCreater       = (*node)(nil)
	_ fusefs.NodeMkdirer       = (*node)(nil)
	_ fusefs.NodeMknoder       = (*node)(nil)
	_ fusefs.NodeLinker        = (*node)(nil)
	_ fusefs.NodeSymlinker     = (*node)(nil)
	_ fusefs.NodeUnlinker      = (*node)(nil)
	_ fusefs.NodeRmdirer       = (*node)(nil)
	_ fusefs.NodeRenamer       = (*node)(nil)
	_ fusefs.NodeSetxattrer    = (*node)(nil)
	_ fusefs.NodeRemovexattrer = (*node)(nil)
	_ fusefs.NodeAllocater     = (*node)(nil)
	_ fusefs.NodeTmpfiler      = (*node)(nil)
)

func (n *node) Setattr(context.Context, fusefs.FileHandle, *fuse.SetAttrIn, *fuse.AttrOut) syscall.Errno {
	return syscall.EROFS
}

func (n *node) Write(context.Context, fusefs.FileHandle, []byte, int64) (uint32, syscall.Errno) {
	return 0, syscall.EROFS
}

func (n *node) Create(context.Context, string, uint32, uint32, *fuse.EntryOut) (*fusefs.Inode, fusefs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EROFS
}

func (n *node) Tmpfile(context.Context, uint32, uint32, *fuse.EntryOut) (*fusefs.Inode, fusefs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EROFS
}

func (n *node) Mkdir(context.Context, string, uint32, *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}

func (n *node) Mknod(context.Context, string, uint32, uint32, *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}

func (n *node) Link(context.Context, fusefs.InodeEmbedder, string, *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}

func (n *node) Symlink(context.Context, string, string, *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}

func (n *node) Unlink(context.Context, string) syscall.Errno { return syscall.EROFS }

func (n *node) Rmdir(context.Context, string) syscall.Errno { return syscall.EROFS }

func (n *node) Rename(context.Context, string, fusefs.InodeEmbedder, string, uint32) syscall.Errno {
	return syscall.EROFS
}

func (n *node) Setxattr(context.Context, string, []byte, uint32) syscall.Errno {
	return syscall.EROFS
}

func (n *node) Removexattr(context.Context, string) syscall.Errno { return syscall.EROFS }

func (n *node) Allocate(context.Context, fusefs.FileHandle, uint64, uint64, uint32) syscall.Errno {
	return syscall.EROFS
}

package fs

import (
	"context"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
)

var (
	_ fusefs.NodeGetxattrer  = (*node)(nil)
	_ fusefs.NodeListxattrer = (*node)(nil)
)

// Getxattr returns one stored attribute. With an empty dest it returns the size, as
// getxattr(2) callers use to size their buffer.
func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if n.in.XattrLen == 0 { // most inodes: answer without touching the index
		return 0, syscall.ENODATA
	}
	ctx, cancel := n.fsys.requestContext(ctx)
	defer cancel()
	xs, err := n.fsys.im.Xattrs(ctx, &n.in)
	if err != nil {
		return 0, n.fsys.ioError(ctx, "getxattr", n, 0, 0, err)
	}
	for _, x := range xs {
		if x.Name != attr {
			continue
		}
		if len(dest) == 0 {
			return uint32(len(x.Value)), 0
		}
		if len(dest) < len(x.Value) {
			return uint32(len(x.Value)), syscall.ERANGE
		}
		return uint32(copy(dest, x.Value)), 0
	}
	return 0, syscall.ENODATA
}

// Listxattr returns the attribute names, each followed by a NUL.
func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	if n.in.XattrLen == 0 {
		return 0, 0
	}
	ctx, cancel := n.fsys.requestContext(ctx)
	defer cancel()
	xs, err := n.fsys.im.Xattrs(ctx, &n.in)
	if err != nil {
		return 0, n.fsys.ioError(ctx, "listxattr", n, 0, 0, err)
	}
	size := 0
	for _, x := range xs {
		size += len(x.Name) + 1
	}
	if len(dest) == 0 {
		return uint32(size), 0
	}
	if len(dest) < size {
		return uint32(size), syscall.ERANGE
	}
	dest = dest[:0]
	for _, x := range xs {
		dest = append(append(dest, x.Name...), 0)
	}
	return uint32(size), 0
}

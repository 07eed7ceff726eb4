package fs

import (
	"context"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

var _ fusefs.NodeOpener = (*node)(nil)

// Open opens a regular file for reading. Write access is refused here as well as by the
// read-only mount, so that the filesystem stays read-only however it is mounted (without
// "ro" and default_permissions, root could open a 0444 file for writing).
func (n *node) Open(_ context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&syscall.O_TRUNC != 0 {
		return nil, 0, syscall.EROFS
	}
	if !n.in.IsRegular() {
		return nil, 0, syscall.EINVAL
	}
	n.fsys.openFiles.Add(1)
	window := n.fsys.opts.MaxPrefetch
	if small := n.fsys.opts.SmallFile; small > 0 && n.in.Size <= uint64(small) {
		// A small file is fetched whole now, exactly, and nothing is left to read ahead. Only
		// at its first open: later ones find it in the kernel's page cache or in the source's
		// caches, and a read of what they lost fetches just that.
		if n.fetched.CompareAndSwap(false, true) {
			n.fsys.im.FetchFile(&n.in)
		}
		window = -1
	}
	// The content can never change, so whatever the kernel cached on an earlier open is valid.
	return &handle{node: n, ra: newReadahead(window)}, fuse.FOPEN_KEEP_CACHE, 0
}

// handle is one open file: the node plus that opener's readahead state.
type handle struct {
	node *node
	ra   readahead
}

var (
	_ fusefs.FileReader   = (*handle)(nil)
	_ fusefs.FileReleaser = (*handle)(nil)
)

// Read fills dest, the request buffer go-fuse took from its pool, directly from the verifying
// reader: whole blocks are decrypted in place there, so the hot path neither allocates nor
// copies. A read at or past the end returns no bytes.
func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n, fsys := h.node, h.node.fsys
	size := int64(n.in.Size)
	if off >= size || len(dest) == 0 {
		return fuse.ReadResultData(nil), 0
	}
	if fsys.opts.FirstRead != nil && n.read.CompareAndSwap(false, true) {
		fsys.opts.FirstRead(n.in.Ino)
	}
	if pfOff, pfLen := h.ra.advise(off, int64(len(dest)), size); pfLen > 0 {
		fsys.im.PrefetchFile(&n.in, uint64(pfOff), uint64(pfLen))
		fsys.prefetched.Add(uint64(pfLen))
	}
	ctx, cancel := fsys.requestContext(ctx)
	defer cancel()
	// The image's index decides where the file ends: any error is a failed read (EIO), never
	// a short one, which the kernel would take for the file's new size.
	got, err := fsys.im.ReadFile(ctx, &n.in, dest, off)
	if err != nil {
		return nil, fsys.ioError(ctx, "read", n, off, len(dest), err)
	}
	fsys.reads.Add(1)
	fsys.bytesRead.Add(uint64(got))
	return fuse.ReadResultData(dest[:got]), 0
}

func (h *handle) Release(context.Context) syscall.Errno {
	h.node.fsys.openFiles.Add(-1)
	return 0
}

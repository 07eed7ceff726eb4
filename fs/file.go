package fs

import (
	"context"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Files are read without being opened. A training epoch opens, reads and closes every file of
// a dataset once: five requests per file (LOOKUP, OPEN, READ, FLUSH, RELEASE), each a round
// trip between the reader and this daemon. The content never changes and nothing is kept per
// open, so OPEN and FLUSH answer ENOSYS: the kernel then stops sending OPEN, RELEASE and FLUSH
// for the rest of the mount (FUSE_NO_OPEN_SUPPORT, which go-fuse announces), opens files by
// itself with FOPEN_KEEP_CACHE, and sends each READ to the node. What was per open before (the
// sequential-read detection) is per file now.

var (
	_ fusefs.NodeOpener  = (*node)(nil)
	_ fusefs.NodeReader  = (*node)(nil)
	_ fusefs.NodeFlusher = (*node)(nil)
)

// Open refuses write access, as the read-only mount does before it (without "ro" and
// default_permissions, root could open a 0444 file for writing), and answers every read-only
// open with ENOSYS, which tells the kernel to stop sending OPEN at all.
func (n *node) Open(_ context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&syscall.O_TRUNC != 0 {
		return nil, 0, syscall.EROFS
	}
	if !n.in.IsRegular() {
		return nil, 0, syscall.EINVAL
	}
	return nil, 0, syscall.ENOSYS
}

// Flush (sent at every close) has nothing to do on a read-only file; ENOSYS stops the kernel
// from sending it.
func (n *node) Flush(context.Context, fusefs.FileHandle) syscall.Errno { return syscall.ENOSYS }

// Read fills dest, the request buffer go-fuse took from its pool, directly from the verifying
// reader: whole blocks are decrypted in place there, so the hot path neither allocates nor
// copies. A read at or past the end returns no bytes.
func (n *node) Read(ctx context.Context, _ fusefs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	fsys := n.fsys
	size := int64(n.in.Size)
	if off >= size || len(dest) == 0 {
		return fuse.ReadResultData(nil), 0
	}
	if n.read.CompareAndSwap(false, true) {
		n.firstRead()
	}
	if ra := n.ra.Load(); ra != nil {
		if pfOff, pfLen := ra.advise(off, int64(len(dest)), size); pfLen > 0 {
			fsys.im.PrefetchFile(&n.in, uint64(pfOff), uint64(pfLen))
			fsys.prefetched.Add(uint64(pfLen))
		}
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

// firstRead runs once per file, before its first read is served. A small file is fetched
// whole, exactly, and nothing is left to read ahead: later reads find it in the kernel's page
// cache or in the source's caches, and a read of what they lost fetches just that. A larger
// file gets its sequential-read detection.
func (n *node) firstRead() {
	fsys := n.fsys
	fsys.filesRead.Add(1)
	if fsys.opts.FirstRead != nil {
		fsys.opts.FirstRead(n.in.Ino)
	}
	if small := fsys.opts.SmallFile; small > 0 && n.in.Size <= uint64(small) {
		fsys.im.FetchFile(&n.in)
		return
	}
	n.ra.CompareAndSwap(nil, newReadahead(fsys.opts.MaxPrefetch))
}

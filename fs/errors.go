package fs

import (
	"context"
	"errors"
	"sync"
	"syscall"

	"github.com/encfs/encfs/image"
)

// ioError turns a failure of the image layer into the errno a reader sees, counts it and logs
// it. Integrity failures are logged once per bad block (the kernel retries a failed readahead
// page by page, and readers retry too). A line names the image inode and the content or tree
// block, never the path, file offset or read length (logs leave the TEE; names and sizes are
// what the image encrypts), unless the mount was started with --log-paths.
func (f *FS) ioError(ctx context.Context, op string, n *node, off int64, length int, err error) syscall.Errno {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) {
		return syscall.EINTR // the reader was interrupted; nothing is wrong with the image
	}
	f.readErrors.Add(1)
	attrs := []any{"op", op, "inode", n.in.Ino}
	if f.opts.LogPaths {
		attrs = append(attrs, "path", n.path(), "offset", off, "length", length)
	}
	var ie *image.IntegrityError
	if !errors.As(err, &ie) {
		f.log.Warn("read failed", append(attrs, "err", err)...)
		return syscall.EIO
	}
	f.integrityErrors.Add(1)
	if !f.reported.first(ie.Region, ie.Block) {
		return syscall.EIO
	}
	attrs = append(attrs, "region", string(ie.Region), "block", ie.Block)
	if f.opts.LogPaths && ie.Region == image.RegionContent && n.in.IsRegular() {
		// Where in the file the bad block starts (0 if the file starts inside it).
		blockStart := ie.Block * image.BlockSize
		attrs = append(attrs, "file_offset", max(blockStart, n.in.DataOffset)-n.in.DataOffset)
	}
	f.log.Error("integrity check failed: refusing to return unverified data", append(attrs, "err", err)...)
	return syscall.EIO
}

// reportOnce remembers which bad blocks have been logged. It stops remembering (and so logs
// every failure) past a bound, so a wholly corrupted image cannot grow it without limit.
type reportOnce struct {
	mu   sync.Mutex
	seen map[reportKey]struct{}
}

type reportKey struct {
	region image.Region
	block  uint64
}

const maxReported = 4096

func (r *reportOnce) first(region image.Region, block uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := reportKey{region, block}
	if _, ok := r.seen[k]; ok {
		return false
	}
	if r.seen == nil {
		r.seen = make(map[reportKey]struct{})
	}
	if len(r.seen) < maxReported {
		r.seen[k] = struct{}{}
	}
	return true
}

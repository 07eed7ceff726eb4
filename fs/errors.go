package fs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/encfs/encfs/image"
)

// ioError turns a failure of the image layer into the errno a reader sees, counts it and logs
// it. Integrity failures are logged once per bad block (the kernel retries a failed readahead
// page by page, and readers retry too). A line names the image inode and the content or tree
// block, never the path, file offset or read length (logs leave the TEE; names and sizes are
// what the image encrypts), unless the mount was started with --log-paths.
func (f *FS) ioError(ctx context.Context, op string, n *node, off int64, length int, err error) syscall.Errno {
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errRequestTimeout):
		err = fmt.Errorf("%w (%s): %w", errRequestTimeout, f.opts.RequestTimeout, err)
	case cause != nil || errors.Is(err, context.Canceled):
		return syscall.EINTR // the reader was interrupted; nothing is wrong with the image
	}
	f.readErrors.Add(1)
	attrs := []any{"op", op, "inode", n.in.Ino}
	if f.opts.LogPaths {
		attrs = append(attrs, "path", n.path(), "offset", off, "length", length)
	}
	var ie *image.IntegrityError
	if !errors.As(err, &ie) {
		if log, skipped := f.ioLog.allow(); log {
			f.log.Warn("read failed", append(attrs, "not_logged_before", skipped, "err", err)...)
		}
		return syscall.EIO
	}
	f.integrityErrors.Add(1)
	if !f.reported.first(ie.Region, ie.Block) {
		return syscall.EIO
	}
	attrs = append(attrs, "region", string(ie.Region), "block", ie.Block)
	if f.opts.LogPaths && ie.Region == image.RegionContent && n.in.IsRegular() {
		// Where in the file the bad unit starts (0 if the file starts inside it); ie.Block is
		// the unit's first block.
		blockStart := ie.Block * image.BlockSize
		attrs = append(attrs, "file_offset", max(blockStart, n.in.DataOffset)-n.in.DataOffset)
	}
	f.log.Error("integrity check failed: refusing to return unverified data", append(attrs, "err", err)...)
	return syscall.EIO
}

// errRequestTimeout is the cause of a request's context whose RequestTimeout ran out: the
// storage did not deliver in time, which is an I/O error, not an interruption.
var errRequestTimeout = errors.New("the storage did not answer within the request timeout")

// requestContext bounds one FUSE request by RequestTimeout. The deadline travels with the
// request through the image layer, the wait for a fetch worker, the fetch and its retries.
func (f *FS) requestContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if f.opts.RequestTimeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeoutCause(ctx, f.opts.RequestTimeout, errRequestTimeout)
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

// logLimiter lets one I/O failure line through per second and counts the others. In a storage
// outage every read fails; a line per read would flood the log and say nothing new (the
// source logs each change of its state once).
type logLimiter struct {
	mu      sync.Mutex
	last    time.Time
	skipped int
}

// allow reports whether to log now, and how many lines were held back since the last one.
func (l *logLimiter) allow() (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now := time.Now(); now.Sub(l.last) >= time.Second {
		skipped := l.skipped
		l.last, l.skipped = now, 0
		return true, skipped
	}
	l.skipped++
	return false, 0
}

package fs

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"

	"github.com/encfs/encfs/image"
)

// DefaultSmallFile is the default of Options.SmallFile: half of a remote source's 8 MiB chunk,
// below which a read is served by exact range fetches rather than whole chunks anyway.
const DefaultSmallFile = 4 << 20

// Timeout is how long the kernel may cache entries, negative lookups and attributes. The image
// is immutable for the life of the mount, so anything long is correct; a year is effectively
// forever without risking overflow in the kernel's jiffies arithmetic.
const Timeout = 365 * 24 * time.Hour

// Options configure a filesystem. The zero value serves the image as it is.
type Options struct {
	// UID and GID, if set, replace the owner of every file (for consumers running as another
	// user than the one who packed the tree).
	UID, GID *uint32
	// MaxPrefetch bounds how far ahead of a sequential reader the image is asked to prefetch
	// (default DefaultMaxPrefetch). Keep it well below the source's chunk cache, or prefetched
	// chunks are evicted before they are read. Negative disables prefetching.
	MaxPrefetch int64
	// SmallFile is the size up to which opening a file fetches its whole extent at once, in
	// one exact range (default DefaultSmallFile; negative: never). A data loader reads such
	// files whole, and one request for the file beats several for its pieces. Sequential
	// readahead is off for these files: there is nothing left to read ahead.
	SmallFile int64
	// FirstRead, if set, is called with the image inode number of each regular file the first
	// time it is read through this filesystem (an access profile records them, in order).
	FirstRead func(ino uint64)
	// Log receives integrity failures and I/O errors; default slog.Default(). They name the
	// image inode and content block only: logs leave the TEE, and paths, file offsets and
	// sizes are part of what the image encrypts.
	Log *slog.Logger
	// RequestTimeout bounds how long one request (a read, a lookup, a listing) may wait for
	// the image's storage, every wait and retry included; past it the request fails with EIO.
	// Zero leaves only the source's own bound.
	RequestTimeout time.Duration
	// LogPaths adds the path inside the image and the file offset to those log lines, for
	// debugging with images whose names are not secret (encfs mount --log-paths).
	LogPaths bool
}

// FS is one image served as a filesystem. Its root node is Root(); everything else is created
// by lookups. It is safe for concurrent use.
type FS struct {
	im   *image.Image
	opts Options
	log  *slog.Logger
	root *node

	reported reportOnce // integrity failures already logged
	ioLog    logLimiter // other I/O failures: at most a line a second

	bytesRead, reads, readErrors, integrityErrors, prefetched, filesRead atomic.Uint64
}

// Stats are the filesystem's counters, for metrics. The image and the source keep their own.
type Stats struct {
	BytesRead       uint64 // bytes returned to readers
	Reads           uint64 // read requests served
	ReadErrors      uint64 // requests (reads, lookups, listings) that failed with an I/O error
	IntegrityErrors uint64 // of those, the ones refused because a block failed verification
	PrefetchBytes   uint64 // bytes hinted ahead of sequential readers
	FilesRead       uint64 // files read at least once since the mount
}

// New reads the image's root directory and returns the filesystem.
func New(ctx context.Context, im *image.Image, opts Options) (*FS, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.MaxPrefetch == 0 {
		opts.MaxPrefetch = DefaultMaxPrefetch
	}
	if opts.SmallFile == 0 {
		opts.SmallFile = DefaultSmallFile
	}
	root, err := im.Inode(ctx, image.RootIno)
	if err != nil {
		return nil, fmt.Errorf("read root directory: %w", err)
	}
	f := &FS{im: im, opts: opts, log: opts.Log}
	f.root = f.newNode(root)
	return f, nil
}

// Root is the root directory node, for fusefs.Mount. Mount it with RootStableAttr() so that
// its inode number follows the same rule as every other node.
func (f *FS) Root() fusefs.InodeEmbedder { return f.root }

// RootStableAttr is the root's identity: image inode 0 is FUSE inode 1.
func (f *FS) RootStableAttr() *fusefs.StableAttr {
	return &fusefs.StableAttr{Mode: f.root.in.Mode & modeType, Ino: fuseIno(image.RootIno)}
}

// Image is the image being served.
func (f *FS) Image() *image.Image { return f.im }

// Stats returns a snapshot of the counters.
func (f *FS) Stats() Stats {
	return Stats{BytesRead: f.bytesRead.Load(), Reads: f.reads.Load(), ReadErrors: f.readErrors.Load(),
		IntegrityErrors: f.integrityErrors.Load(), PrefetchBytes: f.prefetched.Load(), FilesRead: f.filesRead.Load()}
}

// fuseIno maps an image inode number to the FUSE one: FUSE reserves 0, and the root must be 1.
func fuseIno(ino uint64) uint64 { return ino + 1 }

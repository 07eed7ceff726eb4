// Package volume implements encfs read-write volumes: an authenticated, encrypted block device
// kept in a Store (a local file or an Azure page blob). docs/VOLUME.md specifies the format.
package volume

import "context"

// PageSize is the unit of every Store offset and length: an Azure page blob page.
const PageSize = 512

// MaxWrite is the largest single WriteAt a Store must accept (Azure's Put Page limit).
// Callers split larger writes.
const MaxWrite = 4 << 20

// Store holds a volume's bytes. Offsets and lengths are multiples of PageSize.
//
// Implementations: FileStore in this package (a local file, exclusive through flock) and the
// page blob store in blobio/azure (exclusive through a blob lease). A Store satisfies this
// interface structurally, so backends do not import this package.
type Store interface {
	// ReadAt fills p from off. A short read is an error, never a partial success.
	ReadAt(ctx context.Context, p []byte, off int64) error
	// WriteAt writes p at off; len(p) <= MaxWrite. The write is not durable before Flush.
	WriteAt(ctx context.Context, p []byte, off int64) error
	// Flush returns once every WriteAt that completed before the call is durable. It is the
	// only ordering barrier: writes between two flushes may reach storage in any order.
	Flush(ctx context.Context) error
	// Size is the store's current size in bytes.
	Size() int64
	// Resize grows (or shrinks) the store to size bytes; new bytes read as zero.
	Resize(ctx context.Context, size int64) error
	// Close releases the exclusive-writer lock (flock or lease) and any connection.
	Close() error
	// String names the store for messages, with no secret (no SAS signature).
	String() string
}

package blockdev

import "context"

// Device is a fixed-size, byte-addressed block device: an encfs volume, or a plain file for
// measuring the stack without cryptography.
type Device interface {
	// ReadAt fills p from off. A short read is an error; an integrity failure is an error
	// that blockdev answers with EIO.
	ReadAt(ctx context.Context, p []byte, off int64) error
	// WriteAt writes p at off. Offsets and lengths need not be block aligned.
	WriteAt(ctx context.Context, p []byte, off int64) error
	// Flush returns once every write that completed before the call is durable: the commit
	// point the loop device reaches when the filesystem commits its journal (FUSE fsync and
	// flush).
	Flush(ctx context.Context) error
	// Size is the device size in bytes, a multiple of 4096.
	Size() int64
}

package image

import "context"

// Source is where an image's bytes come from, with every capability the reader uses spelled
// out as a method. A wrapper around a Source must forward all of them or fail to compile: none
// can be lost on the way (a lost Invalidate would silently stop a bad cached chunk from being
// fetched again). A source that has none of the capabilities (a local file) becomes a Source
// through Plain.
type Source interface {
	ByteSource
	// ChunkSize is the size of the aligned chunks the source fetches and caches, or 0 when it
	// reads any range as asked. The reader splits reads at chunk boundaries so that each piece
	// can be verified in one View.
	ChunkSize() int64
	// View lends the source's own private, immutable copy of [off, off+n), which lies inside
	// one chunk: blocks are verified there and decrypted straight into the caller's buffer,
	// one copy fewer than reading them first. ok is false when the source cannot lend this
	// range (read it with ReadAt then); when ok, release must be called once the view is no
	// longer used.
	View(ctx context.Context, off int64, n int) (view []byte, release func(), ok bool, err error)
	// Invalidate drops any copy of [off, off+length) the source keeps, because it failed
	// verification, and reports whether reading the range again may return other bytes (a
	// source that keeps no copy reports false, and the reader does not try again).
	Invalidate(off, length int64) bool
	// Prefetch hints that [off, off+length) will be read soon by a sequential reader; a source
	// that cannot fetch ahead ignores it. It never blocks.
	Prefetch(off, length int64)
	// PrefetchRange asks for exactly [off, off+length) now, aligned to the verification unit
	// by the caller: a range known to be wanted whole (a small file being opened, the next
	// file of an access profile), not the start of a stream. A source that cannot fetch ahead
	// ignores it. It never blocks.
	PrefetchRange(off, length int64)
}

// ByteSource is a read-only, immutable byte range with no capability beyond reading it.
//
// ReadAt follows io.ReaderAt: it returns len(p) bytes or an error, and io.EOF only when the
// range runs past Size. Implementations are safe for concurrent use, and their errors name
// the source without any secret in it.
type ByteSource interface {
	ReadAt(ctx context.Context, p []byte, off int64) (int, error)
	// Size is the length of the image in bytes, fixed when the source was opened.
	Size() int64
	// String names the source for logs and errors, with any secret removed.
	String() string
	Close() error
}

// Plain makes a Source of a ByteSource that reads every range directly: no chunks, no views,
// no cached copies to invalidate, no prefetch. Use it for a local file; it hides any other
// capability s may have, so pass a source that has them (a chunked fetch layer) as it is.
func Plain(s ByteSource) Source { return plainSource{s} }

type plainSource struct{ ByteSource }

func (plainSource) ChunkSize() int64 { return 0 }

func (plainSource) View(context.Context, int64, int) ([]byte, func(), bool, error) {
	return nil, nil, false, nil
}

func (plainSource) Invalidate(int64, int64) bool { return false }
func (plainSource) Prefetch(int64, int64)        {}
func (plainSource) PrefetchRange(int64, int64)   {}

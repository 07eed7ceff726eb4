package image

import (
	"context"
	"fmt"
	"os"
)

// rekeyBatch is how many content bytes Rekey moves at a time: 4 MiB.
const rekeyBatch = 4 << 20

// Rekey writes into f (empty, seekable) a new image with the same plaintext content and index
// as im under a fresh master key and salt: every block is read, verified, decrypted and
// encrypted again, so no key of the old image opens the new one, and the source directory is
// not needed. opts name the new keyslots, series, generation and signer like NewWriter's;
// callers normally keep the series and raise the generation (see docs/OPERATIONS.md,
// "Revocation"). It returns the new header.
func Rekey(ctx context.Context, im *Image, f *os.File, opts WriterOptions) (*Header, error) {
	h := im.Header()
	// encfs pack writes the superblock last, then pads to a whole unit: Finish does the same
	// below, so the new image has the same layout.
	if ceilDiv(h.IndexBlock+1, BlocksPerUnit)*BlocksPerUnit != h.ContentBlocks {
		return nil, formatErr(ErrCorrupt, "the index superblock is block %d of %d, not in the last unit: this image was not written by encfs pack", h.IndexBlock, h.ContentBlocks)
	}
	w, err := NewWriter(f, opts)
	if err != nil {
		return nil, err
	}
	defer w.Abort()
	buf := make([]byte, rekeyBatch)
	for off, end := uint64(0), h.IndexBlock*BlockSize; off < end; off += rekeyBatch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n := min(rekeyBatch, end-off)
		if err := im.readContent(ctx, buf[:n], off, cachePolicy{hi: end}); err != nil {
			return nil, fmt.Errorf("read the image to rekey: %w", err)
		}
		if _, err := w.Write(buf[:n]); err != nil {
			return nil, err
		}
	}
	clear(buf)
	sb := *im.Superblock()
	return w.Finish(&sb)
}

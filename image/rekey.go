package image

import (
	"context"
	"fmt"
	"os"
)

// rekeyBatch is how many content blocks Rekey moves at a time: 4 MiB.
const rekeyBatch = 1024

// Rekey writes into f (empty, seekable) a new image with the same plaintext content and index
// as im under a fresh master key and salt: every block is read, verified, decrypted and
// encrypted again, so no key of the old image opens the new one, and the source directory is
// not needed. opts name the new keyslots, series, generation and signer like NewWriter's;
// callers normally keep the series and raise the generation (see docs/OPERATIONS.md,
// "Revocation"). It returns the new header.
func Rekey(ctx context.Context, im *Image, f *os.File, opts WriterOptions) (*Header, error) {
	h := im.Header()
	if h.IndexBlock != h.ContentBlocks-1 {
		return nil, formatErr(ErrCorrupt, "the index superblock is block %d of %d, not the last one: this image was not written by encfs pack", h.IndexBlock, h.ContentBlocks)
	}
	w, err := NewWriter(f, opts)
	if err != nil {
		return nil, err
	}
	defer w.Abort()
	buf := make([]byte, rekeyBatch*BlockSize)
	for b := uint64(0); b < h.IndexBlock; b += rekeyBatch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n := min(rekeyBatch, h.IndexBlock-b)
		if err := im.readBlocks(ctx, buf[:n*BlockSize], b); err != nil {
			return nil, fmt.Errorf("read the image to rekey: %w", err)
		}
		if _, err := w.Write(buf[:n*BlockSize]); err != nil {
			return nil, err
		}
	}
	clear(buf)
	sb := *im.Superblock()
	return w.Finish(&sb)
}

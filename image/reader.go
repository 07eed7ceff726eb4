package image

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
)

// Options tune a reader. The zero value is usable.
type Options struct {
	// CacheBytes bounds the cache of verified plaintext blocks (index blocks and the partial
	// blocks at the edges of reads). Default 64 MiB.
	CacheBytes int64
	// TreeCacheBytes bounds the cache of verified integrity-tree blocks. Each 4 KiB of level 0
	// covers 1 MiB of content. Default 16 MiB.
	TreeCacheBytes int64
	// Workers is how many goroutines verify and decrypt one large read. Default GOMAXPROCS.
	Workers int
}

func (o Options) withDefaults() Options {
	if o.CacheBytes <= 0 {
		o.CacheBytes = 64 << 20
	}
	if o.TreeCacheBytes <= 0 {
		o.TreeCacheBytes = 16 << 20
	}
	return o
}

// MemoryBound is the most memory the reader's caches hold with these options.
func (o Options) MemoryBound() int64 {
	o = o.withDefaults()
	return o.CacheBytes + o.TreeCacheBytes
}

// Stats are the reader's counters, for metrics.
type Stats struct {
	CacheHits, CacheMisses uint64
	BlocksVerified         uint64
	IntegrityFailures      uint64
}

// Image is an opened, authenticated image. It is safe for concurrent use.
type Image struct {
	src          Source
	hdr          *Header
	keys         *imageKeys
	leaves       *leafHasher
	geo          treeGeometry
	sb           *Superblock
	contentBytes uint64
	blocks       *blockCache // verified plaintext content blocks
	tree         *blockCache // verified tree blocks, by index in the tree region
	workers      int

	cacheHits, cacheMisses, verified, failures atomic.Uint64
}

// ReadHeader reads and parses the header without a key, for inspection. It also checks the
// source length against the length the header states.
func ReadHeader(ctx context.Context, src Source) (*Header, error) {
	n := int64(HeaderSize)
	if src.Size() < n {
		n = src.Size()
	}
	buf := make([]byte, n)
	// io.ReaderAt allows io.EOF with a full read that ends exactly at the end; anything short
	// is a failed read, whatever error came with it.
	if got, err := src.ReadAt(ctx, buf, 0); got != len(buf) || err != nil && err != io.EOF {
		if err == nil || err == io.EOF {
			err = fmt.Errorf("the source returned %d of %d bytes", got, len(buf))
		}
		return nil, fmt.Errorf("read the header: %w", err) // the source's error names the source
	}
	h, err := ParseHeader(buf)
	if err != nil {
		return nil, err
	}
	switch size := src.Size(); {
	case size < h.ImageSize():
		return nil, formatErr(ErrTruncated, "image is %d bytes, its header says %d", size, h.ImageSize())
	case size > h.ImageSize():
		return nil, formatErr(ErrCorrupt, "%d unexpected bytes appended after the end of the image (%d bytes)", size-h.ImageSize(), h.ImageSize())
	}
	return h, nil
}

// Open authenticates the image with the first of releaseKeys that opens a keyslot, and reads
// its index superblock. A key that matches no keyslot gives a *WrongKeyError.
func Open(ctx context.Context, src Source, releaseKeys [][]byte, opts Options) (*Image, error) {
	h, err := ReadHeader(ctx, src)
	if err != nil {
		return nil, err
	}
	master, k, err := authenticate(h, releaseKeys)
	if err != nil {
		return nil, err
	}
	clear(master) // the derived keys are all a reader needs
	opts = opts.withDefaults()
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	im := &Image{
		src: src, hdr: h, keys: k,
		leaves:       newLeafHasher(&h.Salt),
		geo:          newTreeGeometry(h.ContentBlocks),
		contentBytes: h.ContentBlocks * BlockSize,
		blocks:       newBlockCache(opts.CacheBytes),
		tree:         newBlockCache(opts.TreeCacheBytes),
		workers:      opts.Workers,
	}
	sbBlock, err := im.block(ctx, h.IndexBlock)
	if err != nil {
		return nil, err
	}
	if im.sb, err = parseSuperblock(sbBlock, im.contentBytes); err != nil {
		return nil, err
	}
	root, err := im.Inode(ctx, RootIno)
	if err != nil {
		return nil, err
	}
	if !root.IsDir() {
		return nil, formatErr(ErrCorrupt, "inode 0 is not a directory")
	}
	return im, nil
}

// Header returns the authenticated header.
func (im *Image) Header() *Header { return im.hdr }

// Superblock returns the index superblock (counts and locations).
func (im *Image) Superblock() *Superblock { return im.sb }

// Source returns the byte source the image is read from.
func (im *Image) Source() Source { return im.src }

// Stats returns a snapshot of the counters.
func (im *Image) Stats() Stats {
	return Stats{CacheHits: im.cacheHits.Load(), CacheMisses: im.cacheMisses.Load(),
		BlocksVerified: im.verified.Load(), IntegrityFailures: im.failures.Load()}
}

// ContentBytes is the size of the content space.
func (im *Image) ContentBytes() uint64 { return im.contentBytes }

// Close closes the source.
func (im *Image) Close() error { return im.src.Close() }

// Prefetch hints that content bytes [off, off+n) will be read soon.
func (im *Image) Prefetch(off, n uint64) {
	if n > 0 && within(off, n, im.contentBytes) {
		im.src.Prefetch(int64(contentOffset+off), int64(n))
		im.prefetchLeaves(off, n)
	}
}

// readContent fills p with verified plaintext from content offset off. Whole blocks are read,
// verified and decrypted in place in p; partial blocks at either edge come through the cache.
// With cacheAll, whole blocks are cached too (for index data that is read again and again).
func (im *Image) readContent(ctx context.Context, p []byte, off uint64, cacheAll bool) error {
	if !within(off, uint64(len(p)), im.contentBytes) {
		return formatErr(ErrCorrupt, "read of %d bytes at content offset %d past the content (%d bytes)", len(p), off, im.contentBytes)
	}
	for len(p) > 0 {
		b, inBlock := off/BlockSize, off%BlockSize
		if !cacheAll && inBlock == 0 && len(p) >= BlockSize {
			n := len(p) / BlockSize * BlockSize
			if err := im.readBlocks(ctx, p[:n], b); err != nil {
				return err
			}
			p, off = p[n:], off+uint64(n)
			continue
		}
		blk, err := im.block(ctx, b)
		if err != nil {
			return err
		}
		n := copy(p, blk[inBlock:])
		p, off = p[n:], off+uint64(n)
	}
	return nil
}

// block returns one verified plaintext block from the cache, reading it on a miss.
func (im *Image) block(ctx context.Context, b uint64) ([]byte, error) {
	if blk, ok := im.blocks.get(b); ok {
		im.cacheHits.Add(1)
		return blk, nil
	}
	im.cacheMisses.Add(1)
	blk := make([]byte, BlockSize)
	if err := im.readBlocks(ctx, blk, b); err != nil {
		return nil, err
	}
	im.blocks.put(b, blk)
	return blk, nil
}

// minBlocksPerWorker keeps small reads on one goroutine, where a hand-off costs more than it saves.
const minBlocksPerWorker = 32

// readBlocks reads whole content blocks starting at block first into dst, verifies and
// decrypts them in place. On failure dst is cleared, so no unverified byte escapes. A source
// with a cache gets one more chance: the cached copy (in memory or on disk) may be what went
// bad, so it is dropped and the blocks fetched again.
func (im *Image) readBlocks(ctx context.Context, dst []byte, first uint64) error {
	cs := im.src.ChunkSize()
	if cs <= 0 {
		return im.readBlocksChecked(ctx, dst, first)
	}
	// One piece per chunk of the source, so that each can be verified in the chunk and
	// decrypted straight into dst (see Source.View).
	chunk := uint64(cs)
	for rest := dst; len(rest) > 0; {
		off := contentOffset + first*BlockSize
		n := min(uint64(len(rest)), chunk-off%chunk) / BlockSize * BlockSize
		if n == 0 { // a chunk size that is not a multiple of the block size
			n = uint64(len(rest))
		}
		if err := im.readBlocksChecked(ctx, rest[:n], first); err != nil {
			clear(dst)
			return err
		}
		rest, first = rest[n:], first+n/BlockSize
	}
	return nil
}

// readBlocksChecked is readBlocks for blocks that lie in one chunk of the source.
func (im *Image) readBlocksChecked(ctx context.Context, dst []byte, first uint64) error {
	err := im.readBlocksOnce(ctx, dst, first)
	if errors.Is(err, ErrIntegrity) && im.src.Invalidate(int64(contentOffset+first*BlockSize), int64(len(dst))) {
		var ie *IntegrityError
		if errors.As(err, &ie) && ie.Region == RegionTree {
			im.src.Invalidate(ie.Offset, BlockSize)
		}
		err = im.readBlocksOnce(ctx, dst, first)
	}
	if errors.Is(err, ErrIntegrity) {
		im.failures.Add(1)
	}
	return err
}

func (im *Image) readBlocksOnce(ctx context.Context, dst []byte, first uint64) error {
	n := uint64(len(dst) / BlockSize)
	src := dst // where the ciphertext is: read into dst, or a view lent by the source
	off := int64(contentOffset + first*BlockSize)
	viewed := false
	var err error
	var view []byte
	var release func()
	im.fetchLeaves(first, n) // fetched alongside the content, not after it
	if view, release, viewed, err = im.src.View(ctx, off, len(dst)); viewed && err == nil {
		defer release()
		src = view
	}
	if !viewed {
		_, err = im.src.ReadAt(ctx, dst, off)
	}
	if err != nil {
		clear(dst)
		return fmt.Errorf("read content blocks %d..%d: %w", first, first+n-1, err) // the source's error names the source
	}
	// The leaf blocks are few (one per 256 content blocks); fetch them before fanning out.
	leaves := make([][]byte, (first+n-1)/leavesPerBlock-first/leavesPerBlock+1)
	for i := range leaves {
		l, err := im.treeBlock(ctx, 0, first/leavesPerBlock+uint64(i))
		if err != nil {
			clear(dst)
			return err
		}
		leaves[i] = l
	}
	workers := int(n / minBlocksPerWorker)
	if workers > im.workers {
		workers = im.workers
	}
	if workers <= 1 {
		err = im.verifyDecrypt(dst, src, first, first, leaves)
	} else {
		err = im.verifyDecryptParallel(dst, src, first, leaves, workers)
	}
	if err != nil {
		clear(dst)
	}
	return err
}

func (im *Image) verifyDecryptParallel(dst, src []byte, first uint64, leaves [][]byte, workers int) error {
	n := uint64(len(dst) / BlockSize)
	per := ceilDiv(n, uint64(workers))
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		lo, hi := uint64(w)*per, min(uint64(w+1)*per, n)
		if lo >= hi {
			break
		}
		part, partSrc := dst[lo*BlockSize:hi*BlockSize], src[lo*BlockSize:hi*BlockSize]
		if w == workers-1 { // the caller's goroutine does the last share
			errs[w] = im.verifyDecrypt(part, partSrc, first+lo, first, leaves)
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[w] = im.verifyDecrypt(part, partSrc, first+lo, first, leaves)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// verifyDecrypt checks each ciphertext block of src (content blocks from start) against its
// leaf hash and decrypts it into dst, which may be src itself. leaves[i] is level-0 tree block
// first/128+i.
func (im *Image) verifyDecrypt(dst, src []byte, start, first uint64, leaves [][]byte) error {
	ls := im.leaves.get()
	defer im.leaves.put(ls)
	base := first / leavesPerBlock
	for i := 0; i < len(src); i += BlockSize {
		b := start + uint64(i/BlockSize)
		blk := src[i : i+BlockSize]
		leaf := leaves[b/leavesPerBlock-base]
		want := leaf[(b%leavesPerBlock)*leafSize:][:leafSize]
		if subtle.ConstantTimeCompare(ls.leafOf(blk), want) != 1 {
			return &IntegrityError{Region: RegionContent, Block: b, Offset: int64(contentOffset + b*BlockSize),
				Detail: "block does not hash to its entry in the integrity tree: the block was modified, moved or comes from another image"}
		}
		im.keys.xts.Decrypt(dst[i:i+BlockSize], blk, b)
	}
	im.verified.Add(uint64(len(src) / BlockSize))
	return nil
}

// treeBlock returns verified tree block idx of the given level, checking it against its parent
// (recursively, up to the authenticated root) on a cache miss.
func (im *Image) treeBlock(ctx context.Context, level int, idx uint64) ([]byte, error) {
	t := im.geo.levels[level].first + idx
	if blk, ok := im.tree.get(t); ok {
		return blk, nil
	}
	var want []byte
	if level == im.geo.top() {
		want = im.hdr.Root[:]
	} else {
		parent, err := im.treeBlock(ctx, level+1, idx/hashesPerBlock)
		if err != nil {
			return nil, err
		}
		want = parent[(idx%hashesPerBlock)*hashSize:][:hashSize]
	}
	blk := make([]byte, BlockSize)
	off := int64(im.hdr.TreeOffset + t*BlockSize)
	if _, err := im.src.ReadAt(ctx, blk, off); err != nil {
		return nil, fmt.Errorf("read integrity tree block %d: %w", t, err)
	}
	got := nodeHash(&im.hdr.Salt, blk)
	if subtle.ConstantTimeCompare(got[:], want) != 1 {
		return nil, &IntegrityError{Region: RegionTree, Block: t, Offset: off,
			Detail: fmt.Sprintf("level %d block %d does not hash to its parent entry", level, idx)}
	}
	im.tree.put(t, blk)
	return blk, nil
}

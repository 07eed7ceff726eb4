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
	// CacheBytes bounds the cache of verified plaintext units (the index, and the units at the
	// edges of reads that cover them in part). Default 64 MiB.
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
	units        *blockCache // verified plaintext content units
	tree         *blockCache // verified tree blocks, by index in the tree region
	workers      int

	cacheHits, cacheMisses, verified, failures atomic.Uint64
}

// errHeaderRead marks a header that could not be read at all (rather than one that was read
// and is not a valid header).
var errHeaderRead = errors.New("read the header")

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
		return nil, fmt.Errorf("%w: %w", errHeaderRead, err) // the source's error names the source
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
	h, k, err := openHeader(ctx, src, releaseKeys)
	if err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	im := &Image{
		src: src, hdr: h, keys: k,
		leaves:       newLeafHasher(&h.Salt),
		geo:          newTreeGeometry(h.ContentUnits()),
		contentBytes: h.ContentBlocks * BlockSize,
		units:        newBlockCache(opts.CacheBytes, UnitSize),
		tree:         newBlockCache(opts.TreeCacheBytes, BlockSize),
		workers:      opts.Workers,
	}
	sbBlock := make([]byte, BlockSize)
	if err := im.readContent(ctx, sbBlock, h.IndexBlock*BlockSize, cacheIndex); err != nil {
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

// openHeader reads the header and authenticates it with the first release key that opens a
// keyslot. A source that keeps copies (a disk cache) may hand out a damaged one, which would
// look like another file, a tampered header or a wrong key: when the header does not parse or
// authenticate, its copies are dropped and it is read once more from storage, as content that
// fails verification is (checked). A failed read is not tried again here.
func openHeader(ctx context.Context, src Source, releaseKeys [][]byte) (*Header, *imageKeys, error) {
	// try reports whether a failure is worth another read (the bytes were read, and wrong).
	try := func() (h *Header, k *imageKeys, again bool, err error) {
		if h, err = ReadHeader(ctx, src); err != nil {
			return nil, nil, !errors.Is(err, errHeaderRead), err
		}
		master, k, err := authenticate(h, releaseKeys)
		if err != nil {
			return nil, nil, true, err
		}
		clear(master) // the derived keys are all a reader needs
		return h, k, false, nil
	}
	h, k, again, err := try()
	if again && src.Invalidate(0, HeaderSize) {
		h, k, _, err = try()
	}
	return h, k, err
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

// unitOffset is where verification unit u starts in the image file.
func unitOffset(u uint64) int64 { return int64(contentOffset + u*UnitSize) }

// cachePolicy says which units a read keeps in the unit cache.
type cachePolicy struct {
	// all keeps every unit read, whole ones included: index data, read again and again.
	all bool
	// Otherwise a unit that the read covers in part is kept when the read spans more than
	// that unit and the unit holds bytes of [lo, hi) (the file being read) that the read did
	// not take: what a sequential reader of the file asks for next. The edges of a read that
	// end where the file ends, and reads inside one unit (small random reads), are not kept.
	lo, hi uint64
}

var cacheIndex = cachePolicy{all: true}

// readContent fills p with verified plaintext from content offset off. Whole units are read,
// verified and decrypted in place in p. A unit that p covers only in part (at either edge) is
// verified whole and only the blocks p needs are decrypted, allocating nothing; it comes from
// the unit cache when there, and is decrypted whole into the cache when the policy keeps it.
// A read of up to spanMax bytes of units whose edges need neither is served by one read of
// the source (readSpanOnce): a small file read whole, a small random read.
func (im *Image) readContent(ctx context.Context, p []byte, off uint64, policy cachePolicy) error {
	if !within(off, uint64(len(p)), im.contentBytes) {
		return formatErr(ErrCorrupt, "read of %d bytes at content offset %d past the content (%d bytes)", len(p), off, im.contentBytes)
	}
	if len(p) == 0 {
		return nil
	}
	start, end := off, off+uint64(len(p))
	first, last := start/UnitSize, (end-1)/UnitSize
	// keep reports whether the policy keeps unit u, which the read covers in part.
	keep := func(u uint64) bool {
		us, ue := u*UnitSize, (u+1)*UnitSize
		return policy.all || first != last && (max(us, policy.lo) < start || min(ue, policy.hi) > end)
	}
	// partialEdge reports whether unit u, first or last, is covered in part and wanted in the
	// unit cache: to be kept, or already there.
	partialEdge := func(u uint64) bool {
		whole := start <= u*UnitSize && (u+1)*UnitSize <= end
		return !whole && (keep(u) || im.units.has(u))
	}
	if !policy.all && (last-first+1)*UnitSize <= spanMax && (start%UnitSize != 0 || end%UnitSize != 0) &&
		!partialEdge(first) && !partialEdge(last) {
		im.cacheMisses.Add(1)
		return im.checked(first, last-first+1, func() error { return im.readSpanOnce(ctx, p, off) })
	}
	for len(p) > 0 {
		u, inUnit := off/UnitSize, int(off%UnitSize)
		if !policy.all && inUnit == 0 && len(p) >= UnitSize {
			n := len(p) / UnitSize * UnitSize
			if err := im.readUnits(ctx, p[:n], u); err != nil {
				return err
			}
			p, off = p[n:], off+uint64(n)
			continue
		}
		n := min(len(p), UnitSize-inUnit)
		if err := im.readPartial(ctx, p[:n], off, keep(u)); err != nil {
			return err
		}
		p, off = p[n:], off+uint64(n)
	}
	return nil
}

// readPartial fills dst with plaintext from content offset off, inside one unit: from the
// unit cache, else from the unit verified whole, then kept in the cache or not.
func (im *Image) readPartial(ctx context.Context, dst []byte, off uint64, keep bool) error {
	u, inUnit := off/UnitSize, off%UnitSize
	if pt, ok := im.units.get(u); ok {
		im.cacheHits.Add(1)
		copy(dst, pt[inUnit:])
		return nil
	}
	im.cacheMisses.Add(1)
	if !keep {
		return im.checked(u, 1, func() error { return im.readSpanOnce(ctx, dst, off) })
	}
	pt := make([]byte, UnitSize)
	if err := im.readUnits(ctx, pt, u); err != nil {
		return err
	}
	im.units.put(u, pt)
	copy(dst, pt[inUnit:])
	return nil
}

// minUnitsPerWorker keeps small reads on one goroutine, where a hand-off costs more than it
// saves: 128 KiB.
const minUnitsPerWorker = 128 << 10 / UnitSize

// readUnits reads whole units starting at unit first into dst, verifies and decrypts them in
// place. On failure dst is cleared, so no unverified byte escapes. A source with a cache gets
// one more chance: the cached copy (in memory or on disk) may be what went bad, so it is
// dropped and the units fetched again.
func (im *Image) readUnits(ctx context.Context, dst []byte, first uint64) error {
	cs := im.src.ChunkSize()
	if cs <= 0 {
		return im.checked(first, uint64(len(dst)/UnitSize), func() error { return im.readUnitsOnce(ctx, dst, first) })
	}
	// One piece per chunk of the source, so that each can be verified in the chunk and
	// decrypted straight into dst (see Source.View). Units are aligned in the file, so with a
	// chunk size that is a multiple of the unit (every chunk size in use) none straddles two
	// chunks.
	chunk := uint64(cs)
	for rest := dst; len(rest) > 0; {
		off := uint64(unitOffset(first))
		n := min(uint64(len(rest)), chunk-off%chunk) / UnitSize * UnitSize
		if n == 0 { // a chunk size that is not a multiple of the unit
			n = uint64(len(rest))
		}
		piece, at := rest[:n], first
		if err := im.checked(at, n/UnitSize, func() error { return im.readUnitsOnce(ctx, piece, at) }); err != nil {
			clear(dst)
			return err
		}
		rest, first = rest[n:], first+n/UnitSize
	}
	return nil
}

// checked runs one read of units [first, first+n) and, if it fails verification over a
// source that keeps copies (a disk cache, which keeps no checksums of its own), drops the
// copies of what failed and runs it again. A read can meet several damaged copies (its units,
// then each tree block above them), so it goes on while each try fails somewhere new, up to
// maxVerifyTries; the same failure twice is the image itself. It counts what still fails.
func (im *Image) checked(first, n uint64, once func() error) error {
	var last *IntegrityError
	err := once()
	for try := 1; try < maxVerifyTries && errors.Is(err, ErrIntegrity); try++ {
		var ie *IntegrityError
		if errors.As(err, &ie) && last != nil && ie.Region == last.Region && ie.Offset == last.Offset {
			break
		}
		last = ie
		if !im.src.Invalidate(unitOffset(first), int64(n*UnitSize)) {
			break
		}
		if ie != nil && ie.Region == RegionTree {
			im.src.Invalidate(ie.Offset, BlockSize)
		}
		err = once()
	}
	if errors.Is(err, ErrIntegrity) {
		im.failures.Add(1)
	}
	return err
}

// maxVerifyTries bounds the reads of one range that fails verification: the first, and one per
// damaged cached copy it may meet (its units and a tree path of up to six levels).
const maxVerifyTries = 8

// ciphertext returns the ciphertext of [off, off+len(buf)): a view lent by the source, or buf
// filled by reading. release is never nil.
func (im *Image) ciphertext(ctx context.Context, buf []byte, off int64) (ct []byte, release func(), err error) {
	view, rel, viewed, err := im.src.View(ctx, off, len(buf))
	if viewed {
		if err != nil {
			return nil, noRelease, err
		}
		return view, rel, nil
	}
	if _, err := im.src.ReadAt(ctx, buf, off); err != nil {
		return nil, noRelease, err
	}
	return buf, noRelease, nil
}

func noRelease() {}

func (im *Image) readUnitsOnce(ctx context.Context, dst []byte, first uint64) error {
	n := uint64(len(dst) / UnitSize)
	im.fetchLeaves(first, n) // fetched alongside the content, not after it
	src, release, err := im.ciphertext(ctx, dst, unitOffset(first))
	if err != nil {
		clear(dst)
		return fmt.Errorf("read content blocks %d..%d: %w", first*BlocksPerUnit, (first+n)*BlocksPerUnit-1, err) // the source's error names the source
	}
	defer release()
	// The leaf blocks are few (one per 128 units, 1 MiB); fetch them before fanning out.
	leaves := make([][]byte, (first+n-1)/leavesPerBlock-first/leavesPerBlock+1)
	for i := range leaves {
		l, err := im.treeBlock(ctx, 0, first/leavesPerBlock+uint64(i))
		if err != nil {
			clear(dst)
			return err
		}
		leaves[i] = l
	}
	workers := int(n / minUnitsPerWorker)
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
	n := uint64(len(dst) / UnitSize)
	per := ceilDiv(n, uint64(workers))
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		lo, hi := uint64(w)*per, min(uint64(w+1)*per, n)
		if lo >= hi {
			break
		}
		part, partSrc := dst[lo*UnitSize:hi*UnitSize], src[lo*UnitSize:hi*UnitSize]
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

// verifyDecrypt checks each ciphertext unit of src (units from start) against its leaf hash
// and decrypts it into dst, which may be src itself. leaves[i] is level-0 tree block
// first/128+i.
func (im *Image) verifyDecrypt(dst, src []byte, start, first uint64, leaves [][]byte) error {
	ls := im.leaves.get()
	defer im.leaves.put(ls)
	base := first / leavesPerBlock
	for i := 0; i < len(src); i += UnitSize {
		u := start + uint64(i/UnitSize)
		unit := src[i : i+UnitSize]
		if err := im.verifyUnit(ls, unit, u, leaves[u/leavesPerBlock-base]); err != nil {
			return err
		}
		for j := 0; j < UnitSize; j += BlockSize {
			im.keys.xts.Decrypt(dst[i+j:i+j+BlockSize], unit[j:j+BlockSize], u*BlocksPerUnit+uint64(j/BlockSize))
		}
	}
	im.verified.Add(uint64(len(src) / BlockSize))
	return nil
}

// verifyUnit checks the ciphertext of unit u against its entry in its (verified) level-0 tree
// block.
func (im *Image) verifyUnit(ls *leafState, ciphertext []byte, u uint64, leafBlock []byte) error {
	want := leafBlock[(u%leavesPerBlock)*leafSize:][:leafSize]
	if subtle.ConstantTimeCompare(ls.leafOf(ciphertext), want) != 1 {
		return &IntegrityError{Region: RegionContent, Block: u * BlocksPerUnit, Offset: unitOffset(u),
			Detail: "unit does not hash to its entry in the integrity tree: it was modified, moved or comes from another image"}
	}
	return nil
}

// spanMax bounds the reads that readSpanOnce serves: 128 KiB of units, which hold a file of
// up to 120 KiB wherever it starts (the 100 KiB files of the shuffled benchmark).
const spanMax = 128 << 10

// spanScratch holds the ciphertext of the units of one span and one decrypted block; pooled,
// so that small reads allocate nothing.
type spanScratch struct {
	ct    [spanMax]byte
	block [BlockSize]byte
}

var spanPool = sync.Pool{New: func() any { return new(spanScratch) }}

// readSpanOnce fills dst with the plaintext of content bytes [off, off+len(dst)), which lie in
// at most spanMax bytes of units: it reads the ciphertext of those units with one read of the
// source, verifies each whole, and decrypts only the blocks dst needs. On failure nothing is
// written to dst.
func (im *Image) readSpanOnce(ctx context.Context, dst []byte, off uint64) error {
	first, last := off/UnitSize, (off+uint64(len(dst))-1)/UnitSize
	s := spanPool.Get().(*spanScratch)
	defer spanPool.Put(s)
	ct, release, err := im.ciphertext(ctx, s.ct[:(last-first+1)*UnitSize], unitOffset(first))
	if err != nil {
		return fmt.Errorf("read content blocks %d..%d: %w", first*BlocksPerUnit, (last+1)*BlocksPerUnit-1, err)
	}
	defer release()
	// A span touches at most two level-0 tree blocks (128 units each).
	var leafBlocks [2][]byte
	for i := range last/leavesPerBlock - first/leavesPerBlock + 1 {
		if leafBlocks[i], err = im.treeBlock(ctx, 0, first/leavesPerBlock+i); err != nil {
			return err
		}
	}
	return im.verifyDecryptSpan(dst, ct, first, int(off-first*UnitSize), leafBlocks[:], &s.block)
}

// verifyDecryptSpan is the CPU work of readSpanOnce: verify every unit of ct (units from
// first; leaves[i] is level-0 tree block first/128+i), then decrypt its plaintext bytes
// [from, from+len(dst)) into dst: straight into dst where a block is wholly wanted, through
// tmp where dst begins or ends inside one.
func (im *Image) verifyDecryptSpan(dst, ct []byte, first uint64, from int, leaves [][]byte, tmp *[BlockSize]byte) error {
	ls := im.leaves.get()
	for i := 0; i < len(ct); i += UnitSize {
		u := first + uint64(i/UnitSize)
		if err := im.verifyUnit(ls, ct[i:i+UnitSize], u, leaves[u/leavesPerBlock-first/leavesPerBlock]); err != nil {
			im.leaves.put(ls)
			return err
		}
	}
	im.leaves.put(ls)
	im.verified.Add(uint64(len(ct) / BlockSize))
	end := from + len(dst)
	for lo := from; lo < end; {
		j := lo / BlockSize
		blockStart, blockEnd := j*BlockSize, (j+1)*BlockSize
		hi := min(end, blockEnd)
		b := first*BlocksPerUnit + uint64(j)
		if lo == blockStart && hi == blockEnd {
			im.keys.xts.Decrypt(dst[lo-from:hi-from], ct[blockStart:blockEnd], b)
		} else {
			im.keys.xts.Decrypt(tmp[:], ct[blockStart:blockEnd], b)
			copy(dst[lo-from:hi-from], tmp[lo-blockStart:hi-blockStart])
		}
		lo = hi
	}
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

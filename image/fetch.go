package image

import (
	"context"
	"encoding/binary"
	"fmt"
)

// Fetching ahead for readers that know what they will read: a small file being opened, the
// next files of an access profile. The content range is rounded out to the verification unit
// and asked for exactly (Source.PrefetchRange), together with the leaf blocks of the integrity
// tree that verify it, so that neither waits for the other.

// unit is the verification unit: the granule every read of the source is aligned to.
func (im *Image) unit() uint64 { return UnitSize }

// FetchFile asks the source to fetch a regular file's whole extent now (files are contiguous
// in the content space), with its leaf tree blocks. It never blocks.
func (im *Image) FetchFile(in *Inode) {
	if !in.IsRegular() || in.Size == 0 {
		return
	}
	im.fetchContent(in.DataOffset, in.Size)
}

// FileExtent is where a regular file's bytes lie in the image (offset and length, rounded out
// to the verification unit), for a fetch order; ok is false for anything else.
func (im *Image) FileExtent(in *Inode) (off, n int64, ok bool) {
	if !in.IsRegular() || in.Size == 0 || !within(in.DataOffset, in.Size, im.contentBytes) {
		return 0, 0, false
	}
	u := im.unit()
	lo, hi := in.DataOffset/u*u, min((in.DataOffset+in.Size+u-1)/u*u, im.contentBytes)
	return int64(contentOffset + lo), int64(hi - lo), true
}

// TreeExtent is where the image's integrity tree lies (offset and length): about 1/255 of the
// content, the blocks that every first read of a file is verified against.
func (im *Image) TreeExtent() (off, n int64) {
	return int64(im.hdr.TreeOffset), int64(im.geo.totalBlocks * BlockSize)
}

// fetchContent asks for content bytes [off, off+n) and their leaf blocks.
func (im *Image) fetchContent(off, n uint64) {
	if n == 0 || !within(off, n, im.contentBytes) {
		return
	}
	u := im.unit()
	lo, hi := off/u*u, min((off+n+u-1)/u*u, im.contentBytes)
	im.src.PrefetchRange(int64(contentOffset+lo), int64(hi-lo))
	im.fetchLeaves(lo/u, (hi-lo)/u)
}

// fetchLeaves asks for the level-0 tree blocks of units first..first+n-1 that the tree cache
// does not hold, as exact ranges. A cold random read then fetches its tree blocks
// alongside its content instead of after it.
func (im *Image) fetchLeaves(first, n uint64) {
	if n == 0 {
		return
	}
	a, b := first/leavesPerBlock, (first+n-1)/leavesPerBlock
	for t := a; t <= b; t++ {
		if _, ok := im.tree.get(im.geo.levels[0].first + t); ok {
			continue
		}
		run := t
		for run+1 <= b {
			if _, ok := im.tree.get(im.geo.levels[0].first + run + 1); ok {
				break
			}
			run++
		}
		im.src.PrefetchRange(int64(im.hdr.TreeOffset+(im.geo.levels[0].first+t)*BlockSize), int64((run-t+1)*BlockSize))
		t = run
	}
}

// prefetchLeaves hints the tree blocks of content bytes [off, off+n) the way Prefetch hints
// content: as part of a sequential stream, which the source serves in whole chunks.
func (im *Image) prefetchLeaves(off, n uint64) {
	a, b := off/im.unit()/leavesPerBlock, (off+n-1)/im.unit()/leavesPerBlock
	if _, ok := im.tree.get(im.geo.levels[0].first + b); ok {
		return // a stream's leaves are fetched in order: the last one cached means all are
	}
	first := im.hdr.TreeOffset + (im.geo.levels[0].first+a)*BlockSize
	im.src.Prefetch(int64(first), int64((b-a+1)*BlockSize))
}

// Profile returns the access profile stored in the image (encfs pack --profile): inode
// numbers in the order a workload first read them; none when the image has no profile. An
// entry outside the inode table is an error (the profile is authenticated with the rest of the
// index, so it is what the packer wrote); one that is not a regular file is the caller's to skip.
func (im *Image) Profile(ctx context.Context) ([]uint64, error) {
	n := im.sb.ProfileCount
	if n == 0 {
		return nil, nil
	}
	buf := make([]byte, n*8)
	if err := im.readContent(ctx, buf, im.sb.ProfileOffset, cachePolicy{}); err != nil {
		return nil, fmt.Errorf("read the access profile: %w", err)
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(buf[8*i:])
		if out[i] >= im.sb.InodeCount {
			return nil, formatErr(ErrCorrupt, "access profile entry %d names inode %d of %d", i, out[i], im.sb.InodeCount)
		}
	}
	return out, nil
}

// hintIndex marks content bytes [off, off+n) of the index as read the way a stream is: the
// source fetches the whole chunks around them. The index is small beside the data and read
// again and again (every lookup, every listing), so whole chunks of it pay for themselves,
// where a random read of file data should fetch just its range.
func (im *Image) hintIndex(off, n uint64) {
	// Even when the unit cache holds the bytes: the hint also keeps the index's chunk recent
	// in the source's cache, so that a lookup whose units were dropped finds it there.
	if n > 0 && within(off, n, im.contentBytes) {
		im.src.Prefetch(int64(contentOffset+off), int64(n))
	}
}

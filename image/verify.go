package image

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
)

// Walk visits every inode reachable from the root, depth first in name order, calling fn with
// its path ("/" for the root). Hard-linked files are visited once per name. A directory
// reached by a second entry, or an entry whose type differs from its inode's, is refused:
// with the inode ordering that ReadDir enforces, no index can make Walk loop or blow up.
func (im *Image) Walk(ctx context.Context, fn func(p string, in *Inode) error) error {
	root, err := im.Inode(ctx, RootIno)
	if err != nil {
		return err
	}
	type item struct {
		path string
		in   Inode
	}
	stack := []item{{"/", root}}
	seenDirs := map[uint64]bool{RootIno: true}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if err := fn(it.path, &it.in); err != nil {
			return err
		}
		if !it.in.IsDir() {
			continue
		}
		entries, err := im.ReadDir(ctx, &it.in)
		if err != nil {
			return fmt.Errorf("%s: %w", it.path, err)
		}
		for i := len(entries) - 1; i >= 0; i-- {
			e := entries[i]
			child, err := im.EntryInode(ctx, e)
			if err != nil {
				return fmt.Errorf("%s: %w", path.Join(it.path, e.Name), err)
			}
			if child.IsDir() {
				if seenDirs[child.Ino] {
					return formatErr(ErrCorrupt, "%s: directory inode %d is reached by a second entry", path.Join(it.path, e.Name), child.Ino)
				}
				seenDirs[child.Ino] = true
			}
			stack = append(stack, item{path.Join(it.path, e.Name), child})
		}
	}
	return nil
}

// verifyBatch is how many units Verify reads at a time: 4 MiB.
const verifyBatch = 256

// Verify checks every content unit against the integrity tree (which checks every tree block
// up to the root) and then the whole index: every directory, inode, symlink and xattr list. It
// returns the first problem, naming the file a bad unit belongs to. progress is told the
// number of content blocks checked.
func (im *Image) Verify(ctx context.Context, progress func(blocks uint64)) error {
	buf := make([]byte, verifyBatch*UnitSize)
	units := im.hdr.ContentUnits()
	for u := uint64(0); u < units; u += verifyBatch {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(verifyBatch, units-u)
		if err := im.readUnits(ctx, buf[:n*UnitSize], u); err != nil {
			var ie *IntegrityError
			if errors.As(err, &ie) && ie.Region == RegionContent {
				return fmt.Errorf("%w (%s)", err, im.describeUnit(ctx, ie.Block/BlocksPerUnit))
			}
			return err
		}
		if progress != nil {
			progress(n * BlocksPerUnit)
		}
	}
	var files, dirs, links, bytes uint64
	seen := make(map[uint64]bool)
	err := im.Walk(ctx, func(p string, in *Inode) error {
		switch {
		case in.IsDir():
			dirs++
		case in.IsSymlink():
			links++
			if _, err := im.Readlink(ctx, in); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		case in.IsRegular() && !seen[in.Ino]:
			files++
			bytes += in.Size
		}
		if in.Nlink > 1 && in.IsRegular() {
			seen[in.Ino] = true
		}
		if _, err := im.Xattrs(ctx, in); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sb := im.sb
	if files != sb.Files || dirs != sb.Dirs || links != sb.Symlinks || bytes != sb.FileBytes {
		return formatErr(ErrCorrupt, "index counts %d files, %d directories, %d symlinks, %d bytes; the tree holds %d, %d, %d, %d",
			sb.Files, sb.Dirs, sb.Symlinks, sb.FileBytes, files, dirs, links, bytes)
	}
	return nil
}

// describeUnit says what a content unit holds: which files' data, and which index parts.
func (im *Image) describeUnit(ctx context.Context, u uint64) string {
	lo, hi := u*UnitSize, (u+1)*UnitSize
	overlaps := func(off, n uint64) bool { return n > 0 && off < hi && off+n > lo }
	var found []string
	if overlaps(im.sb.MetaOffset, im.sb.MetaLength) {
		found = append(found, "the directory and symlink lists of the index")
	}
	if overlaps(im.sb.InodeTableOffset, im.sb.InodeCount*InodeSize) {
		found = append(found, "the inode table of the index")
	}
	if im.hdr.IndexBlock/BlocksPerUnit == u {
		found = append(found, "the index superblock")
	}
	index := len(found)
	errStop := errors.New("stop")
	err := im.Walk(ctx, func(p string, in *Inode) error {
		if in.IsRegular() && overlaps(in.DataOffset, in.Size) {
			found = append(found, fmt.Sprintf("data of file %s at offset %d", p, max(lo, in.DataOffset)-in.DataOffset))
			if len(found) == index+4 {
				return errStop
			}
		}
		return nil
	})
	if len(found) == 0 {
		if err != nil && !errors.Is(err, errStop) {
			return "owner unknown: the index cannot be read either"
		}
		return "padding between files"
	}
	return strings.Join(found, "; ")
}

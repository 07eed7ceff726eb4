package image

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

// Inode reads and decodes inode ino.
func (im *Image) Inode(ctx context.Context, ino uint64) (Inode, error) {
	if ino >= im.sb.InodeCount {
		return Inode{}, formatErr(ErrCorrupt, "inode %d out of range (%d inodes)", ino, im.sb.InodeCount)
	}
	var rec [InodeSize]byte
	im.hintIndex(im.sb.InodeTableOffset+ino*InodeSize, InodeSize)
	if err := im.readContent(ctx, rec[:], im.sb.InodeTableOffset+ino*InodeSize, cacheIndex); err != nil {
		return Inode{}, err
	}
	return parseInode(ino, rec[:], im.sb, im.contentBytes)
}

// readMeta reads n bytes of the metadata region at a region-relative offset.
func (im *Image) readMeta(ctx context.Context, off, n uint64) ([]byte, error) {
	buf := make([]byte, n)
	im.hintIndex(im.sb.MetaOffset+off, n)
	// Large lists (big directories) bypass the unit cache so they do not flush it.
	policy := cacheIndex
	if n >= 16*BlockSize {
		policy = cachePolicy{lo: im.sb.MetaOffset + off, hi: im.sb.MetaOffset + off + n}
	}
	err := im.readContent(ctx, buf, im.sb.MetaOffset+off, policy)
	return buf, err
}

// ReadDir returns the entries of a directory inode, sorted by name.
func (im *Image) ReadDir(ctx context.Context, dir *Inode) ([]DirEntry, error) {
	if !dir.IsDir() {
		return nil, fmt.Errorf("inode %d is not a directory", dir.Ino)
	}
	b, err := im.readMeta(ctx, dir.DataOffset, dir.Size)
	if err != nil {
		return nil, err
	}
	return parseDirents(b, dir.Entries, im.sb.InodeCount, dir.Ino)
}

// EntryInode reads the inode a directory entry points at and checks that its type is the one
// the entry states, so that an index cannot show a directory where a file was listed.
func (im *Image) EntryInode(ctx context.Context, e DirEntry) (Inode, error) {
	in, err := im.Inode(ctx, e.Ino)
	if err != nil {
		return Inode{}, err
	}
	if uint32(e.Type) != in.Mode>>12 {
		return Inode{}, formatErr(ErrCorrupt, "a directory entry of type %d points at inode %d of type %d", e.Type, e.Ino, in.Mode>>12)
	}
	return in, nil
}

// Lookup finds name in entries as returned by ReadDir.
func Lookup(entries []DirEntry, name string) (DirEntry, bool) {
	i := sort.Search(len(entries), func(i int) bool { return entries[i].Name >= name })
	if i < len(entries) && entries[i].Name == name {
		return entries[i], true
	}
	return DirEntry{}, false
}

// ReadFile reads file data at off into p and returns how many bytes it read: len(p), or fewer
// only where the file ends, as its inode says (0 at or past the end). The end of a file is
// decided by the index alone, never by an error from below: any error is a failed read, and
// nothing of p is then valid.
func (im *Image) ReadFile(ctx context.Context, in *Inode, p []byte, off int64) (int, error) {
	if !in.IsRegular() {
		return 0, fmt.Errorf("inode %d is not a regular file", in.Ino)
	}
	if off < 0 {
		return 0, fmt.Errorf("negative offset %d", off)
	}
	if uint64(off) >= in.Size {
		return 0, nil
	}
	n := min(uint64(len(p)), in.Size-uint64(off))
	if err := im.readContent(ctx, p[:n], in.DataOffset+uint64(off), cachePolicy{lo: in.DataOffset, hi: in.DataOffset + in.Size}); err != nil {
		return 0, err
	}
	return int(n), nil
}

// PrefetchFile hints that file bytes [off, off+n) will be read soon.
func (im *Image) PrefetchFile(in *Inode, off, n uint64) {
	if !in.IsRegular() || off >= in.Size {
		return
	}
	im.Prefetch(in.DataOffset+off, min(n, in.Size-off))
}

// Readlink returns a symlink's target.
func (im *Image) Readlink(ctx context.Context, in *Inode) (string, error) {
	if !in.IsSymlink() {
		return "", fmt.Errorf("inode %d is not a symlink", in.Ino)
	}
	b, err := im.readMeta(ctx, in.DataOffset, in.Size)
	return string(b), err
}

// Xattrs returns an inode's extended attributes, sorted by name.
func (im *Image) Xattrs(ctx context.Context, in *Inode) ([]Xattr, error) {
	if in.XattrLen == 0 {
		return nil, nil
	}
	b, err := im.readMeta(ctx, in.XattrOff, uint64(in.XattrLen))
	if err != nil {
		return nil, err
	}
	return parseXattrs(b)
}

// LookupPath resolves a slash-separated path from the root without following symlinks.
func (im *Image) LookupPath(ctx context.Context, path string) (Inode, error) {
	in, err := im.Inode(ctx, RootIno)
	if err != nil {
		return Inode{}, err
	}
	for _, name := range strings.Split(path, "/") {
		if name == "" || name == "." {
			continue
		}
		if !in.IsDir() {
			return Inode{}, fmt.Errorf("%s: %w (a path component is not a directory)", path, ErrNotFound)
		}
		entries, err := im.ReadDir(ctx, &in)
		if err != nil {
			return Inode{}, err
		}
		e, ok := Lookup(entries, name)
		if !ok {
			return Inode{}, fmt.Errorf("%s: %w", path, ErrNotFound)
		}
		if in, err = im.EntryInode(ctx, e); err != nil {
			return Inode{}, err
		}
	}
	return in, nil
}

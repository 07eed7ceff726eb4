package image

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"strings"
	"syscall"
)

// The file-tree index; docs/FORMAT.md, "Index". It lives in the content space like file data,
// so it is encrypted and verified the same way. Three parts:
//   - the superblock, one content block named by the header;
//   - the inode table: fixed 64-byte records, inode number = position, root = 0;
//   - the metadata region: directory entry lists, symlink targets and xattr lists, addressed by
//     offsets relative to the region's start.
const (
	IndexMagic     = "ENCFSIDX"
	InodeSize      = 64
	RootIno        = 0
	MaxNameLen     = 255
	superblockSize = 88
	direntHeader   = 8 + 2 + 1 // inode, name length, type
)

// Superblock locates the index and carries the image's counts.
type Superblock struct {
	InodeTableOffset uint64 // content byte offset
	InodeCount       uint64
	MetaOffset       uint64 // content byte offset of the metadata region
	MetaLength       uint64
	Files            uint64 // regular files (inodes, so hard links count once)
	Dirs             uint64
	Symlinks         uint64
	FileBytes        uint64 // sum of regular file sizes
	// The access profile stored by encfs pack --profile (package profile): ProfileCount inode
	// numbers, 8 bytes each, little-endian, at content offset ProfileOffset. Zero: none.
	ProfileOffset uint64
	ProfileCount  uint64
}

func (s *Superblock) marshal() []byte {
	b := make([]byte, BlockSize)
	copy(b, IndexMagic)
	le := binary.LittleEndian
	for i, v := range []uint64{s.InodeTableOffset, s.InodeCount, s.MetaOffset, s.MetaLength, s.Files, s.Dirs, s.Symlinks, s.FileBytes,
		s.ProfileOffset, s.ProfileCount} {
		le.PutUint64(b[8+8*i:], v)
	}
	return b
}

// parseSuperblock decodes and bounds-checks the superblock against the content size.
func parseSuperblock(b []byte, contentBytes uint64) (*Superblock, error) {
	if len(b) < superblockSize || !bytes.Equal(b[:8], []byte(IndexMagic)) {
		return nil, formatErr(ErrCorrupt, "index superblock has no %q magic", IndexMagic)
	}
	le := binary.LittleEndian
	s := &Superblock{
		InodeTableOffset: le.Uint64(b[8:]), InodeCount: le.Uint64(b[16:]),
		MetaOffset: le.Uint64(b[24:]), MetaLength: le.Uint64(b[32:]),
		Files: le.Uint64(b[40:]), Dirs: le.Uint64(b[48:]), Symlinks: le.Uint64(b[56:]), FileBytes: le.Uint64(b[64:]),
		ProfileOffset: le.Uint64(b[72:]), ProfileCount: le.Uint64(b[80:]),
	}
	if s.InodeCount == 0 || s.InodeCount > contentBytes/InodeSize ||
		!within(s.InodeTableOffset, s.InodeCount*InodeSize, contentBytes) {
		return nil, formatErr(ErrCorrupt, "inode table (%d inodes at %d) outside the content", s.InodeCount, s.InodeTableOffset)
	}
	if !within(s.MetaOffset, s.MetaLength, contentBytes) {
		return nil, formatErr(ErrCorrupt, "metadata region (%d bytes at %d) outside the content", s.MetaLength, s.MetaOffset)
	}
	if s.ProfileCount > s.InodeCount || !within(s.ProfileOffset, s.ProfileCount*8, contentBytes) {
		return nil, formatErr(ErrCorrupt, "access profile (%d entries at %d) outside the content or longer than the inode table", s.ProfileCount, s.ProfileOffset)
	}
	return s, nil
}

// within reports whether [off, off+n) lies inside [0, limit) without overflowing.
func within(off, n, limit uint64) bool { return off <= limit && n <= limit-off }

// Inode is one decoded inode record.
type Inode struct {
	Ino        uint64
	Mode       uint32 // st_mode: type and permission bits
	UID, GID   uint32
	Nlink      uint32
	Size       uint64 // file: bytes; symlink: target length; directory: entry list bytes
	MtimeSec   int64
	MtimeNsec  uint32
	DataOffset uint64 // file: content offset; directory, symlink: metadata offset
	XattrOff   uint64 // metadata offset
	XattrLen   uint32
	Entries    uint32 // directory: number of entries
}

// File-type bits of st_mode.
const (
	modeType = syscall.S_IFMT
	modeDir  = syscall.S_IFDIR
	modeReg  = syscall.S_IFREG
	modeLnk  = syscall.S_IFLNK
)

func (in *Inode) IsDir() bool     { return in.Mode&modeType == modeDir }
func (in *Inode) IsRegular() bool { return in.Mode&modeType == modeReg }
func (in *Inode) IsSymlink() bool { return in.Mode&modeType == modeLnk }

// Marshal encodes the record into b[:InodeSize]. Ino is implied by the position.
func (in *Inode) Marshal(b []byte) {
	le := binary.LittleEndian
	le.PutUint32(b[0:], in.Mode)
	le.PutUint32(b[4:], in.UID)
	le.PutUint32(b[8:], in.GID)
	le.PutUint32(b[12:], in.Nlink)
	le.PutUint64(b[16:], in.Size)
	le.PutUint64(b[24:], uint64(in.MtimeSec))
	le.PutUint32(b[32:], in.MtimeNsec)
	le.PutUint32(b[36:], in.XattrLen)
	le.PutUint64(b[40:], in.DataOffset)
	le.PutUint64(b[48:], in.XattrOff)
	le.PutUint32(b[56:], in.Entries)
	le.PutUint32(b[60:], 0)
}

// parseInode decodes a record and checks that everything it points at lies inside the image.
func parseInode(ino uint64, b []byte, sb *Superblock, contentBytes uint64) (Inode, error) {
	le := binary.LittleEndian
	in := Inode{
		Ino: ino, Mode: le.Uint32(b[0:]), UID: le.Uint32(b[4:]), GID: le.Uint32(b[8:]), Nlink: le.Uint32(b[12:]),
		Size: le.Uint64(b[16:]), MtimeSec: int64(le.Uint64(b[24:])), MtimeNsec: le.Uint32(b[32:]),
		XattrLen: le.Uint32(b[36:]), DataOffset: le.Uint64(b[40:]), XattrOff: le.Uint64(b[48:]), Entries: le.Uint32(b[56:]),
	}
	bad := func(what string) (Inode, error) {
		return Inode{}, formatErr(ErrCorrupt, "inode %d: %s", ino, what)
	}
	if le.Uint32(b[60:]) != 0 || in.MtimeNsec >= 1e9 {
		return bad("reserved or nanosecond field out of range")
	}
	if in.Mode&^uint32(modeType|0o7777) != 0 {
		return bad("unknown mode bits")
	}
	switch in.Mode & modeType {
	case modeReg:
		if !within(in.DataOffset, in.Size, contentBytes) {
			return bad("file data outside the content")
		}
	case modeDir, modeLnk:
		if !within(in.DataOffset, in.Size, sb.MetaLength) {
			return bad("entries or target outside the metadata region")
		}
		if in.IsSymlink() && (in.Size == 0 || in.Size > 4096) {
			return bad("symlink target length out of range")
		}
	default:
		return bad("unsupported file type")
	}
	if !within(in.XattrOff, uint64(in.XattrLen), sb.MetaLength) {
		return bad("xattrs outside the metadata region")
	}
	return in, nil
}

// DirEntry is one name in a directory.
type DirEntry struct {
	Name string
	Ino  uint64
	Type uint8 // st_mode >> 12, as in the inode
}

// AppendDirent encodes one entry; entries of a directory are written in strictly increasing
// byte order of their names.
func AppendDirent(b []byte, e DirEntry) []byte {
	b = binary.LittleEndian.AppendUint64(b, e.Ino)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(e.Name)))
	b = append(b, e.Type)
	return append(b, e.Name...)
}

// parseDirents decodes the entry list of directory inode dirIno. Names must be valid and
// strictly sorted, so lookups can binary-search and a forged list cannot hold duplicates or
// path separators. An entry naming a subdirectory must point at a higher inode number than
// dirIno (pack numbers subdirectories after their parent), so no chain of directory entries
// can lead back to an ancestor: a cyclic index is refused where it is read.
func parseDirents(b []byte, count uint32, inodeCount, dirIno uint64) ([]DirEntry, error) {
	if uint64(count) > uint64(len(b))/direntHeader {
		return nil, formatErr(ErrCorrupt, "directory claims %d entries in %d bytes", count, len(b))
	}
	out := make([]DirEntry, 0, count)
	le := binary.LittleEndian
	for i := uint32(0); i < count; i++ {
		if len(b) < direntHeader {
			return nil, formatErr(ErrCorrupt, "directory entry %d truncated", i)
		}
		e := DirEntry{Ino: le.Uint64(b), Type: b[10]}
		n := int(le.Uint16(b[8:]))
		b = b[direntHeader:]
		if n > len(b) {
			return nil, formatErr(ErrCorrupt, "directory entry %d name runs past the list", i)
		}
		e.Name = string(b[:n])
		b = b[n:]
		if err := CheckName(e.Name); err != nil {
			return nil, formatErr(ErrCorrupt, "directory inode %d: entry %d: %v", dirIno, i, err)
		}
		if e.Ino == RootIno || e.Ino >= inodeCount {
			return nil, formatErr(ErrCorrupt, "directory inode %d: entry %d points at inode %d of %d", dirIno, i, e.Ino, inodeCount)
		}
		switch uint32(e.Type) << 12 {
		case modeReg, modeLnk:
		case modeDir:
			if e.Ino <= dirIno {
				return nil, formatErr(ErrCorrupt, "directory inode %d: entry %d names directory inode %d, not a higher inode number (a directory cycle)", dirIno, i, e.Ino)
			}
		default:
			return nil, formatErr(ErrCorrupt, "directory inode %d: entry %d has unknown file type %d", dirIno, i, e.Type)
		}
		if i > 0 && out[i-1].Name >= e.Name {
			return nil, formatErr(ErrCorrupt, "directory inode %d: entries not in strictly increasing order at entry %d", dirIno, i)
		}
		out = append(out, e)
	}
	if len(b) != 0 {
		return nil, formatErr(ErrCorrupt, "%d stray bytes after the directory entries", len(b))
	}
	return out, nil
}

type nameError string

func (e nameError) Error() string { return string(e) }

// CheckName reports whether name may appear in a directory.
func CheckName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return nameError("invalid name " + strconv.Quote(name))
	case len(name) > MaxNameLen:
		return nameError("name longer than 255 bytes")
	case strings.ContainsAny(name, "/\x00"):
		return nameError("name contains '/' or NUL")
	}
	return nil
}

// Xattr is one extended attribute.
type Xattr struct {
	Name  string
	Value []byte
}

// AppendXattrs encodes a sorted xattr list: per attribute, u8 name length, u32 value length,
// name, value.
func AppendXattrs(b []byte, xs []Xattr) []byte {
	for _, x := range xs {
		b = append(b, byte(len(x.Name)))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(x.Value)))
		b = append(b, x.Name...)
		b = append(b, x.Value...)
	}
	return b
}

func parseXattrs(b []byte) ([]Xattr, error) {
	var out []Xattr
	for len(b) > 0 {
		if len(b) < 5 {
			return nil, formatErr(ErrCorrupt, "xattr list truncated")
		}
		n, v := int(b[0]), uint64(binary.LittleEndian.Uint32(b[1:]))
		b = b[5:]
		if n == 0 || uint64(n)+v > uint64(len(b)) {
			return nil, formatErr(ErrCorrupt, "xattr entry runs past the list")
		}
		x := Xattr{Name: string(b[:n]), Value: bytes.Clone(b[n : n+int(v)])}
		if strings.IndexByte(x.Name, 0) >= 0 || (len(out) > 0 && out[len(out)-1].Name >= x.Name) {
			return nil, formatErr(ErrCorrupt, "xattr names invalid or not sorted")
		}
		out = append(out, x)
		b = b[n+int(v):]
	}
	return out, nil
}

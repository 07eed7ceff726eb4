// Package pack turns a directory tree into an encfs image: it walks the tree once, streams file
// data into the image writer as it goes, and spools the index (inode table, directory entries,
// symlink targets, xattrs) to temporary files that are appended at the end. Memory does not
// grow with the size of the tree, only with its number of hard-linked files.
package pack

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/encfs/encfs/image"
)

// Options configure Pack.
type Options struct {
	image.WriterOptions
	// Progress, if set, is called with the number of file bytes read since the last call.
	Progress func(n int64)
	// FileDone, if set, is called after each regular file is packed.
	FileDone func()
	// NoReplace refuses to replace an existing file at the image path, checked when the image
	// is put in place (a hard link, which fails if the name exists, rather than a rename).
	NoReplace bool
	// Log receives warnings (skipped special files); default slog.Default().
	Log *slog.Logger
	// Profile is an access profile to store in the image (package profile): image inode
	// numbers in first-read order, recorded by encfs mount --record-profile on an earlier pack
	// of the same tree. Numbers past the tree's inodes are refused.
	Profile []uint64
}

// Result describes a packed image.
type Result struct {
	Header *image.Header
	Index  image.Superblock
}

// ErrExists reports an image path that exists, with Options.NoReplace.
var ErrExists = errors.New("image file exists")

// Pack writes the tree at srcDir into a new image at imagePath. The image appears atomically
// (written under a temporary name, then renamed); on failure nothing is left behind.
func Pack(ctx context.Context, srcDir, imagePath string, opts Options) (*Result, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	src, err := filepath.Abs(srcDir)
	if err != nil {
		return nil, err
	}
	if st, err := os.Stat(src); err != nil {
		return nil, fmt.Errorf("source directory: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("source %s is not a directory", srcDir)
	}
	if err := checkOutsideSource(src, imagePath); err != nil {
		return nil, err
	}
	if _, err := os.Lstat(imagePath); err == nil && opts.NoReplace {
		return nil, fmt.Errorf("%w: %s", ErrExists, imagePath) // fail before the work, not after
	}
	out, err := os.CreateTemp(filepath.Dir(imagePath), "."+filepath.Base(imagePath)+".partial-*")
	if err != nil {
		return nil, fmt.Errorf("create image: %w", err)
	}
	res, err := packInto(ctx, src, out, opts)
	if cerr := out.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close image: %w", cerr)
	}
	if err == nil {
		if err = os.Chmod(out.Name(), 0o644); err == nil {
			err = place(out.Name(), imagePath, opts.NoReplace)
		}
	}
	if err != nil {
		os.Remove(out.Name())
		return nil, err
	}
	return res, nil
}

// place gives the finished image its name: a rename, or with noReplace a hard link that fails
// if the name was taken meanwhile.
func place(tmp, imagePath string, noReplace bool) error {
	if !noReplace {
		return os.Rename(tmp, imagePath)
	}
	if err := os.Link(tmp, imagePath); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%w: %s", ErrExists, imagePath)
		}
		return fmt.Errorf("place image: %w", err)
	}
	return os.Remove(tmp)
}

// checkOutsideSource refuses an image path inside the tree being packed, which would pack
// the image into itself.
func checkOutsideSource(src, imagePath string) error {
	dir, err := filepath.Abs(filepath.Dir(imagePath))
	if err != nil {
		return err
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	if real, err := filepath.EvalSymlinks(src); err == nil {
		src = real
	}
	if dir == src || strings.HasPrefix(dir, src+string(filepath.Separator)) {
		return fmt.Errorf("image %s is inside the source directory %s: write it somewhere else", imagePath, src)
	}
	return nil
}

func packInto(ctx context.Context, src string, out *os.File, opts Options) (*Result, error) {
	if opts.TempDir == "" {
		// The spools hold plaintext names, sizes and leaf hashes: keep them in a directory of
		// their own (mode 0700), not next to the output where others may list them.
		dir, err := os.MkdirTemp("", "encfs-pack-*")
		if err != nil {
			return nil, fmt.Errorf("temporary directory for the index spools: %w", err)
		}
		defer os.RemoveAll(dir)
		opts.TempDir = dir
	}
	w, err := image.NewWriter(out, opts.WriterOptions)
	if err != nil {
		return nil, err
	}
	defer w.Abort()
	t, err := newTree(ctx, w, opts)
	if err != nil {
		return nil, err
	}
	defer t.close()
	if err := t.walk(src); err != nil {
		return nil, err
	}
	sb, err := t.appendIndex()
	if err != nil {
		return nil, err
	}
	h, err := w.Finish(sb)
	if err != nil {
		return nil, err
	}
	return &Result{Header: h, Index: *sb}, nil
}

// spool is an unlinked temporary file that vanishes with the process.
func spool(dir, name string) (*os.File, error) {
	f, err := os.CreateTemp(dir, ".encfs-"+name+"-*")
	if err != nil {
		return nil, fmt.Errorf("%s spool: %w", name, err)
	}
	os.Remove(f.Name())
	return f, nil
}

// tree is the state of one walk.
type tree struct {
	ctx       context.Context
	w         *image.Writer
	opts      Options
	meta      *os.File // metadata region spool
	metaBuf   *bufio.Writer
	metaLen   uint64
	inodes    *os.File // inode table spool, written at ino*InodeSize
	nextIno   uint64
	hardlinks map[[2]uint64]uint64 // (dev, ino) of multiply-linked files -> image inode
	links     map[uint64]uint32    // image inode -> links found
	sb        image.Superblock
	copyBuf   []byte
}

func newTree(ctx context.Context, w *image.Writer, opts Options) (*tree, error) {
	meta, err := spool(opts.TempDir, "meta")
	if err != nil {
		return nil, err
	}
	inodes, err := spool(opts.TempDir, "inodes")
	if err != nil {
		meta.Close()
		return nil, err
	}
	return &tree{ctx: ctx, w: w, opts: opts, meta: meta, metaBuf: bufio.NewWriterSize(meta, 1<<20),
		inodes: inodes, nextIno: image.RootIno + 1, hardlinks: map[[2]uint64]uint64{},
		links: map[uint64]uint32{}, copyBuf: make([]byte, 1<<20)}, nil
}

func (t *tree) close() {
	t.meta.Close()
	t.inodes.Close()
}

// pendingDir is a directory whose inode number is assigned but whose entries are not yet read.
type pendingDir struct {
	path string
	ino  uint64
	st   unix.Stat_t
}

// walk visits directories depth first in name order, so that a directory's files are stored
// next to each other and packing the same tree twice gives the same bytes.
func (t *tree) walk(root string) error {
	var st unix.Stat_t
	if err := unix.Lstat(root, &st); err != nil {
		return fmt.Errorf("%s: %w", root, err)
	}
	stack := []pendingDir{{path: root, ino: image.RootIno, st: st}}
	for len(stack) > 0 {
		if err := t.ctx.Err(); err != nil {
			return err
		}
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		subdirs, err := t.packDir(d)
		if err != nil {
			return err
		}
		for i := len(subdirs) - 1; i >= 0; i-- {
			stack = append(stack, subdirs[i])
		}
	}
	return t.patchLinkCounts()
}

// packDir stores the files and symlinks of one directory, its entry list and its inode, and
// returns its subdirectories with inode numbers assigned.
func (t *tree) packDir(d pendingDir) ([]pendingDir, error) {
	names, err := readDirNames(d.path, &d.st)
	if err != nil {
		return nil, err
	}
	var (
		entries  []byte
		subdirs  []pendingDir
		firstIno = t.nextIno
		records  []byte // inode records for [firstIno, t.nextIno)
		count    uint32
	)
	for _, name := range names {
		full := filepath.Join(d.path, name)
		if err := image.CheckName(name); err != nil {
			return nil, fmt.Errorf("%s: %v", full, err)
		}
		var st unix.Stat_t
		if err := unix.Lstat(full, &st); err != nil {
			return nil, fmt.Errorf("%s: %w", full, err)
		}
		var in image.Inode
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			in.Ino = t.allocIno()
			subdirs = append(subdirs, pendingDir{path: full, ino: in.Ino, st: st})
		case unix.S_IFREG:
			key := [2]uint64{st.Dev, st.Ino}
			if ino, ok := t.hardlinks[key]; ok && st.Nlink > 1 {
				t.links[ino]++
				entries = image.AppendDirent(entries, image.DirEntry{Name: name, Ino: ino, Type: uint8(st.Mode >> 12)})
				count++
				continue
			}
			in.Ino = t.allocIno()
			if st.Nlink > 1 {
				t.hardlinks[key] = in.Ino
				t.links[in.Ino] = 1
			}
			if err := t.packFile(full, &st, &in); err != nil {
				return nil, err
			}
		case unix.S_IFLNK:
			in.Ino = t.allocIno()
			if err := t.packSymlink(full, &in); err != nil {
				return nil, err
			}
		default:
			t.opts.Log.Warn("skipping special file (device, socket or fifo)", "path", full)
			continue
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			if err := t.fillInode(full, &st, &in); err != nil {
				return nil, err
			}
			records = growTo(records, (in.Ino-firstIno+1)*image.InodeSize)
			in.Marshal(records[(in.Ino-firstIno)*image.InodeSize:])
		}
		entries = image.AppendDirent(entries, image.DirEntry{Name: name, Ino: in.Ino, Type: uint8(st.Mode >> 12)})
		count++
	}
	if len(records) > 0 {
		if _, err := t.inodes.WriteAt(records, int64(firstIno*image.InodeSize)); err != nil {
			return nil, fmt.Errorf("inode spool: %w", err)
		}
	}
	dir := image.Inode{Ino: d.ino, Nlink: uint32(2 + len(subdirs)), Size: uint64(len(entries)),
		Entries: count, DataOffset: t.metaLen}
	if err := t.writeMeta(entries); err != nil {
		return nil, err
	}
	if err := t.fillInode(d.path, &d.st, &dir); err != nil {
		return nil, err
	}
	t.sb.Dirs++
	if err := t.writeInode(&dir); err != nil {
		return nil, err
	}
	return subdirs, nil
}

// readDirNames lists a directory that lstat described as st. It opens it without following a
// symlink and checks that it is still the same directory (device and inode), so that a tree
// changed under the packer cannot swap in a link to somewhere else between lstat and open.
func readDirNames(path string, st *unix.Stat_t) ([]string, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			return nil, changedErr(path)
		}
		return nil, fmt.Errorf("%s: %w", path, &os.PathError{Op: "open", Path: path, Err: err})
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	var now unix.Stat_t
	if err := unix.Fstat(fd, &now); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if now.Dev != st.Dev || now.Ino != st.Ino {
		return nil, changedErr(path)
	}
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	slices.Sort(names) // byte order, as the format requires
	return names, nil
}

func (t *tree) allocIno() uint64 {
	ino := t.nextIno
	t.nextIno++
	return ino
}

func growTo(b []byte, n uint64) []byte {
	if uint64(len(b)) < n {
		b = append(b, make([]byte, n-uint64(len(b)))...)
	}
	return b
}

// fillInode sets the attributes shared by every kind of inode: mode, owner, mtime, xattrs.
func (t *tree) fillInode(path string, st *unix.Stat_t, in *image.Inode) error {
	in.Mode = st.Mode & (unix.S_IFMT | 0o7777)
	in.UID, in.GID = st.Uid, st.Gid
	in.MtimeSec, in.MtimeNsec = st.Mtim.Sec, uint32(st.Mtim.Nsec)
	if in.Nlink == 0 {
		in.Nlink = 1
	}
	xs, err := readXattrs(path)
	if err != nil {
		return err
	}
	if len(xs) > 0 {
		b := image.AppendXattrs(nil, xs)
		in.XattrOff, in.XattrLen = t.metaLen, uint32(len(b))
		return t.writeMeta(b)
	}
	return nil
}

func (t *tree) writeMeta(b []byte) error {
	if _, err := t.metaBuf.Write(b); err != nil {
		return fmt.Errorf("metadata spool: %w", err)
	}
	t.metaLen += uint64(len(b))
	return nil
}

func (t *tree) writeInode(in *image.Inode) error {
	var rec [image.InodeSize]byte
	in.Marshal(rec[:])
	if _, err := t.inodes.WriteAt(rec[:], int64(in.Ino*image.InodeSize)); err != nil {
		return fmt.Errorf("inode spool: %w", err)
	}
	return nil
}

func (t *tree) packSymlink(path string, in *image.Inode) error {
	target, err := os.Readlink(path)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if len(target) == 0 || len(target) > 4096 {
		return fmt.Errorf("%s: symlink target of %d bytes is not supported", path, len(target))
	}
	in.DataOffset, in.Size = t.metaLen, uint64(len(target))
	t.sb.Symlinks++
	return t.writeMeta([]byte(target))
}

// unitAlignMin is the size from which a file starts on a verification unit boundary: reads of
// a large file (the mount's are 1 MiB) then cover whole units, with no unit at their edges to
// verify twice or to cache, for at most 4 KiB of padding (0.4% of such a file).
const unitAlignMin = 1 << 20

// packFile streams one regular file into the content space. Files of 1 MiB or more start on a
// unit boundary and files of a block or more on a block boundary, so that their reads are
// aligned; smaller files are packed end to end.
func (t *tree) packFile(path string, st *unix.Stat_t, in *image.Inode) error {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if errors.Is(err, unix.ELOOP) {
		return changedErr(path) // replaced by a symlink since lstat
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	var opened unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &opened); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if opened.Dev != st.Dev || opened.Ino != st.Ino {
		return changedErr(path)
	}
	switch {
	case st.Size >= unitAlignMin:
		if err := t.w.PadToUnit(); err != nil {
			return err
		}
	case st.Size >= image.BlockSize:
		if err := t.w.PadToBlock(); err != nil {
			return err
		}
	}
	in.DataOffset = t.w.Offset()
	// Read at most one byte more than stat said, to notice a file that grew.
	n, err := t.w.ReadFrom(&progressReader{ctx: t.ctx, r: io.LimitReader(f, st.Size+1), progress: t.opts.Progress})
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if n > st.Size {
		return changedErr(path)
	}
	var after unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &after); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if n != st.Size || after.Size != st.Size || after.Mtim != st.Mtim || after.Ino != st.Ino {
		return changedErr(path)
	}
	in.Size = uint64(n)
	t.sb.Files++
	t.sb.FileBytes += uint64(n)
	if t.opts.FileDone != nil {
		t.opts.FileDone()
	}
	return nil
}

// progressReader reports every read to an optional progress callback, and stops a large file
// as soon as the pack is cancelled rather than after its last byte.
type progressReader struct {
	ctx      context.Context
	r        io.Reader
	progress func(int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	if err := p.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := p.r.Read(b)
	if n > 0 && p.progress != nil {
		p.progress(int64(n))
	}
	return n, err
}

func changedErr(path string) error {
	return fmt.Errorf("%s changed while being packed: pack a directory nobody is writing to (or a snapshot of it) and try again", path)
}

// patchLinkCounts sets nlink on files reached by more than one name inside the tree.
func (t *tree) patchLinkCounts() error {
	var rec [image.InodeSize]byte
	for ino, n := range t.links {
		if n < 2 {
			continue
		}
		if _, err := t.inodes.ReadAt(rec[:], int64(ino*image.InodeSize)); err != nil {
			return fmt.Errorf("inode spool: %w", err)
		}
		rec[12], rec[13], rec[14], rec[15] = byte(n), byte(n>>8), byte(n>>16), byte(n>>24)
		if _, err := t.inodes.WriteAt(rec[:], int64(ino*image.InodeSize)); err != nil {
			return fmt.Errorf("inode spool: %w", err)
		}
	}
	return nil
}

// appendIndex copies the spooled metadata region and inode table into the content space and
// returns the superblock that locates them.
func (t *tree) appendIndex() (*image.Superblock, error) {
	if err := t.metaBuf.Flush(); err != nil {
		return nil, fmt.Errorf("metadata spool: %w", err)
	}
	sb := t.sb
	if err := t.w.PadToBlock(); err != nil {
		return nil, err
	}
	sb.MetaOffset, sb.MetaLength = t.w.Offset(), t.metaLen
	if err := t.copySpool(t.meta, int64(t.metaLen)); err != nil {
		return nil, err
	}
	if err := t.w.PadToBlock(); err != nil {
		return nil, err
	}
	sb.InodeTableOffset, sb.InodeCount = t.w.Offset(), t.nextIno
	if err := t.copySpool(t.inodes, int64(t.nextIno*image.InodeSize)); err != nil {
		return nil, err
	}
	if len(t.opts.Profile) > 0 {
		if err := t.w.PadToBlock(); err != nil {
			return nil, err
		}
		buf := make([]byte, 8*len(t.opts.Profile))
		for i, ino := range t.opts.Profile {
			if ino >= t.nextIno {
				return nil, fmt.Errorf("access profile: inode %d does not exist in this tree (%d inodes): was the profile recorded on an image of another tree?", ino, t.nextIno)
			}
			binary.LittleEndian.PutUint64(buf[8*i:], ino)
		}
		sb.ProfileOffset, sb.ProfileCount = t.w.Offset(), uint64(len(t.opts.Profile))
		if _, err := t.w.Write(buf); err != nil {
			return nil, err
		}
	}
	return &sb, nil
}

func (t *tree) copySpool(f *os.File, n int64) error {
	if _, err := io.CopyBuffer(struct{ io.Writer }{t.w}, io.NewSectionReader(f, 0, n), t.copyBuf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("copy index spool: %w", err)
	}
	return nil
}

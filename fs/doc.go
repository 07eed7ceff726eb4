// Package fs serves an opened encfs image as a read-only FUSE filesystem, with the go-fuse v2
// node API. Directories load from the image index when first looked up; inode numbers are the
// image's inode numbers plus one, so they are stable across mounts and hard links share one
// inode. The image never changes while mounted, so entries and attributes are cached by the
// kernel for a long time and the page cache is kept across opens. Everything that would write
// fails with EROFS.
//
// Reads go straight from the image's verifying reader into the buffer go-fuse hands to the
// read, so plaintext is copied once and only after it has been verified. A unit of the image
// that fails verification fails the reads that need any of it with EIO, is logged once (with
// the file path only under LogPaths), and counted; the rest of the image keeps serving. Each open file detects sequential reading and
// asks the image to prefetch ahead of the reader, and stops as soon as the reads turn random.
//
// Mounting (mount points, read_ahead_kb, unmount) is package mount's job.
package fs

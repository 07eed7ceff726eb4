// Package blockdev serves a block device as one file through FUSE and mounts a kernel
// filesystem (ext4 or xfs) on it through a loop device, so that applications get full POSIX
// semantics from a kernel filesystem while encfs stays a block layer.
//
// The stack, top to bottom:
//
//	application -> ext4/xfs -> /dev/loopN -> FUSE file <tmp>/encfs-blockdev-*/device -> Device
//
// # Flushes
//
// The filesystem's cache flushes (a journal commit, an application's fsync) reach the loop
// device as REQ_PREFLUSH (and FUA writes, which the block layer turns into a write and a
// flush, since a loop device does not do FUA), and the loop driver answers them with fsync on
// its backing file: a FUSE FSYNC, which blockdev turns into Device.Flush, the commit point.
// FUSE FLUSH (a close of the file) flushes too. A failing Device answers EIO; the filesystem
// sees an I/O error on that read, write or fsync (ext4 aborts its journal on a failed commit).
//
// # Caching
//
// The loop device runs in direct-I/O mode (LOOP_CONFIGURE with LO_FLAGS_DIRECT_IO and
// 4096-byte logical blocks) and the FUSE file is opened with FOPEN_DIRECT_IO, so every page
// is cached once, by the filesystem on top; neither the loop device nor FUSE keeps a second
// copy. Kernels that refuse direct I/O on the file fall back to a buffered loop device
// (Mounted.DirectIO says which). FOPEN_PARALLEL_DIRECT_WRITES keeps the loop device's
// concurrent writes from being serialised on the file's inode lock, and FUSE's asynchronous
// direct I/O (CAP_ASYNC_DIO) lets the loop device's requests reach the daemon concurrently:
// without it each waits for the one before. BenchmarkLoop measures both modes over a
// FileDevice (2 shared vCPUs, so only the ratio means much): random 4 KiB writes at queue
// depth 16 ran at about 26,000 IOPS in direct-I/O mode against 6,800 buffered, random reads
// at 55,000 against 13,000; sequential 1 MiB writes at 860 MB/s in both.
//
// # Memory
//
// A loop device over a FUSE file can deadlock: when memory is short, the kernel frees it by
// writing dirty pages of the filesystem back through the loop device, which waits for this
// process; if this process in turn waits for memory, neither moves. blockdev therefore
//   - marks every thread of the process PR_SET_IO_FLUSHER (when the binary is built without
//     cgo and runs with CAP_SYS_RESOURCE, as the sidecar does), so that its allocations never
//     wait on writeback; and
//   - keeps its own write path allocation-free: written data goes from go-fuse's pooled
//     request buffer to Device.WriteAt as it is, and reads fill go-fuse's reply buffer.
//
// A Device must do its share: its WriteAt and Flush should work in memory allocated ahead
// (pooled buffers), as volume.Volume does. Behaviour under a cgroup memory limit is not tested.
//
// # Teardown
//
// Mounted.Unmount syncs and unmounts the filesystem, detaches the loop device, flushes the
// Device and unmounts the FUSE filesystem, in that order. A process killed before that leaves
// a mounted filesystem on a loop device backed by a dead FUSE file (every access fails with
// EIO); CleanStale and scripts/cleanup.sh remove those.
package blockdev

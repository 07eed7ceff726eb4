// Package voltest tests read-write volumes end to end with the real encfs binary, real FUSE,
// loop devices and ext4: fio with verification across remounts, SIGKILL of the daemon at
// random points of write-heavy and metadata-heavy work (on local files, and on a page blob
// in Azurite through the write-back cache) followed by a journal replay and e2fsck, tampering with the store under a mount, a second writer, storage faults during a
// flush, and volumes mounted by `encfs mount --config` beside images. It has no code of its
// own: only tests.
package voltest

// Package image implements the encfs image format, version 2 (docs/FORMAT.md): the
// authenticated header and its keyslots, the key schedule, the integrity tree, the encrypted
// file-tree index, and a verifying reader over any Source. Nothing unverified leaves this
// package: every content unit (8 KiB, two XTS blocks) is checked whole against the integrity
// tree, whose root the header MAC authenticates, before any of it is decrypted and returned.
//
// The package knows nothing of storage: Source (source.go) is the interface it reads through,
// with each capability it uses (chunks, views, invalidation, prefetch) as a method, and Plain
// adapts a source that has none of them. Opening a path or URL happens above it (blobio); its
// only dependencies outside the standard library are crypto (TestDependencies).
//
// Writing images is done by package pack, through Writer.
package image

// Package image implements the encfs image format, version 1 (docs/FORMAT.md): the
// authenticated header and its keyslots, the key schedule, the integrity tree, the encrypted
// file-tree index, and a verifying reader over any blobio.Source. Nothing unverified leaves
// this package: every content block is checked against the integrity tree, whose root the
// header MAC authenticates, before it is decrypted and returned.
//
// Writing images is done by package pack, through Writer.
package image

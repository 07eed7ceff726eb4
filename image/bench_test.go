package image

import (
	"crypto/sha256"
	"testing"
)

// benchSetup returns working keys, the leaf hasher and one encrypted block with its leaf.
func benchSetup(b *testing.B) (*imageKeys, *leafHasher, []byte, [][]byte) {
	master := make([]byte, MasterKeySize)
	var salt [32]byte
	k, err := deriveKeys(master, salt[:])
	if err != nil {
		b.Fatal(err)
	}
	lh := newLeafHasher(&salt)
	blk := make([]byte, BlockSize)
	k.xts.Encrypt(blk, blk, 7)
	leaf := make([]byte, BlockSize)
	copy(leaf[7*leafSize:], lh.get().leafOf(blk))
	return k, lh, blk, [][]byte{leaf}
}

// BenchmarkDecryptVerify4K is the read path's per-block work: hash the block and compare with
// its (cached) leaf, then decrypt it in place. Decryption is in place, so each iteration
// first restores the ciphertext with one 4 KiB copy, which is counted.
func BenchmarkDecryptVerify4K(b *testing.B) {
	k, lh, ct, leaves := benchSetup(b)
	im := &Image{keys: k, leaves: lh}
	work := make([]byte, BlockSize)
	b.SetBytes(BlockSize)
	b.ReportAllocs()
	for b.Loop() {
		copy(work, ct)
		if err := im.verifyDecrypt(work, work, 7, 7, leaves); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLeafBLAKE3_4K and BenchmarkLeafSHA256_4K compare the two candidate leaf functions
// (docs/FORMAT.md, "Why BLAKE3 leaves").
func BenchmarkLeafBLAKE3_4K(b *testing.B) {
	_, lh, ct, _ := benchSetup(b)
	ls := lh.get()
	b.SetBytes(BlockSize)
	b.ReportAllocs()
	for b.Loop() {
		ls.leafOf(ct)
	}
}

func BenchmarkLeafSHA256_4K(b *testing.B) {
	_, _, ct, _ := benchSetup(b)
	var salt [32]byte
	b.SetBytes(BlockSize)
	b.ReportAllocs()
	h := sha256.New()
	var out [32]byte
	for b.Loop() {
		h.Reset()
		h.Write(salt[:])
		h.Write(ct)
		h.Sum(out[:0])
	}
}

// BenchmarkVerifyDecrypt1M measures one 1 MiB read as the FUSE read path issues it, minus the
// source: 256 blocks verified and decrypted across the workers.
func BenchmarkVerifyDecrypt1M(b *testing.B) {
	k, lh, _, _ := benchSetup(b)
	const n = 256
	ct := make([]byte, n*BlockSize)
	leaves := [][]byte{make([]byte, BlockSize), make([]byte, BlockSize)}
	ls := lh.get()
	for i := 0; i < n; i++ {
		blk := ct[i*BlockSize : (i+1)*BlockSize]
		k.xts.Encrypt(blk, blk, uint64(i))
		copy(leaves[i/leavesPerBlock][(i%leavesPerBlock)*leafSize:], ls.leafOf(blk))
	}
	im := &Image{keys: k, leaves: lh, workers: 2}
	work := make([]byte, len(ct))
	b.SetBytes(int64(len(ct)))
	for b.Loop() {
		copy(work, ct)
		if err := im.verifyDecryptParallel(work, work, 0, leaves, 2); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyDecryptCold is BenchmarkVerifyDecrypt1M on one core with the ciphertext out of
// the CPU caches, as it is on the read path (a disk or a socket wrote it): each 1 MiB read
// comes from the next MiB of a 256 MiB image region. "inplace" decrypts where the ciphertext
// lies, as a local mount does in the request buffer; "separate" decrypts into another buffer,
// as a remote mount does from its chunk cache. The hot benchmarks above reuse one block and
// miss this memory cost.
func BenchmarkVerifyDecryptCold(b *testing.B) {
	k, lh, _, _ := benchSetup(b)
	const region, read = 256 << 20, 1 << 20
	pristine := make([]byte, region)
	leaves := make([][]byte, region/BlockSize/leavesPerBlock)
	ls := lh.get()
	for i := range uint64(region / BlockSize) {
		blk := pristine[i*BlockSize : (i+1)*BlockSize]
		k.xts.Encrypt(blk, blk, i)
		if i%leavesPerBlock == 0 {
			leaves[i/leavesPerBlock] = make([]byte, BlockSize)
		}
		copy(leaves[i/leavesPerBlock][(i%leavesPerBlock)*leafSize:], ls.leafOf(blk))
	}
	im := &Image{keys: k, leaves: lh}
	for _, inPlace := range []bool{false, true} {
		name, ct, dst := "separate", pristine, make([]byte, read)
		if inPlace {
			name, ct = "inplace", make([]byte, region)
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(read)
			b.ReportAllocs()
			for off := 0; b.Loop(); off = (off + read) % region {
				if inPlace {
					if off == 0 { // restore the ciphertext, untimed
						b.StopTimer()
						copy(ct, pristine)
						b.StartTimer()
					}
					dst = ct[off : off+read]
				}
				first := uint64(off / BlockSize)
				if err := im.verifyDecrypt(dst, ct[off:off+read], first, first, leaves[first/leavesPerBlock:]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

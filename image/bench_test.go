package image

import (
	"crypto/sha256"
	"testing"
)

// benchSetup returns working keys and one encrypted, tagged block with its leaf.
func benchSetup(b *testing.B) (*imageKeys, []byte, [][]byte) {
	master := make([]byte, MasterKeySize)
	k, err := deriveKeys(master, make([]byte, 32))
	if err != nil {
		b.Fatal(err)
	}
	blk := make([]byte, BlockSize)
	k.xts.Encrypt(blk, blk, 7)
	leaf := make([]byte, BlockSize)
	copy(leaf[7*tagSize:], getTagger(k.blockMAC).tagOf(7, blk))
	return k, blk, [][]byte{leaf}
}

// BenchmarkDecryptVerify4K is the read path's per-block work: check the block's GMAC tag
// against its (cached) leaf, then decrypt it in place. Decryption is in place, so each
// iteration first restores the ciphertext with one 4 KiB copy, which is counted.
func BenchmarkDecryptVerify4K(b *testing.B) {
	k, ct, leaves := benchSetup(b)
	im := &Image{keys: k}
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

// BenchmarkLeafGMAC4K and BenchmarkLeafSHA256_4K compare the two candidate leaf functions
// (docs/FORMAT.md, "Why GMAC leaves").
func BenchmarkLeafGMAC4K(b *testing.B) {
	k, ct, _ := benchSetup(b)
	tg := getTagger(k.blockMAC)
	b.SetBytes(BlockSize)
	b.ReportAllocs()
	for i := uint64(0); b.Loop(); i++ {
		tg.tagOf(i, ct)
	}
}

func BenchmarkLeafSHA256_4K(b *testing.B) {
	_, ct, _ := benchSetup(b)
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
	k, _, _ := benchSetup(b)
	const n = 256
	ct := make([]byte, n*BlockSize)
	leaf := make([]byte, BlockSize)
	for i := 0; i < n; i++ {
		blk := ct[i*BlockSize : (i+1)*BlockSize]
		k.xts.Encrypt(blk, blk, uint64(i))
		copy(leaf[i*tagSize:], getTagger(k.blockMAC).tagOf(uint64(i), blk))
	}
	im := &Image{keys: k, workers: 2}
	work := make([]byte, len(ct))
	b.SetBytes(int64(len(ct)))
	for b.Loop() {
		copy(work, ct)
		if err := im.verifyDecryptParallel(work, work, 0, [][]byte{leaf}, 2); err != nil {
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
	k, _, _ := benchSetup(b)
	const region, read = 256 << 20, 1 << 20
	pristine := make([]byte, region)
	leaves := make([][]byte, region/BlockSize/tagsPerBlock)
	tg := getTagger(k.blockMAC)
	for i := range uint64(region / BlockSize) {
		blk := pristine[i*BlockSize : (i+1)*BlockSize]
		k.xts.Encrypt(blk, blk, i)
		if i%tagsPerBlock == 0 {
			leaves[i/tagsPerBlock] = make([]byte, BlockSize)
		}
		copy(leaves[i/tagsPerBlock][(i%tagsPerBlock)*tagSize:], tg.tagOf(i, blk))
	}
	im := &Image{keys: k}
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
				if err := im.verifyDecrypt(dst, ct[off:off+read], first, first, leaves[first/tagsPerBlock:]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

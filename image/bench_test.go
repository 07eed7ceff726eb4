package image

import (
	"crypto/sha256"
	"fmt"
	"testing"
)

// benchSetup returns working keys, the leaf hasher and one encrypted unit (unit 7, content
// blocks 28..31) with the level-0 tree block holding its leaf.
func benchSetup(b *testing.B) (*imageKeys, *leafHasher, []byte, [][]byte) {
	master := make([]byte, MasterKeySize)
	var salt [32]byte
	k, err := deriveKeys(master, salt[:])
	if err != nil {
		b.Fatal(err)
	}
	lh := newLeafHasher(&salt)
	unit := make([]byte, UnitSize)
	for i := 0; i < BlocksPerUnit; i++ {
		blk := unit[i*BlockSize : (i+1)*BlockSize]
		k.xts.Encrypt(blk, blk, 7*BlocksPerUnit+uint64(i))
	}
	leaf := make([]byte, BlockSize)
	copy(leaf[7*leafSize:], lh.get().leafOf(unit))
	return k, lh, unit, [][]byte{leaf}
}

// BenchmarkDecryptVerify4K is the read path's per-unit work, in MB/s of verified and
// decrypted content: hash one 8 KiB verification unit (two 4 KiB blocks) and compare with its
// (cached) leaf, then decrypt its blocks in place. The name is kept from the form of the
// format with one leaf per 4 KiB block, against which the speed goal of issue 15 was stated.
// Decryption is in place, so each iteration first restores the ciphertext with one
// unit-sized copy, which is counted.
func BenchmarkDecryptVerify4K(b *testing.B) {
	k, lh, ct, leaves := benchSetup(b)
	im := &Image{keys: k, leaves: lh}
	work := make([]byte, UnitSize)
	b.SetBytes(UnitSize)
	b.ReportAllocs()
	for b.Loop() {
		copy(work, ct)
		if err := im.verifyDecrypt(work, work, 7, 7, leaves); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecryptVerify4KRandomRead is the CPU work of a small random read: 4 KiB (the last
// block) out of a unit that is not cached. The whole unit is hashed and one block decrypted
// into the caller's buffer; MB/s counts the 4 KiB returned.
func BenchmarkDecryptVerify4KRandomRead(b *testing.B) {
	k, lh, ct, leaves := benchSetup(b)
	im := &Image{keys: k, leaves: lh}
	dst := make([]byte, BlockSize)
	var tmp [BlockSize]byte
	b.SetBytes(BlockSize)
	b.ReportAllocs()
	for b.Loop() {
		if err := im.verifyDecryptSpan(dst, ct, 7, UnitSize-BlockSize, leaves, &tmp); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLeafBLAKE3_4K, _8K and _16K measure the leaf function on one block and on the two
// candidate unit sizes (inputs past the unit are zeros); BenchmarkLeafSHA256_4K is the other candidate leaf function
// (docs/FORMAT.md, "Why BLAKE3 leaves").
func BenchmarkLeafBLAKE3_4K(b *testing.B)  { benchLeafBLAKE3(b, 4<<10) }
func BenchmarkLeafBLAKE3_8K(b *testing.B)  { benchLeafBLAKE3(b, 8<<10) }
func BenchmarkLeafBLAKE3_16K(b *testing.B) { benchLeafBLAKE3(b, 16<<10) }

func benchLeafBLAKE3(b *testing.B, n int) {
	_, lh, unit, _ := benchSetup(b)
	ct := make([]byte, 16<<10)
	copy(ct, unit)
	ls := lh.get()
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		ls.leafOf(ct[:n])
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
		h.Write(ct[:BlockSize])
		h.Sum(out[:0])
	}
}

// BenchmarkVerifyDecrypt1M measures one 1 MiB read as the FUSE read path issues it, minus the
// source: 64 units verified and decrypted across the workers.
func BenchmarkVerifyDecrypt1M(b *testing.B) {
	k, lh, _, _ := benchSetup(b)
	const n = 64
	ct := make([]byte, n*UnitSize)
	leaves := [][]byte{make([]byte, BlockSize)}
	ls := lh.get()
	for u := 0; u < n; u++ {
		unit := ct[u*UnitSize : (u+1)*UnitSize]
		for i := 0; i < BlocksPerUnit; i++ {
			blk := unit[i*BlockSize : (i+1)*BlockSize]
			k.xts.Encrypt(blk, blk, uint64(u*BlocksPerUnit+i))
		}
		copy(leaves[0][u*leafSize:], ls.leafOf(unit))
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
// as a remote mount does from its chunk cache. The hot benchmarks above reuse one unit and
// miss this memory cost.
func BenchmarkVerifyDecryptCold(b *testing.B) {
	k, lh, _, _ := benchSetup(b)
	const region, read = 256 << 20, 1 << 20
	pristine := make([]byte, region)
	leaves := make([][]byte, region/UnitSize/leavesPerBlock)
	ls := lh.get()
	for u := range uint64(region / UnitSize) {
		unit := pristine[u*UnitSize : (u+1)*UnitSize]
		for i := range uint64(BlocksPerUnit) {
			blk := unit[i*BlockSize : (i+1)*BlockSize]
			k.xts.Encrypt(blk, blk, u*BlocksPerUnit+i)
		}
		if u%leavesPerBlock == 0 {
			leaves[u/leavesPerBlock] = make([]byte, BlockSize)
		}
		copy(leaves[u/leavesPerBlock][(u%leavesPerBlock)*leafSize:], ls.leafOf(unit))
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
				first := uint64(off / UnitSize)
				if err := im.verifyDecrypt(dst, ct[off:off+read], first, first, leaves[first/leavesPerBlock:]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkUnitSizes compares the candidate verification unit sizes (docs/FORMAT.md, "Why
// BLAKE3 leaves") on the work of the read path, built from the same parts as verifyDecrypt:
// "whole" hashes one unit and decrypts all its blocks (MB/s of the unit, what
// BenchmarkDecryptVerify4K measures for the chosen size); "4K" hashes one unit and decrypts
// one block (MB/s of the 4 KiB returned, a small random read).
func BenchmarkUnitSizes(b *testing.B) {
	k, lh, _, _ := benchSetup(b)
	ct := make([]byte, 16<<10)
	ls := lh.get()
	for _, size := range []int{4 << 10, 8 << 10, 16 << 10} {
		for _, whole := range []bool{true, false} {
			name, n := fmt.Sprintf("unit=%dK/read=4K", size>>10), BlockSize
			if whole {
				name, n = fmt.Sprintf("unit=%dK/read=unit", size>>10), size
			}
			b.Run(name, func(b *testing.B) {
				dst := make([]byte, size)
				b.SetBytes(int64(n))
				for b.Loop() {
					ls.leafOf(ct[:size])
					for i := 0; i < n; i += BlockSize {
						k.xts.Decrypt(dst[i:i+BlockSize], ct[i:i+BlockSize], uint64(i/BlockSize))
					}
				}
			})
		}
	}
}

package image

import (
	"crypto/sha256"
	"sync"

	"github.com/zeebo/blake3"
)

// Integrity tree geometry; docs/FORMAT.md, "Integrity tree".
//
// Level 0 holds one 32-byte leaf hash per verification unit (UnitSize bytes, BlocksPerUnit
// content blocks), 128 per tree block: the BLAKE3 keyed hash of the unit's ciphertext with the
// image salt as key. Every higher level holds the
// SHA-256 (salted) of each block of the level below, 128 per tree block, up to a level of one
// block, whose hash is the root in the header. Levels are stored from level 0 upwards. Both
// functions are keyless in the cryptographic sense (the salt is public), so the root is a
// binding commitment to every ciphertext byte for everyone, key holders included.
const (
	leafSize       = 32
	hashSize       = sha256.Size
	leavesPerBlock = BlockSize / leafSize // 128, so 1 MiB of content per level-0 block
	hashesPerBlock = BlockSize / hashSize // 128
)

type treeLevel struct {
	first uint64 // index of the level's first block in the tree region
	count uint64
}

type treeGeometry struct {
	levels      []treeLevel // levels[0] are the leaf hashes
	totalBlocks uint64
}

func ceilDiv(a, b uint64) uint64 { return (a + b - 1) / b }

func newTreeGeometry(contentUnits uint64) treeGeometry {
	var g treeGeometry
	n := ceilDiv(contentUnits, leavesPerBlock)
	for {
		g.levels = append(g.levels, treeLevel{first: g.totalBlocks, count: n})
		g.totalBlocks += n
		if n == 1 {
			return g
		}
		n = ceilDiv(n, hashesPerBlock)
	}
}

func (g *treeGeometry) top() int { return len(g.levels) - 1 }

// leafHasher computes the leaf hashes of one image's ciphertext units. BLAKE3 hashers keyed
// with the salt are pooled: keying one costs more than hashing a block's first chunk.
type leafHasher struct {
	salt [32]byte
	pool sync.Pool
}

func newLeafHasher(salt *[32]byte) *leafHasher {
	l := &leafHasher{salt: *salt}
	l.pool.New = func() any {
		h, err := blake3.NewKeyed(l.salt[:])
		if err != nil {
			panic(err) // only for a key that is not 32 bytes
		}
		return &leafState{h: h}
	}
	return l
}

// leafState is one keyed hasher with its output buffer, taken from the pool by one goroutine.
type leafState struct {
	h   *blake3.Hasher
	out [leafSize]byte
}

func (l *leafHasher) get() *leafState  { return l.pool.Get().(*leafState) }
func (l *leafHasher) put(s *leafState) { l.pool.Put(s) }

// leafOf returns the leaf hash of one ciphertext unit; the slice is valid until the next call.
func (s *leafState) leafOf(ciphertext []byte) []byte {
	s.h.Reset()
	s.h.Write(ciphertext)
	s.h.Sum(s.out[:0])
	return s.out[:]
}

// nodeHash is the salted hash of one tree block.
func nodeHash(salt *[32]byte, treeBlock []byte) [hashSize]byte {
	h := sha256.New()
	h.Write(salt[:])
	h.Write(treeBlock)
	var out [hashSize]byte
	h.Sum(out[:0])
	return out
}

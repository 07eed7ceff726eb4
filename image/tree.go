package image

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"

	"github.com/encfs/encfs/gmac"
)

// Integrity tree geometry; docs/FORMAT.md, "Integrity tree".
//
// Level 0 holds one 16-byte GMAC tag per content block, 256 per tree block. Every higher level
// holds the SHA-256 (salted) of each block of the level below, 128 per tree block, up to a level
// of one block, whose hash is the root in the header. Levels are stored from level 0 upwards.
const (
	tagSize        = 16
	hashSize       = sha256.Size
	tagsPerBlock   = BlockSize / tagSize  // 256
	hashesPerBlock = BlockSize / hashSize // 128
)

type treeLevel struct {
	first uint64 // index of the level's first block in the tree region
	count uint64
}

type treeGeometry struct {
	levels      []treeLevel // levels[0] are the leaf tags
	totalBlocks uint64
}

func ceilDiv(a, b uint64) uint64 { return (a + b - 1) / b }

func newTreeGeometry(contentBlocks uint64) treeGeometry {
	var g treeGeometry
	n := ceilDiv(contentBlocks, tagsPerBlock)
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

// tagger computes GMAC tags of ciphertext content blocks. The nonce is the block number, so a
// block moved to another position fails its tag; the key is per image, so a block from another
// image fails too. A tagger holds the nonce and tag buffers, which would otherwise escape
// to the heap for every block (the fallback path passes them through cipher.AEAD); it is not
// safe for concurrent use.
type tagger struct {
	mac   *gmac.MAC
	nonce [gmac.NonceSize]byte
	tag   [gmac.TagSize]byte
}

var taggers = sync.Pool{New: func() any { return new(tagger) }}

// getTagger takes a tagger for mac from the pool; put it back with taggers.Put.
func getTagger(mac *gmac.MAC) *tagger {
	t := taggers.Get().(*tagger)
	t.mac = mac
	return t
}

// tagOf returns the tag of one ciphertext block; the slice is valid until the next call.
func (t *tagger) tagOf(block uint64, ciphertext []byte) []byte {
	binary.LittleEndian.PutUint64(t.nonce[:], block)
	t.mac.Tag(&t.tag, &t.nonce, ciphertext)
	return t.tag[:]
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

package volume

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"math/bits"
	"unicode/utf8"

	"github.com/encfs/encfs/internal/keyslot"
)

// Format constants of version 1; docs/VOLUME.md specifies each.
const (
	Magic       = "ENCFSVOL"
	Version     = 1
	BlockSize   = 4096
	MaxKeyslots = 8
	// MaxBlocks bounds the volume size (4 PiB) so that the tree has at most maxLevels levels
	// and no offset overflows.
	MaxBlocks = 1 << 40
	// MaxLabel is the longest label in bytes.
	MaxLabel = 64

	CipherAES256GCM = 1 // AES-256-GCM, 128-bit nonce = 64-bit write counter || 64-bit session id
	// MaxCounter bounds the write counter, which entries store in 7 bytes.
	MaxCounter = 1 << 56

	headerCopySize = 4096
	headerArea     = 2 * headerCopySize // two alternating header copies
	fanout         = 128                // entries per tree node
	entrySize      = 32
	tagSize        = 16
	sessionSize    = 8
	nonceSize      = 8 + sessionSize
	maxLevels      = 6 // fanout^6 = 2^42 >= MaxBlocks
	upperSlots     = maxLevels - 1
	minExtent      = fanout
	maxExtent      = 1024

	offVersion   = 8
	offCipher    = 10
	offNSlots    = 12
	offReserved  = 14
	offBlockSize = 16
	offExtent    = 20
	offUUID      = 24
	offGen       = 40
	offCreated   = 48
	offSalt      = 56
	offBlocks    = 88
	offLimit     = 96
	offRoot      = 104
	offLabel     = offRoot + entrySize // 136
	offKeyslots  = offLabel + MaxLabel // 200
	offMAC       = offKeyslots + MaxKeyslots*keyslot.Size
	headerUsed   = offMAC + sha256.Size
)

// entry locates and authenticates one sealed 4 KiB unit (a data block or a tree node): the
// write counter and session id it was sealed with (together its nonce; counter 0 = never
// written, reads as zeros), which of its two physical slots holds it, and its GCM tag.
type entry struct {
	counter uint64 // below MaxCounter
	slot    uint8
	session [sessionSize]byte
	tag     [tagSize]byte
}

func (e *entry) put(b []byte) {
	binary.LittleEndian.PutUint64(b[0:8], e.counter) // 7 bytes: the 8th is the slot
	b[7] = e.slot
	copy(b[8:16], e.session[:])
	copy(b[16:32], e.tag[:])
}

func parseEntry(b []byte) (entry, error) {
	var e entry
	e.counter = binary.LittleEndian.Uint64(b[0:8]) & (MaxCounter - 1)
	e.slot = b[7]
	copy(e.session[:], b[8:16])
	copy(e.tag[:], b[16:32])
	if e.slot > 1 {
		return e, fmt.Errorf("slot %d is neither 0 nor 1", e.slot)
	}
	if e.counter == 0 && !allZero(b[0:32]) {
		return e, fmt.Errorf("an unwritten entry (counter 0) is not all zero")
	}
	return e, nil
}

// header is one decoded header copy.
type header struct {
	UUID         [16]byte
	Generation   uint64
	Created      int64 // Unix seconds
	Salt         [32]byte
	Blocks       uint64 // volume size in 4 KiB blocks
	ExtentBlocks uint32 // data blocks per extent, see geometry
	CounterLimit uint64 // write counters below this are reserved (may have been used)
	Root         entry
	Label        string
	Keyslots     []keyslot.Slot
	MAC          [32]byte
}

// marshal encodes the header into headerCopySize bytes, MAC as is (see seal).
func (h *header) marshal() []byte {
	b := make([]byte, headerCopySize)
	h.marshalTo(b)
	return b
}

// marshalTo encodes h into b (headerCopySize bytes, all of which it sets).
func (h *header) marshalTo(b []byte) {
	clear(b[:headerCopySize])
	le := binary.LittleEndian
	copy(b, Magic)
	le.PutUint16(b[offVersion:], Version)
	le.PutUint16(b[offCipher:], CipherAES256GCM)
	le.PutUint16(b[offNSlots:], uint16(len(h.Keyslots)))
	le.PutUint32(b[offBlockSize:], BlockSize)
	le.PutUint32(b[offExtent:], h.ExtentBlocks)
	copy(b[offUUID:], h.UUID[:])
	le.PutUint64(b[offGen:], h.Generation)
	le.PutUint64(b[offCreated:], uint64(h.Created))
	copy(b[offSalt:], h.Salt[:])
	le.PutUint64(b[offBlocks:], h.Blocks)
	le.PutUint64(b[offLimit:], h.CounterLimit)
	h.Root.put(b[offRoot:])
	copy(b[offLabel:offKeyslots], h.Label)
	for i := range h.Keyslots {
		h.Keyslots[i].Marshal(b[offKeyslots+i*keyslot.Size:])
	}
	copy(b[offMAC:headerUsed], h.MAC[:])
}

func headerMAC(macKey, encoded []byte) [32]byte {
	m := hmac.New(sha256.New, macKey)
	m.Write(encoded[:offMAC])
	var out [32]byte
	m.Sum(out[:0])
	return out
}

// seal sets the MAC for macKey and returns the encoded header.
func (h *header) seal(macKey []byte) []byte {
	b := h.marshal()
	h.MAC = headerMAC(macKey, b)
	copy(b[offMAC:], h.MAC[:])
	return b
}

// headerSealer seals the headers of an open volume into one buffer with one HMAC state, so
// that a commit allocates nothing. Its user serialises the calls (Volume.hdrMu).
type headerSealer struct {
	mac hash.Hash
	buf []byte
	sum [sha256.Size]byte
}

func newHeaderSealer(macKey []byte) *headerSealer {
	return &headerSealer{mac: hmac.New(sha256.New, macKey), buf: make([]byte, headerCopySize)}
}

// seal sets h's MAC and returns its encoding, valid until the next call.
func (hs *headerSealer) seal(h *header) []byte {
	h.marshalTo(hs.buf)
	hs.mac.Reset()
	hs.mac.Write(hs.buf[:offMAC])
	copy(h.MAC[:], hs.mac.Sum(hs.sum[:0]))
	copy(hs.buf[offMAC:], h.MAC[:])
	return hs.buf
}

func (h *header) checkMAC(macKey []byte) bool {
	want := headerMAC(macKey, h.marshal())
	return hmac.Equal(want[:], h.MAC[:])
}

// parseHeader decodes and checks the structure of one header copy; the MAC needs the master key
// and is checked by authenticate. Every error is a *FormatError.
func parseHeader(b []byte) (*header, error) {
	if len(b) < len(Magic) || !bytes.Equal(b[:len(Magic)], []byte(Magic)) {
		return nil, formatErr(ErrNotVolume, "no encfs volume magic %q", Magic)
	}
	if len(b) < headerCopySize {
		return nil, formatErr(ErrCorrupt, "header is %d bytes, want %d", len(b), headerCopySize)
	}
	le := binary.LittleEndian
	if v := le.Uint16(b[offVersion:]); v != Version {
		return nil, formatErr(ErrUnsupportedVersion, "volume format version %d; this encfs reads version %d", v, Version)
	}
	if c := le.Uint16(b[offCipher:]); c != CipherAES256GCM {
		return nil, formatErr(ErrUnsupportedVersion, "cipher id %d is not supported (want %d, AES-256-GCM)", c, CipherAES256GCM)
	}
	if bs := le.Uint32(b[offBlockSize:]); bs != BlockSize {
		return nil, formatErr(ErrCorrupt, "block size %d, want %d", bs, BlockSize)
	}
	if le.Uint16(b[offReserved:]) != 0 {
		return nil, formatErr(ErrCorrupt, "reserved bytes %d..%d are not zero", offReserved, offReserved+2)
	}
	h := &header{
		ExtentBlocks: le.Uint32(b[offExtent:]),
		Generation:   le.Uint64(b[offGen:]),
		Created:      int64(le.Uint64(b[offCreated:])),
		Blocks:       le.Uint64(b[offBlocks:]),
		CounterLimit: le.Uint64(b[offLimit:]),
	}
	copy(h.UUID[:], b[offUUID:])
	copy(h.Salt[:], b[offSalt:])
	copy(h.MAC[:], b[offMAC:headerUsed])
	e := h.ExtentBlocks
	if e < minExtent || e > maxExtent || e&(e-1) != 0 {
		return nil, formatErr(ErrCorrupt, "extent of %d blocks, want a power of two from %d to %d", e, minExtent, maxExtent)
	}
	if h.Generation == 0 {
		return nil, formatErr(ErrCorrupt, "generation 0; a volume's generations start at 1")
	}
	if h.Blocks == 0 || h.Blocks > MaxBlocks {
		return nil, formatErr(ErrCorrupt, "block count %d out of range 1..%d", h.Blocks, uint64(MaxBlocks))
	}
	if h.CounterLimit == 0 || h.CounterLimit >= MaxCounter {
		return nil, formatErr(ErrCorrupt, "counter limit %d out of range", h.CounterLimit)
	}
	root, err := parseEntry(b[offRoot:])
	if err != nil {
		return nil, formatErr(ErrCorrupt, "root entry: %v", err)
	}
	if root.counter >= h.CounterLimit {
		return nil, formatErr(ErrCorrupt, "root counter %d is not below the counter limit %d", root.counter, h.CounterLimit)
	}
	h.Root = root
	label := b[offLabel:offKeyslots]
	n := bytes.IndexByte(label, 0)
	if n < 0 {
		n = len(label)
	}
	if !allZero(label[n:]) || !utf8.Valid(label[:n]) {
		return nil, formatErr(ErrCorrupt, "label is not zero-padded UTF-8")
	}
	h.Label = string(label[:n])
	nslots := int(le.Uint16(b[offNSlots:]))
	if nslots < 1 || nslots > MaxKeyslots {
		return nil, formatErr(ErrCorrupt, "keyslot count %d out of range 1..%d", nslots, MaxKeyslots)
	}
	for i := range MaxKeyslots {
		s := b[offKeyslots+i*keyslot.Size : offKeyslots+(i+1)*keyslot.Size]
		if i >= nslots {
			if !allZero(s) {
				return nil, formatErr(ErrCorrupt, "unused keyslot %d is not zero", i)
			}
			continue
		}
		ks, err := keyslot.Parse(s)
		if err != nil {
			return nil, formatErr(ErrCorrupt, "keyslot %d: %v", i, err)
		}
		h.Keyslots = append(h.Keyslots, ks)
	}
	if !allZero(b[headerUsed:headerCopySize]) {
		return nil, formatErr(ErrCorrupt, "reserved header bytes %d..%d are not zero", headerUsed, headerCopySize)
	}
	return h, nil
}

// geometry places data blocks and tree nodes in the store. The store is a header area followed
// by groups; group g holds the two slots of data blocks g*E .. g*E+E-1 as two contiguous runs
// (slot 0 run, then slot 1 run, so that sequential writes stay sequential in storage), then both
// slots of the E/128 leaf nodes of those blocks, then both slots of the one node of each upper
// level (2..6) whose range starts in this group.
type geometry struct {
	blocks uint64 // volume size in blocks
	extent uint64 // E, data blocks per group
	levels int    // tree levels; level `levels` has exactly one node, the root
}

func newGeometry(blocks uint64, extent uint32) geometry {
	g := geometry{blocks: blocks, extent: uint64(extent), levels: 1}
	for span := uint64(fanout); span < blocks; span *= fanout {
		g.levels++
	}
	return g
}

// extentFor is the extent a new volume of n blocks uses: 1024 blocks (4 MiB per slot run, the
// largest page-blob write), less for tiny volumes so they stay small.
func extentFor(n uint64) uint32 {
	if n >= maxExtent {
		return maxExtent
	}
	e := uint64(1) << bits.Len64(n-1)
	return uint32(max(e, minExtent))
}

func (g geometry) leavesPerGroup() uint64 { return g.extent / fanout }

func (g geometry) groupBlocks() uint64 {
	return 2*g.extent + 2*g.leavesPerGroup() + 2*upperSlots
}

func (g geometry) groups() uint64 { return (g.blocks + g.extent - 1) / g.extent }

// storeSize is the smallest store that holds the volume.
func (g geometry) storeSize() int64 {
	return headerArea + int64(g.groups()*g.groupBlocks())*BlockSize
}

func (g geometry) groupBase(group uint64) int64 {
	return headerArea + int64(group*g.groupBlocks())*BlockSize
}

// dataOffset is where slot s of data block i lives.
func (g geometry) dataOffset(i uint64, s uint8) int64 {
	return g.groupBase(i/g.extent) + int64(uint64(s)*g.extent+i%g.extent)*BlockSize
}

// nodeOffset is where slot s of tree node index of level (1 = leaves) lives.
func (g geometry) nodeOffset(level int, index uint64, s uint8) int64 {
	if level == 1 {
		lp := g.leavesPerGroup()
		return g.groupBase(index/lp) + int64(2*g.extent+uint64(s)*lp+index%lp)*BlockSize
	}
	first := index * span(level) // first data block under the node
	return g.groupBase(first/g.extent) + int64(2*g.extent+2*g.leavesPerGroup()+uint64(s)*upperSlots+uint64(level-2))*BlockSize
}

// span is how many data blocks one node of level covers.
func span(level int) uint64 {
	s := uint64(1)
	for range level {
		s *= fanout
	}
	return s
}

// nodesAt is the number of nodes of level.
func (g geometry) nodesAt(level int) uint64 {
	s := span(level)
	return (g.blocks + s - 1) / s
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

package image

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"github.com/encfs/encfs/internal/keyslot"
)

// Format constants of version 2. See docs/FORMAT.md, "Header".
const (
	Magic     = "ENCFSIMG"
	Version   = 2
	BlockSize = 4096 // the XTS data unit: content is encrypted block by block
	// UnitSize is the verification unit: one leaf hash covers the ciphertext of BlocksPerUnit
	// consecutive content blocks, so a read verifies whole units. 8 KiB by measurement
	// (docs/FORMAT.md, "Why BLAKE3 leaves"); fixed by the integrity id.
	UnitSize      = 8192
	BlocksPerUnit = UnitSize / BlockSize
	// HeaderSize is the header region: the header fields, then zero bytes up to the content,
	// which starts at HeaderSize so that units are aligned in the image file and never
	// straddle the aligned chunks a remote source fetches.
	HeaderSize  = UnitSize
	MaxKeyslots = 8

	CipherAES256XTS = 1 // AES-256-XTS, 4 KiB data units, tweak = content block number
	// IntegrityBLAKE3Units8K is the integrity construction: BLAKE3 keyed-hash leaves, one per
	// 8 KiB verification unit, under a salted SHA-256 tree. Id 2 was the same tree with one
	// leaf per 4 KiB block, from before any deployment; it is no longer read.
	IntegrityBLAKE3Units8K = 3
	integrityBlockLeaves   = 2
	SeriesSize             = 16
	SignerKeySize          = 32 // Ed25519 public key
	SignatureSize          = 64 // Ed25519 signature
	offSeries              = 160
	offSigner              = offSeries + SeriesSize    // 176
	offSignature           = offSigner + SignerKeySize // 208
	keyslotSize            = keyslot.Size
	offKeyslots            = offSignature + SignatureSize          // 272
	offMAC                 = offKeyslots + MaxKeyslots*keyslotSize // 912
	headerUsed             = offMAC + sha256.Size                  // 944
	contentOffset          = HeaderSize
	fingerprintSize        = keyslot.FingerprintSize
)

// Header is the decoded fixed-size header at offset 0 of every image.
type Header struct {
	UUID          [16]byte
	Generation    uint64
	Created       int64 // Unix seconds
	Salt          [32]byte
	ContentBlocks uint64 // encrypted content blocks: file data and index
	TreeOffset    uint64 // bytes from the start of the image
	TreeBlocks    uint64
	IndexBlock    uint64 // content block number of the index superblock
	Root          [32]byte
	// Series names the line of images that successive generations of one dataset form; it is
	// chosen at random at the first pack and kept by later ones, so that a minimum generation
	// means something only within its series.
	Series [SeriesSize]byte
	// Signer and Signature are the publisher's Ed25519 public key and its signature of
	// (series, generation, root, UUID); all zero when the image is unsigned.
	Signer    [SignerKeySize]byte
	Signature [SignatureSize]byte
	Keyslots  []Keyslot
	MAC       [32]byte
}

// Keyslot holds the image's master key wrapped by one release key.
type Keyslot = keyslot.Slot

// ContentUnits is the number of verification units of the content space.
func (h *Header) ContentUnits() uint64 { return h.ContentBlocks / BlocksPerUnit }

// ImageSize is the exact length of a well-formed image with this header.
func (h *Header) ImageSize() int64 { return int64(h.TreeOffset + h.TreeBlocks*BlockSize) }

// UUIDString formats the image UUID the usual 8-4-4-4-12 way.
func (h *Header) UUIDString() string {
	u := h.UUID[:]
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// SeriesHex is the series id in hex, as configurations name it.
func (h *Header) SeriesHex() string { return hex.EncodeToString(h.Series[:]) }

// Signed reports whether the header carries a publisher signature.
func (h *Header) Signed() bool { return !allZero(h.Signer[:]) }

// RootHex is the integrity root in hex, the value a deployment pins against rollback.
func (h *Header) RootHex() string { return hex.EncodeToString(h.Root[:]) }

// Marshal encodes the header into exactly HeaderSize bytes. The MAC field is written as is;
// call Seal to compute it.
func (h *Header) Marshal() []byte {
	b := make([]byte, HeaderSize)
	le := binary.LittleEndian
	copy(b[0:8], Magic)
	le.PutUint16(b[8:], Version)
	le.PutUint16(b[10:], CipherAES256XTS)
	le.PutUint16(b[12:], IntegrityBLAKE3Units8K)
	le.PutUint16(b[14:], uint16(len(h.Keyslots)))
	le.PutUint32(b[16:], BlockSize)
	le.PutUint32(b[20:], HeaderSize)
	copy(b[24:40], h.UUID[:])
	le.PutUint64(b[40:], h.Generation)
	le.PutUint64(b[48:], uint64(h.Created))
	copy(b[56:88], h.Salt[:])
	le.PutUint64(b[88:], contentOffset)
	le.PutUint64(b[96:], h.ContentBlocks)
	le.PutUint64(b[104:], h.TreeOffset)
	le.PutUint64(b[112:], h.TreeBlocks)
	le.PutUint64(b[120:], h.IndexBlock)
	copy(b[128:160], h.Root[:])
	copy(b[offSeries:offSigner], h.Series[:])
	copy(b[offSigner:offSignature], h.Signer[:])
	copy(b[offSignature:offKeyslots], h.Signature[:])
	for i, ks := range h.Keyslots {
		ks.Marshal(b[offKeyslots+i*keyslotSize:])
	}
	copy(b[offMAC:headerUsed], h.MAC[:])
	return b
}

// computeMAC returns HMAC-SHA256 over the authenticated part of an encoded header.
func computeMAC(macKey, encoded []byte) [32]byte {
	m := hmac.New(sha256.New, macKey)
	m.Write(encoded[:offMAC])
	var out [32]byte
	m.Sum(out[:0])
	return out
}

// Seal sets h.MAC for the given header MAC key.
func (h *Header) Seal(macKey []byte) {
	h.MAC = computeMAC(macKey, h.Marshal())
}

// checkMAC reports whether h.MAC is valid for macKey.
func (h *Header) checkMAC(macKey []byte) bool {
	want := computeMAC(macKey, h.Marshal())
	return hmac.Equal(want[:], h.MAC[:])
}

// ParseHeader decodes and checks the structure of a header. It does not check the MAC, which
// needs the master key (see Open). Every error is a *FormatError.
func ParseHeader(b []byte) (*Header, error) {
	if len(b) < len(Magic) || !bytes.Equal(b[:len(Magic)], []byte(Magic)) {
		return nil, formatErr(ErrNotImage, "no encfs magic at offset 0 (this is not an encfs image)")
	}
	// The version and the ids come first, so that an image of another format is named as such
	// even when it is shorter than this format's header region.
	if len(b) < 14 {
		return nil, formatErr(ErrTruncated, "header is %d bytes, want %d", len(b), HeaderSize)
	}
	le := binary.LittleEndian
	if v := le.Uint16(b[8:]); v != Version {
		if v == 1 {
			return nil, formatErr(ErrUnsupportedVersion, "format version 1, which this encfs no longer reads (its integrity root did not bind key holders): pack the source directory again")
		}
		return nil, formatErr(ErrUnsupportedVersion, "format version %d; this encfs reads version %d", v, Version)
	}
	if c := le.Uint16(b[10:]); c != CipherAES256XTS {
		return nil, formatErr(ErrUnsupportedVersion, "cipher id %d is not supported (want %d, AES-256-XTS)", c, CipherAES256XTS)
	}
	switch c := le.Uint16(b[12:]); c {
	case IntegrityBLAKE3Units8K:
	case integrityBlockLeaves:
		return nil, formatErr(ErrUnsupportedVersion, "integrity id %d (one leaf per 4 KiB block, a pre-release form of version 2) is no longer read: pack the source directory again", c)
	default:
		return nil, formatErr(ErrUnsupportedVersion, "integrity id %d is not supported (want %d)", c, IntegrityBLAKE3Units8K)
	}
	if len(b) < HeaderSize {
		return nil, formatErr(ErrTruncated, "header is %d bytes, want %d", len(b), HeaderSize)
	}
	if bs, hs := le.Uint32(b[16:]), le.Uint32(b[20:]); bs != BlockSize || hs != HeaderSize {
		return nil, formatErr(ErrCorrupt, "block size %d / header size %d, want %d / %d", bs, hs, BlockSize, HeaderSize)
	}
	nslots := int(le.Uint16(b[14:]))
	if nslots < 1 || nslots > MaxKeyslots {
		return nil, formatErr(ErrCorrupt, "keyslot count %d out of range 1..%d", nslots, MaxKeyslots)
	}
	h := &Header{
		Generation:    le.Uint64(b[40:]),
		Created:       int64(le.Uint64(b[48:])),
		ContentBlocks: le.Uint64(b[96:]),
		TreeOffset:    le.Uint64(b[104:]),
		TreeBlocks:    le.Uint64(b[112:]),
		IndexBlock:    le.Uint64(b[120:]),
	}
	copy(h.UUID[:], b[24:40])
	copy(h.Salt[:], b[56:88])
	copy(h.Root[:], b[128:160])
	copy(h.Series[:], b[offSeries:offSigner])
	copy(h.Signer[:], b[offSigner:offSignature])
	copy(h.Signature[:], b[offSignature:offKeyslots])
	copy(h.MAC[:], b[offMAC:headerUsed])
	if off := le.Uint64(b[88:]); off != contentOffset {
		return nil, formatErr(ErrCorrupt, "content offset %d, want %d", off, contentOffset)
	}
	// Bound the block count so that offsets below cannot overflow (2^40 blocks = 4 PiB).
	if h.ContentBlocks == 0 || h.ContentBlocks > 1<<40 {
		return nil, formatErr(ErrCorrupt, "content block count %d out of range", h.ContentBlocks)
	}
	if h.ContentBlocks%BlocksPerUnit != 0 {
		return nil, formatErr(ErrCorrupt, "content block count %d is not a whole number of %d-block verification units", h.ContentBlocks, BlocksPerUnit)
	}
	if h.TreeOffset != contentOffset+h.ContentBlocks*BlockSize {
		return nil, formatErr(ErrCorrupt, "tree offset %d does not follow %d content blocks", h.TreeOffset, h.ContentBlocks)
	}
	if want := newTreeGeometry(h.ContentUnits()).totalBlocks; h.TreeBlocks != want {
		return nil, formatErr(ErrCorrupt, "tree holds %d blocks, want %d for %d content blocks", h.TreeBlocks, want, h.ContentBlocks)
	}
	if allZero(h.Series[:]) {
		return nil, formatErr(ErrCorrupt, "series id is zero")
	}
	if allZero(h.Signer[:]) != allZero(h.Signature[:]) {
		return nil, formatErr(ErrCorrupt, "a signer key without a signature, or a signature without a signer key")
	}
	if h.IndexBlock >= h.ContentBlocks {
		return nil, formatErr(ErrCorrupt, "index block %d beyond %d content blocks", h.IndexBlock, h.ContentBlocks)
	}
	for i := 0; i < MaxKeyslots; i++ {
		s := b[offKeyslots+i*keyslotSize : offKeyslots+(i+1)*keyslotSize]
		if i >= nslots {
			if !allZero(s) {
				return nil, formatErr(ErrCorrupt, "unused keyslot %d is not zero", i)
			}
			continue
		}
		ks, err := keyslot.Parse(s)
		if err != nil {
			return nil, formatErr(ErrCorrupt, "reserved bytes of keyslot %d are not zero", i)
		}
		h.Keyslots = append(h.Keyslots, ks)
	}
	if !allZero(b[headerUsed:HeaderSize]) {
		return nil, formatErr(ErrCorrupt, "reserved header bytes %d..%d are not zero", headerUsed, HeaderSize)
	}
	return h, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

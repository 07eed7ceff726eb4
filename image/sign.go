package image

import (
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
)

// signatureContext starts every signed message, so that a publisher key used elsewhere cannot
// be made to sign something that reads as an image.
const signatureContext = "encfs v2 image signature\x00"

// signedMessage is what a publisher signs: the series, generation, integrity root and UUID
// (docs/FORMAT.md, "Publisher signature").
func signedMessage(h *Header) []byte {
	m := make([]byte, 0, len(signatureContext)+SeriesSize+8+32+16)
	m = append(m, signatureContext...)
	m = append(m, h.Series[:]...)
	m = binary.LittleEndian.AppendUint64(m, h.Generation)
	m = append(m, h.Root[:]...)
	return append(m, h.UUID[:]...)
}

// Sign sets the header's signer and signature. Call it after the root is known and before Seal.
func (h *Header) Sign(key ed25519.PrivateKey) {
	copy(h.Signer[:], key.Public().(ed25519.PublicKey))
	copy(h.Signature[:], ed25519.Sign(key, signedMessage(h)))
}

// SignedBy reports whether the header carries a valid signature by pub.
func (h *Header) SignedBy(pub ed25519.PublicKey) bool {
	if !h.Signed() || len(pub) != ed25519.PublicKeySize || string(pub) != string(h.Signer[:]) {
		return false
	}
	return ed25519.Verify(pub, signedMessage(h), h.Signature[:])
}

// SignerHex is the signer's public key in hex ("" when unsigned), as configurations pin it.
func (h *Header) SignerHex() string {
	if !h.Signed() {
		return ""
	}
	return hex.EncodeToString(h.Signer[:])
}

package volume

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/encfs/encfs/internal/keyslot"
)

// HKDF labels of volume format 1; docs/VOLUME.md, "Keys". They differ from the image labels so
// that no key of a volume ever equals a key of an image.
const (
	labelKeyslot      = "encfs volume v1 keyslot"
	labelKeyslotNonce = "encfs volume v1 keyslot nonce"
	labelData         = "encfs volume v1 data"
	labelHeaderMAC    = "encfs volume v1 header mac"
)

var keyslotLabels = keyslot.Labels{KEK: labelKeyslot, Nonce: labelKeyslotNonce}

// Fingerprint names a release key without revealing it, the same way for images and volumes.
func Fingerprint(releaseKey []byte) string { return keyslot.FingerprintHex(releaseKey) }

// keyslotAD binds a keyslot to the format and the volume UUID: a keyslot copied into another
// volume does not open. Unlike an image keyslot it is not bound to the generation, which every
// commit raises.
func keyslotAD(h *header, fp [keyslot.FingerprintSize]byte) []byte {
	ad := make([]byte, 0, len(Magic)+2+16+keyslot.FingerprintSize)
	ad = append(ad, Magic...)
	ad = binary.LittleEndian.AppendUint16(ad, Version)
	ad = append(ad, h.UUID[:]...)
	return append(ad, fp[:]...)
}

func wrapMasterKey(h *header, releaseKey, master []byte) keyslot.Slot {
	return keyslot.Wrap(keyslotLabels, releaseKey, h.Salt[:], master, keyslotAD(h, keyslot.Fingerprint(releaseKey)))
}

// volumeKeys are the working keys derived from the master key and the volume salt.
type volumeKeys struct {
	aead   cipher.AEAD // AES-256-GCM with 16-byte nonces, of data blocks and tree nodes
	macKey []byte      // HMAC-SHA256 of the header copies
}

func deriveKeys(master []byte, salt []byte) *volumeKeys {
	dk := keyslot.HKDF(master, salt, labelData, 32)
	defer clear(dk)
	blk, err := aes.NewCipher(dk)
	if err != nil {
		panic(err) // a 32-byte key always makes a cipher
	}
	aead, err := cipher.NewGCMWithNonceSize(blk, nonceSize)
	if err != nil {
		panic(err)
	}
	return &volumeKeys{aead: aead, macKey: keyslot.HKDF(master, salt, labelHeaderMAC, 32)}
}

// authenticate opens the master key with the first of releaseKeys that has a keyslot in h and
// checks h's MAC with the derived key. It returns the master key (the caller clears it) and
// the working keys.
func authenticate(h *header, releaseKeys [][]byte) (master []byte, k *volumeKeys, err error) {
	for _, rk := range releaseKeys {
		fp := keyslot.Fingerprint(rk)
		for i := range h.Keyslots {
			if h.Keyslots[i].Fingerprint != fp {
				continue
			}
			m, err := h.Keyslots[i].Open(keyslotLabels, rk, h.Salt[:], keyslotAD(h, fp))
			if err != nil {
				return nil, nil, &IntegrityError{Level: -1, Detail: fmt.Sprintf(
					"keyslot %d has this key's fingerprint but does not open: the keyslot, or the UUID it is bound to, was modified", i)}
			}
			master = m
			break
		}
		if master != nil {
			break
		}
	}
	if master == nil {
		return nil, nil, keyslot.NewWrongKeyError("volume", h.Keyslots, releaseKeys)
	}
	k = deriveKeys(master, h.Salt[:])
	if !h.checkMAC(k.macKey) {
		clear(master)
		return nil, nil, &IntegrityError{Level: -1, Detail: "header MAC does not match: the header was modified"}
	}
	return master, k, nil
}

// randomSource supplies the master key, salt and UUID of new volumes. Only tests replace it
// (export_test.go), to create the committed test vectors reproducibly; no option or flag
// reaches it, so a real volume always gets fresh keys.
var randomSource io.Reader = rand.Reader

func randomBytes(b []byte) {
	if _, err := io.ReadFull(randomSource, b); err != nil {
		panic("volume: random source failed: " + err.Error()) // crypto/rand does not fail
	}
}

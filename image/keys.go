package image

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/encfs/encfs/gmac"
	"github.com/encfs/encfs/xts"
)

// Key sizes.
const (
	ReleaseKeySize = 32
	MasterKeySize  = 32
)

// HKDF labels of version 1; docs/FORMAT.md, "Keys".
const (
	labelFingerprint = "encfs v1 key fingerprint"
	labelKeyslot     = "encfs v1 keyslot"
	labelXTS         = "encfs v1 xts"
	labelBlockMAC    = "encfs v1 block mac"
	labelHeaderMAC   = "encfs v1 header mac"
)

// Fingerprint names a release key without revealing it: the first 8 bytes of
// SHA-256(label || key), in lowercase hex.
func Fingerprint(releaseKey []byte) string {
	f := fingerprint(releaseKey)
	return hex.EncodeToString(f[:])
}

func fingerprint(releaseKey []byte) [fingerprintSize]byte {
	h := sha256.New()
	h.Write([]byte(labelFingerprint))
	h.Write(releaseKey)
	var f [fingerprintSize]byte
	copy(f[:], h.Sum(nil))
	return f
}

func hkdfKey(secret []byte, salt []byte, label string, n int) []byte {
	k, err := hkdf.Key(sha256.New, secret, salt, label, n)
	if err != nil {
		panic(err) // only for lengths HKDF cannot produce, a programming error
	}
	return k
}

// keyslotAEAD is AES-256-GCM under the key-encryption key derived from a release key and the
// image salt, so a keyslot cannot be moved to another image.
func keyslotAEAD(releaseKey []byte, salt []byte) cipher.AEAD {
	kek := hkdfKey(releaseKey, salt, labelKeyslot, 32)
	defer clear(kek)
	return newGCM(kek)
}

func newGCM(key []byte) cipher.AEAD {
	blk, err := aes.NewCipher(key)
	if err != nil {
		panic(err)
	}
	g, err := cipher.NewGCM(blk)
	if err != nil {
		panic(err)
	}
	return g
}

func keyslotAD(h *Header, fp [fingerprintSize]byte) []byte {
	ad := make([]byte, 0, len(Magic)+16+fingerprintSize)
	ad = append(ad, Magic...)
	ad = append(ad, h.UUID[:]...)
	return append(ad, fp[:]...)
}

// wrapMasterKey makes the keyslot for releaseKey. The nonce is synthetic (an HMAC of the master
// key and UUID under the KEK), so packing is reproducible and a nonce repeats only with the very
// same plaintext.
func wrapMasterKey(h *Header, releaseKey, masterKey []byte) Keyslot {
	var ks Keyslot
	ks.Fingerprint = fingerprint(releaseKey)
	kek := hkdfKey(releaseKey, h.Salt[:], labelKeyslot, 32)
	defer clear(kek)
	m := hmac.New(sha256.New, kek)
	m.Write([]byte("nonce"))
	m.Write(masterKey)
	m.Write(h.UUID[:])
	copy(ks.Nonce[:], m.Sum(nil))
	sealed := newGCM(kek).Seal(nil, ks.Nonce[:], masterKey, keyslotAD(h, ks.Fingerprint))
	copy(ks.Wrapped[:], sealed)
	return ks
}

// unwrapMasterKey opens the keyslot that matches releaseKey. ok is false when no slot has the
// key's fingerprint; an error means a slot matched but did not open (corrupt or forged).
func unwrapMasterKey(h *Header, releaseKey []byte) (master []byte, ok bool, err error) {
	fp := fingerprint(releaseKey)
	for i, ks := range h.Keyslots {
		if ks.Fingerprint != fp {
			continue
		}
		master, err := keyslotAEAD(releaseKey, h.Salt[:]).Open(nil, ks.Nonce[:], ks.Wrapped[:], keyslotAD(h, fp))
		if err != nil {
			return nil, true, formatErr(ErrCorrupt, "keyslot %d has this key's fingerprint but does not decrypt: the keyslot was modified", i)
		}
		return master, true, nil
	}
	return nil, false, nil
}

// imageKeys are the working keys derived from the master key.
type imageKeys struct {
	xts       *xts.Cipher
	blockMAC  *gmac.MAC // GMAC-AES-256 of each content block
	headerMAC []byte
}

func deriveKeys(masterKey []byte, salt []byte) (*imageKeys, error) {
	xk := hkdfKey(masterKey, salt, labelXTS, 64)
	defer clear(xk)
	c, err := xts.NewCipher(xk)
	if err != nil {
		return nil, fmt.Errorf("xts key: %w", err)
	}
	mk := hkdfKey(masterKey, salt, labelBlockMAC, 32)
	defer clear(mk)
	mac, err := gmac.New(mk)
	if err != nil {
		return nil, fmt.Errorf("block MAC key: %w", err)
	}
	return &imageKeys{
		xts:       c,
		blockMAC:  mac,
		headerMAC: hkdfKey(masterKey, salt, labelHeaderMAC, 32),
	}, nil
}

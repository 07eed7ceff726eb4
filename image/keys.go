package image

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"github.com/encfs/encfs/internal/xts"
)

// Key sizes.
const (
	ReleaseKeySize = 32
	MasterKeySize  = 32
)

// HKDF labels of version 2; docs/FORMAT.md, "Keys". The fingerprint label keeps its v1 name
// so that a release key keeps the fingerprint operators already know it by.
const (
	labelFingerprint  = "encfs v1 key fingerprint"
	labelKeyslot      = "encfs v2 keyslot"
	labelKeyslotNonce = "encfs v2 keyslot nonce"
	labelXTS          = "encfs v2 xts"
	labelHeaderMAC    = "encfs v2 header mac"
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

// keyslotAD binds a keyslot to the image UUID, the series and the generation as well as the
// key's fingerprint: a keyslot copied into a forged header of another generation or series
// does not open, so a former holder of a master key cannot present a forgery as a newer
// generation (docs/FORMAT.md, "Security argument").
func keyslotAD(h *Header, fp [fingerprintSize]byte) []byte {
	ad := make([]byte, 0, len(Magic)+2+16+SeriesSize+8+fingerprintSize)
	ad = append(ad, Magic...)
	ad = binary.LittleEndian.AppendUint16(ad, Version)
	ad = append(ad, h.UUID[:]...)
	ad = append(ad, h.Series[:]...)
	ad = binary.LittleEndian.AppendUint64(ad, h.Generation)
	return append(ad, fp[:]...)
}

// wrapMasterKey makes the keyslot for releaseKey. The nonce is synthetic, an HMAC of the master
// key and the associated data under a key of its own: it repeats only with the very same
// plaintext and associated data, and needs no random source.
func wrapMasterKey(h *Header, releaseKey, masterKey []byte) Keyslot {
	var ks Keyslot
	ks.Fingerprint = fingerprint(releaseKey)
	ad := keyslotAD(h, ks.Fingerprint)
	nk := hkdfKey(releaseKey, h.Salt[:], labelKeyslotNonce, 32)
	defer clear(nk)
	m := hmac.New(sha256.New, nk)
	m.Write(masterKey)
	m.Write(ad)
	copy(ks.Nonce[:], m.Sum(nil))
	sealed := keyslotAEAD(releaseKey, h.Salt[:]).Seal(nil, ks.Nonce[:], masterKey, ad)
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
			return nil, true, &IntegrityError{Region: RegionHeader,
				Detail: fmt.Sprintf("keyslot %d has this key's fingerprint but does not open: the keyslot, or the UUID, series or generation it is bound to, was modified", i)}
		}
		return master, true, nil
	}
	return nil, false, nil
}

// authenticate is the one way a header comes to be trusted: it opens the master key with the
// first of releaseKeys that has a keyslot, derives the image keys from it and checks the
// header MAC with them. A key that matches no keyslot gives a *WrongKeyError; a keyslot that
// does not open or a MAC that does not match, an *IntegrityError. On success the caller owns
// master and clears it when done; on failure nothing of it is left.
func authenticate(h *Header, releaseKeys [][]byte) (master []byte, k *imageKeys, err error) {
	for _, rk := range releaseKeys {
		m, ok, err := unwrapMasterKey(h, rk)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			master = m
			break
		}
	}
	if master == nil {
		we := &WrongKeyError{Accepted: slotFingerprints(h)}
		for _, rk := range releaseKeys {
			we.Given = append(we.Given, Fingerprint(rk))
		}
		return nil, nil, we
	}
	if k, err = deriveKeys(master, h.Salt[:]); err != nil {
		clear(master)
		return nil, nil, err
	}
	if !h.checkMAC(k.headerMAC) {
		clear(master)
		return nil, nil, &IntegrityError{Region: RegionHeader, Detail: "header MAC does not match: the header was modified"}
	}
	return master, k, nil
}

// imageKeys are the working keys derived from the master key and the per-pack salt.
type imageKeys struct {
	xts       *xts.Cipher
	headerMAC []byte
}

func deriveKeys(masterKey []byte, salt []byte) (*imageKeys, error) {
	xk := hkdfKey(masterKey, salt, labelXTS, 64)
	defer clear(xk)
	c, err := xts.NewCipher(xk)
	if err != nil {
		return nil, fmt.Errorf("xts key: %w", err)
	}
	return &imageKeys{xts: c, headerMAC: hkdfKey(masterKey, salt, labelHeaderMAC, 32)}, nil
}

package image

import (
	"encoding/binary"
	"fmt"

	"github.com/encfs/encfs/internal/keyslot"
	"github.com/encfs/encfs/internal/xts"
)

// Key sizes.
const (
	ReleaseKeySize = keyslot.ReleaseKeySize
	MasterKeySize  = keyslot.MasterKeySize
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
func Fingerprint(releaseKey []byte) string { return keyslot.FingerprintHex(releaseKey) }

func fingerprint(releaseKey []byte) [fingerprintSize]byte { return keyslot.Fingerprint(releaseKey) }

func hkdfKey(secret []byte, salt []byte, label string, n int) []byte {
	return keyslot.HKDF(secret, salt, label, n)
}

// keyslotLabels are the HKDF labels of image keyslots.
var keyslotLabels = keyslot.Labels{KEK: labelKeyslot, Nonce: labelKeyslotNonce}

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

// wrapMasterKey makes the keyslot for releaseKey (internal/keyslot: synthetic nonce, AES-256-GCM
// under a key-encryption key derived from the release key and the image salt).
func wrapMasterKey(h *Header, releaseKey, masterKey []byte) Keyslot {
	return keyslot.Wrap(keyslotLabels, releaseKey, h.Salt[:], masterKey, keyslotAD(h, fingerprint(releaseKey)))
}

// unwrapMasterKey opens the keyslot that matches releaseKey. ok is false when no slot has the
// key's fingerprint; an error means a slot matched but did not open (corrupt or forged).
func unwrapMasterKey(h *Header, releaseKey []byte) (master []byte, ok bool, err error) {
	fp := fingerprint(releaseKey)
	for i, ks := range h.Keyslots {
		if ks.Fingerprint != fp {
			continue
		}
		master, err := ks.Open(keyslotLabels, releaseKey, h.Salt[:], keyslotAD(h, fp))
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
		return nil, nil, keyslot.NewWrongKeyError("image", h.Keyslots, releaseKeys)
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

// Package keyslot is the key hierarchy that images and volumes share: a release key is named
// by its fingerprint and opens a keyslot, an AES-256-GCM wrapping of the master key under a
// key-encryption key derived from the release key and the container's salt. docs/FORMAT.md
// ("Keys") and docs/VOLUME.md ("Keys") specify it; each format brings its own HKDF labels and
// associated data, so a keyslot of an image never opens in a volume and the reverse.
package keyslot

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Sizes of keys and of the encoded keyslot.
const (
	ReleaseKeySize  = 32
	MasterKeySize   = 32
	FingerprintSize = 8
	NonceSize       = 12
	WrappedSize     = MasterKeySize + 16 // AES-GCM ciphertext + tag
	// Size is an encoded keyslot: fingerprint, nonce, wrapped key, 12 reserved zero bytes.
	Size = 80
)

// labelFingerprint keeps its version-1 name so that a release key keeps the fingerprint
// operators already know it by, in images and volumes alike.
const labelFingerprint = "encfs v1 key fingerprint"

// Labels are the HKDF info strings of one format's keyslots.
type Labels struct {
	KEK   string // key-encryption key: HKDF(release key, salt, KEK, 32)
	Nonce string // HMAC key of the synthetic nonce: HKDF(release key, salt, Nonce, 32)
}

// Slot holds a master key wrapped by one release key.
type Slot struct {
	Fingerprint [FingerprintSize]byte
	Nonce       [NonceSize]byte
	Wrapped     [WrappedSize]byte
}

// Fingerprint names a release key without revealing it: the first 8 bytes of
// SHA-256(label || key).
func Fingerprint(releaseKey []byte) [FingerprintSize]byte {
	h := sha256.New()
	h.Write([]byte(labelFingerprint))
	h.Write(releaseKey)
	var f [FingerprintSize]byte
	copy(f[:], h.Sum(nil))
	return f
}

// FingerprintHex is Fingerprint in lowercase hex, as messages and configurations show it.
func FingerprintHex(releaseKey []byte) string {
	f := Fingerprint(releaseKey)
	return hex.EncodeToString(f[:])
}

// HKDF is HKDF-SHA256 extract-and-expand of n bytes.
func HKDF(secret, salt []byte, label string, n int) []byte {
	k, err := hkdf.Key(sha256.New, secret, salt, label, n)
	if err != nil {
		panic(err) // only for lengths HKDF cannot produce, a programming error
	}
	return k
}

// NewGCM returns AES-GCM (standard 12-byte nonce, 16-byte tag) under key (16, 24 or 32 bytes).
func NewGCM(key []byte) cipher.AEAD {
	blk, err := aes.NewCipher(key)
	if err != nil {
		panic(err) // only for a key of the wrong length, a programming error
	}
	g, err := cipher.NewGCM(blk)
	if err != nil {
		panic(err)
	}
	return g
}

func kek(l Labels, releaseKey, salt []byte) cipher.AEAD {
	k := HKDF(releaseKey, salt, l.KEK, 32)
	defer clear(k)
	return NewGCM(k)
}

// Wrap makes the keyslot of releaseKey for master. ad is the caller's associated data, which
// must include the release key's fingerprint. The nonce is synthetic, an HMAC of the master key
// and ad under a key of its own: it repeats only with the very same plaintext and associated
// data, and needs no random source.
func Wrap(l Labels, releaseKey, salt, master, ad []byte) Slot {
	var s Slot
	s.Fingerprint = Fingerprint(releaseKey)
	nk := HKDF(releaseKey, salt, l.Nonce, 32)
	defer clear(nk)
	m := hmac.New(sha256.New, nk)
	m.Write(master)
	m.Write(ad)
	copy(s.Nonce[:], m.Sum(nil))
	copy(s.Wrapped[:], kek(l, releaseKey, salt).Seal(nil, s.Nonce[:], master, ad))
	return s
}

// Open unwraps the master key with releaseKey; it fails when the slot, or anything ad binds it
// to, was modified (or releaseKey is not the slot's key).
func (s *Slot) Open(l Labels, releaseKey, salt, ad []byte) ([]byte, error) {
	return kek(l, releaseKey, salt).Open(nil, s.Nonce[:], s.Wrapped[:], ad)
}

// Marshal writes the slot's Size bytes into b.
func (s *Slot) Marshal(b []byte) {
	_ = b[Size-1]
	copy(b[0:8], s.Fingerprint[:])
	copy(b[8:20], s.Nonce[:])
	copy(b[20:20+WrappedSize], s.Wrapped[:])
	clear(b[20+WrappedSize : Size])
}

// ErrReserved says that the reserved bytes of an encoded keyslot are not zero.
var ErrReserved = errors.New("reserved bytes of the keyslot are not zero")

// Parse decodes the Size bytes of b.
func Parse(b []byte) (Slot, error) {
	var s Slot
	if len(b) < Size {
		return s, fmt.Errorf("keyslot is %d bytes, want %d", len(b), Size)
	}
	copy(s.Fingerprint[:], b[0:8])
	copy(s.Nonce[:], b[8:20])
	copy(s.Wrapped[:], b[20:20+WrappedSize])
	for _, c := range b[20+WrappedSize : Size] {
		if c != 0 {
			return s, ErrReserved
		}
	}
	return s, nil
}

// ErrWrongKey: none of the release keys given has a keyslot. image.ErrWrongKey and
// volume.ErrWrongKey are this error.
var ErrWrongKey = errors.New("wrong key")

// WrongKeyError says that none of the given release keys opens any keyslot of an image or a
// volume. It shows fingerprints only, never key material.
type WrongKeyError struct {
	Noun     string   // "image" or "volume"
	Given    []string // fingerprints of the keys that were tried
	Accepted []string // fingerprints of the keyslots
}

// NewWrongKeyError describes releaseKeys failing to open any of slots.
func NewWrongKeyError(noun string, slots []Slot, releaseKeys [][]byte) *WrongKeyError {
	e := &WrongKeyError{Noun: noun, Accepted: Fingerprints(slots)}
	for _, rk := range releaseKeys {
		e.Given = append(e.Given, FingerprintHex(rk))
	}
	return e
}

func (e *WrongKeyError) Error() string {
	return fmt.Sprintf("wrong key: key fingerprint %s does not match any keyslot of this %s (it accepts fingerprint %s)",
		strings.Join(e.Given, ", "), e.Noun, strings.Join(e.Accepted, ", "))
}
func (e *WrongKeyError) Unwrap() error { return ErrWrongKey }

// Fingerprints lists the slots' fingerprints in hex, for messages.
func Fingerprints(slots []Slot) []string {
	out := make([]string, 0, len(slots))
	for _, s := range slots {
		out = append(out, hex.EncodeToString(s.Fingerprint[:]))
	}
	return out
}

// Add returns slots with a new slot for newKey made by wrap; noun ("image", "volume") names the
// container in messages. It refuses a key that already has a slot and a full list.
func Add(slots []Slot, max int, noun string, newKey []byte, wrap func() Slot) ([]Slot, error) {
	if len(newKey) != ReleaseKeySize {
		return nil, fmt.Errorf("new key is %d bytes, want %d", len(newKey), ReleaseKeySize)
	}
	fp := Fingerprint(newKey)
	for _, s := range slots {
		if s.Fingerprint == fp {
			return nil, fmt.Errorf("the %s already has a keyslot for key fingerprint %x", noun, fp)
		}
	}
	if len(slots) >= max {
		return nil, fmt.Errorf("the %s already has the maximum of %d keyslots: remove one first", noun, max)
	}
	return append(slots, wrap()), nil
}

// Remove returns slots without the slot whose fingerprint is fp (hex). The last slot cannot be
// removed.
func Remove(slots []Slot, noun, fp string) ([]Slot, error) {
	fp = strings.ToLower(fp)
	for i, s := range slots {
		if hex.EncodeToString(s.Fingerprint[:]) != fp {
			continue
		}
		if len(slots) == 1 {
			return nil, fmt.Errorf("keyslot %s is the %s's only keyslot: add another before removing it", fp, noun)
		}
		return append(slots[:i:i], slots[i+1:]...), nil
	}
	return nil, fmt.Errorf("the %s has no keyslot with fingerprint %s (it has %v)", noun, fp, Fingerprints(slots))
}

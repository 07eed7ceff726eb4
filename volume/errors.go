package volume

import (
	"errors"
	"fmt"

	"github.com/encfs/encfs/internal/keyslot"
)

// Sentinel kinds, matched with errors.Is. Each says what a user has to do differently.
var (
	ErrNotVolume          = errors.New("not an encfs volume")
	ErrUnsupportedVersion = errors.New("unsupported volume format")
	ErrCorrupt            = errors.New("volume is corrupt")
	ErrWrongKey           = keyslot.ErrWrongKey
	ErrIntegrity          = errors.New("integrity check failed")
	ErrLocked             = errors.New("volume is in use")
	ErrReadOnly           = errors.New("volume is open read-only")
	ErrTooOld             = errors.New("volume generation is older than required")
	ErrFailed             = errors.New("volume failed")
)

// FormatError is a structural problem found while decoding a header.
type FormatError struct {
	Kind   error // one of the sentinels above
	Detail string
}

func (e *FormatError) Error() string { return e.Kind.Error() + ": " + e.Detail }
func (e *FormatError) Unwrap() error { return e.Kind }

func formatErr(kind error, format string, args ...any) error {
	return &FormatError{Kind: kind, Detail: fmt.Sprintf(format, args...)}
}

// WrongKeyError says that none of the given release keys opens any keyslot of the volume. It
// shows fingerprints only, never key material.
type WrongKeyError = keyslot.WrongKeyError

// IntegrityError reports a unit that failed verification: a data block (Level 0, Index = block
// number) or a tree node (Level >= 1), or the header (Level -1). It was modified, moved,
// replaced by an older version of itself, or taken from another volume; nothing of its content
// was returned. The message names the unit only, never plaintext or keys.
type IntegrityError struct {
	Level  int
	Index  uint64
	Offset int64 // byte offset of the unit in the store
	Detail string

	logged bool // the volume logged it (or logged the same unit before)
}

// Logged reports whether the volume has logged this failure itself (once per unit), so that
// a caller passing the error on (blockdev, as EIO) adds no line of its own.
func (e *IntegrityError) Logged() bool { return e.logged }

func (e *IntegrityError) Error() string {
	switch {
	case e.Level < 0:
		return "integrity check failed: header: " + e.Detail
	case e.Level == 0:
		return fmt.Sprintf("integrity check failed: data block %d (store offset %d): %s", e.Index, e.Offset, e.Detail)
	default:
		first := e.Index * span(e.Level)
		return fmt.Sprintf("integrity check failed: tree node level %d index %d (covering data blocks %d..%d, store offset %d): %s",
			e.Level, e.Index, first, first+span(e.Level)-1, e.Offset, e.Detail)
	}
}
func (e *IntegrityError) Unwrap() error { return ErrIntegrity }

// LockedError says that another process holds the store for writing (or, for a writer, at all).
type LockedError struct {
	Store  string
	Holder string // what the holder recorded about itself, or why it is unknown
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("%s is in use: %s; stop that process (or unmount that volume) first", e.Store, e.Holder)
}
func (e *LockedError) Unwrap() error { return ErrLocked }

package image

import (
	"errors"
	"fmt"

	"github.com/encfs/encfs/internal/keyslot"
)

// Sentinel kinds, matched with errors.Is. Each says what a user has to do differently.
var (
	ErrNotImage           = errors.New("not an encfs image")
	ErrTruncated          = errors.New("image is truncated")
	ErrUnsupportedVersion = errors.New("unsupported image format")
	ErrCorrupt            = errors.New("image is corrupt")
	ErrWrongKey           = keyslot.ErrWrongKey
	ErrIntegrity          = errors.New("integrity check failed")
	ErrNotFound           = errors.New("no such file or directory")
)

// FormatError is a structural problem found while decoding the header or index.
type FormatError struct {
	Kind   error // one of the sentinels above
	Detail string
}

func (e *FormatError) Error() string { return e.Kind.Error() + ": " + e.Detail }
func (e *FormatError) Unwrap() error { return e.Kind }

func formatErr(kind error, format string, args ...any) error {
	return &FormatError{Kind: kind, Detail: fmt.Sprintf(format, args...)}
}

// WrongKeyError says that none of the given release keys opens any keyslot of the image. It
// shows fingerprints only, never key material.
type WrongKeyError = keyslot.WrongKeyError

// Region names a part of the image, for integrity errors.
type Region string

const (
	RegionHeader  Region = "header"
	RegionContent Region = "content"
	RegionTree    Region = "integrity tree"
	RegionIndex   Region = "index"
)

// IntegrityError reports content or a tree block that failed verification: modified, moved,
// or from another image. For RegionContent, Block is the first content block of the
// verification unit that failed (its BlocksPerUnit blocks fail together); else it is a tree
// block number. The message names the region and blocks only: it may be logged outside the
// TEE, and nothing in it says which file the blocks belong to (encfs verify adds that for the
// operator).
type IntegrityError struct {
	Region Region
	Block  uint64
	Offset int64 // byte offset of the unit or block in the image file; not in the message
	Detail string
}

func (e *IntegrityError) Error() string {
	switch e.Region {
	case RegionHeader:
		return fmt.Sprintf("integrity check failed: header: %s", e.Detail)
	case RegionContent:
		return fmt.Sprintf("integrity check failed: content blocks %d..%d: %s", e.Block, e.Block+BlocksPerUnit-1, e.Detail)
	}
	return fmt.Sprintf("integrity check failed: %s block %d: %s", e.Region, e.Block, e.Detail)
}
func (e *IntegrityError) Unwrap() error { return ErrIntegrity }

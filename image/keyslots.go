package image

import (
	"context"
	"fmt"
	"os"

	"github.com/encfs/encfs/internal/keyslot"
)

// EditKeyslots rewrites the header of the image file f (opened for reading and writing) in
// place: it opens the master key with currentKey, lets edit change the keyslot list, and
// writes the re-authenticated header. Data blocks are untouched, so this is instant whatever
// the image size. f stays open.
func EditKeyslots(ctx context.Context, f *os.File, currentKey []byte, edit func(h *Header, master []byte) error) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	h, err := ReadHeader(ctx, Plain(headerFile{f, st.Size()}))
	if err != nil {
		return err
	}
	master, k, err := authenticate(h, [][]byte{currentKey})
	if err != nil {
		return err
	}
	defer clear(master)
	if err := edit(h, master); err != nil {
		return err
	}
	h.Seal(k.headerMAC)
	if _, err := f.WriteAt(h.Marshal(), 0); err != nil {
		return fmt.Errorf("write header: %w", err)
	}
	return f.Sync()
}

// headerFile reads the header of an image file that EditKeyslots edits.
type headerFile struct {
	f    *os.File
	size int64
}

func (h headerFile) ReadAt(_ context.Context, p []byte, off int64) (int, error) {
	return h.f.ReadAt(p, off)
}
func (h headerFile) Size() int64    { return h.size }
func (h headerFile) String() string { return h.f.Name() }
func (h headerFile) Close() error   { return nil } // the caller's file

// AddKeyslot adds a keyslot for newKey to the image file f, authorised by currentKey.
func AddKeyslot(ctx context.Context, f *os.File, currentKey, newKey []byte) error {
	return EditKeyslots(ctx, f, currentKey, func(h *Header, master []byte) (err error) {
		h.Keyslots, err = keyslot.Add(h.Keyslots, MaxKeyslots, "image", newKey, func() Keyslot { return wrapMasterKey(h, newKey, master) })
		return err
	})
}

// RemoveKeyslot removes the keyslot with the given fingerprint (hex) from the image file f,
// authorised by currentKey. The last keyslot cannot be removed.
func RemoveKeyslot(ctx context.Context, f *os.File, currentKey []byte, fp string) error {
	return EditKeyslots(ctx, f, currentKey, func(h *Header, _ []byte) (err error) {
		h.Keyslots, err = keyslot.Remove(h.Keyslots, "image", fp)
		return err
	})
}

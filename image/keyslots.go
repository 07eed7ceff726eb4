package image

import (
	"context"
	"fmt"
	"os"
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

func slotFingerprints(h *Header) []string {
	var out []string
	for _, ks := range h.Keyslots {
		out = append(out, fmt.Sprintf("%x", ks.Fingerprint))
	}
	return out
}

// AddKeyslot adds a keyslot for newKey to the image file f, authorised by currentKey.
func AddKeyslot(ctx context.Context, f *os.File, currentKey, newKey []byte) error {
	if len(newKey) != ReleaseKeySize {
		return fmt.Errorf("new key is %d bytes, want %d", len(newKey), ReleaseKeySize)
	}
	return EditKeyslots(ctx, f, currentKey, func(h *Header, master []byte) error {
		fp := fingerprint(newKey)
		for _, ks := range h.Keyslots {
			if ks.Fingerprint == fp {
				return fmt.Errorf("the image already has a keyslot for key fingerprint %x", fp)
			}
		}
		if len(h.Keyslots) >= MaxKeyslots {
			return fmt.Errorf("the image already has the maximum of %d keyslots: remove one first", MaxKeyslots)
		}
		h.Keyslots = append(h.Keyslots, wrapMasterKey(h, newKey, master))
		return nil
	})
}

// RemoveKeyslot removes the keyslot with the given fingerprint (hex) from the image file f,
// authorised by currentKey. The last keyslot cannot be removed.
func RemoveKeyslot(ctx context.Context, f *os.File, currentKey []byte, fp string) error {
	return EditKeyslots(ctx, f, currentKey, func(h *Header, _ []byte) error {
		for i, ks := range h.Keyslots {
			if fmt.Sprintf("%x", ks.Fingerprint) != fp {
				continue
			}
			if len(h.Keyslots) == 1 {
				return fmt.Errorf("keyslot %s is the image's only keyslot: add another before removing it", fp)
			}
			h.Keyslots = append(h.Keyslots[:i], h.Keyslots[i+1:]...)
			return nil
		}
		return fmt.Errorf("the image has no keyslot with fingerprint %s (it has %v)", fp, slotFingerprints(h))
	})
}

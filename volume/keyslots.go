package volume

import (
	"context"

	"github.com/encfs/encfs/internal/keyslot"
)

// AddKeyslot adds a keyslot for newKey to the volume in s, authorised by currentKey. Only the
// header changes (one commit); s stays open. The volume must not be open elsewhere (s holds the
// writer's lock).
func AddKeyslot(ctx context.Context, s Store, currentKey, newKey []byte) error {
	return editKeyslots(ctx, s, currentKey, 1, func(h *header, master []byte) (err error) {
		h.Keyslots, err = keyslot.Add(h.Keyslots, MaxKeyslots, "volume", newKey, func() keyslot.Slot { return wrapMasterKey(h, newKey, master) })
		return err
	})
}

// RemoveKeyslot removes the keyslot with fingerprint fp (hex) from the volume in s, authorised
// by currentKey. The last keyslot cannot be removed. Both header copies are rewritten, so no
// copy on storage keeps the slot. This does not revoke the key: a holder of it may know the
// master key, which does not change (docs/VOLUME.md, "Security argument").
func RemoveKeyslot(ctx context.Context, s Store, currentKey []byte, fp string) error {
	return editKeyslots(ctx, s, currentKey, 2, func(h *header, _ []byte) (err error) {
		h.Keyslots, err = keyslot.Remove(h.Keyslots, "volume", fp)
		return err
	})
}

// editKeyslots commits copies headers with the keyslots edit makes, the rest of the newest
// header unchanged.
func editKeyslots(ctx context.Context, s Store, currentKey []byte, copies int, edit func(h *header, master []byte) error) error {
	v, err := Open(ctx, s, [][]byte{currentKey}, OpenOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	h, master, _, err := readHeader(ctx, s, [][]byte{currentKey}, v.log)
	if err != nil {
		return err
	}
	defer clear(master)
	if err := edit(h, master); err != nil {
		return err
	}
	v.hdr.Keyslots = h.Keyslots
	for range copies {
		h := v.hdr
		h.Generation++
		if err := v.writeHeader(ctx, &h); err != nil {
			return err
		}
		v.hdr = h
	}
	return nil
}

package image

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// ErrRollback reports an authentic image that the deployment does not accept: an older
// generation, another series, another integrity root than the one pinned, or an image the
// pinned publisher did not sign.
var ErrRollback = errors.New("image refused by the deployment's pins")

// Pin is what a deployment requires of the image it mounts (docs/FORMAT.md, "Security
// argument"). The zero value accepts any authentic image.
type Pin struct {
	Root          string // integrity root in hex; empty: any
	Series        string // series id in hex; required with MinGeneration or Signer
	MinGeneration uint64
	Signer        string // publisher's Ed25519 public key in hex; empty: signatures not required
}

// Validate checks the pin's own values, so a malformed configuration is refused at start.
func (p Pin) Validate() error {
	if p.Root != "" {
		if b, err := hex.DecodeString(strings.TrimSpace(p.Root)); err != nil || len(b) != 32 {
			return fmt.Errorf("pinned root %q: want 64 hex digits, as `encfs inspect` prints the integrity root", p.Root)
		}
	}
	if p.Series != "" {
		if b, err := hex.DecodeString(strings.TrimSpace(p.Series)); err != nil || len(b) != SeriesSize {
			return fmt.Errorf("series %q: want %d hex digits, as `encfs inspect` prints the series", p.Series, 2*SeriesSize)
		}
	}
	if p.Signer != "" {
		if b, err := hex.DecodeString(strings.TrimSpace(p.Signer)); err != nil || len(b) != ed25519.PublicKeySize {
			return fmt.Errorf("pinned signer %q: want the publisher's Ed25519 public key, 64 hex digits, as `encfs keygen` printed it with the signing key", p.Signer)
		}
	}
	if p.Series == "" && p.MinGeneration > 0 {
		return errors.New("a minimum generation needs the series it counts in: set the series too (`encfs inspect` prints it); " +
			"without it an image of another dataset with a higher generation would be accepted")
	}
	if p.Series == "" && p.Signer != "" {
		return errors.New("a pinned signer needs the series it signs for: set the series too (`encfs inspect` prints it); " +
			"without it any image the publisher signed, of any dataset, would be accepted")
	}
	return nil
}

// Pinned reports whether the pin limits the images accepted to one image or to a publisher's:
// a root or a signer. A minimum generation alone does not stop a holder of the release key.
func (p Pin) Pinned() bool { return p.Root != "" || p.Signer != "" }

// Check returns an error wrapping ErrRollback when h does not satisfy the pin. Call it after
// the header is authenticated (Open), before anything is served.
func (p Pin) Check(h *Header) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if p.Root != "" {
		want, _ := hex.DecodeString(strings.TrimSpace(p.Root))
		if string(want) != string(h.Root[:]) {
			return fmt.Errorf("%w: the image's integrity root is %s, the deployment pins %s (an older or different image is being served)",
				ErrRollback, h.RootHex(), strings.ToLower(p.Root))
		}
	}
	if p.Series != "" {
		want, _ := hex.DecodeString(strings.TrimSpace(p.Series))
		if string(want) != string(h.Series[:]) {
			return fmt.Errorf("%w: the image belongs to series %s, the deployment pins series %s (an image of another dataset is being served)",
				ErrRollback, h.SeriesHex(), strings.ToLower(p.Series))
		}
	}
	if h.Generation < p.MinGeneration {
		return fmt.Errorf("%w: the image is generation %d, the deployment requires at least %d (an older image is being served)",
			ErrRollback, h.Generation, p.MinGeneration)
	}
	if p.Signer != "" {
		pub, _ := hex.DecodeString(strings.TrimSpace(p.Signer))
		if !h.Signed() {
			return fmt.Errorf("%w: the image is not signed, the deployment requires the signature of publisher %s", ErrRollback, strings.ToLower(p.Signer))
		}
		if !h.SignedBy(ed25519.PublicKey(pub)) {
			return fmt.Errorf("%w: the image is not validly signed by publisher %s (its header names signer %s)",
				ErrRollback, strings.ToLower(p.Signer), h.SignerHex())
		}
	}
	return nil
}

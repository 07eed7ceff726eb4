package image

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// ErrRollback reports an authentic image that the deployment does not accept: an older
// generation or another integrity root than the one pinned.
var ErrRollback = errors.New("image refused by rollback protection")

// Pin is what a deployment requires of the image it mounts (docs/FORMAT.md, "Security
// argument", point 6). The zero value accepts any authentic image.
type Pin struct {
	Root          string // integrity root in hex; empty: any
	MinGeneration uint64
}

// Check returns an error wrapping ErrRollback when h does not satisfy the pin. Call it after
// the header is authenticated (Open), before anything is served.
func (p Pin) Check(h *Header) error {
	if p.Root != "" {
		want, err := hex.DecodeString(strings.TrimSpace(p.Root))
		if err != nil || len(want) != len(h.Root) {
			return fmt.Errorf("pinned root %q: want 64 hex digits, as `encfs inspect` prints the integrity root", p.Root)
		}
		if string(want) != string(h.Root[:]) {
			return fmt.Errorf("%w: the image's integrity root is %s, the deployment pins %s (an older or different image is being served)",
				ErrRollback, h.RootHex(), strings.ToLower(p.Root))
		}
	}
	if h.Generation < p.MinGeneration {
		return fmt.Errorf("%w: the image is generation %d, the deployment requires at least %d (an older image is being served)",
			ErrRollback, h.Generation, p.MinGeneration)
	}
	return nil
}

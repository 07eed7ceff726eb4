package sidecar

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/encfs/encfs/config"
)

// snpDevices are the guest interfaces of an AMD SEV-SNP VM: the ioctl device and the
// configfs-tsm report directory.
var snpDevices = []string{"/dev/sev-guest", "/sys/kernel/config/tsm/report"}

// ErrKeyFileInTEE: a configuration names a key_file inside an SEV-SNP environment, and the
// development rule that allows it is off.
var ErrKeyFileInTEE = errors.New("refused in an SEV-SNP environment")

// TEERules are the settings of CheckConfigForTEE.
type TEERules struct {
	// AllowKeyFile accepts key_file inside an SEV-SNP environment (development only).
	AllowKeyFile bool
	// Devices are the guest interfaces whose presence shows an SEV-SNP VM; nil for the real ones
	// (/dev/sev-guest and /sys/kernel/config/tsm/report).
	Devices []string
}

// snpEnvironment says whether this process runs in an SEV-SNP guest (one of devices exists) or
// confidential container group, and what shows it ("" when not).
func snpEnvironment(devices []string) string {
	for _, p := range devices {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if d := os.Getenv("UVM_SECURITY_CONTEXT_DIR"); d != "" {
		return "UVM_SECURITY_CONTEXT_DIR=" + d
	}
	if m, _ := filepath.Glob("/security-context-*"); len(m) > 0 {
		return m[0]
	}
	return ""
}

// CheckConfigForTEE applies the start-up rules of a configuration that concern the TEE: a
// key_file is refused in an SEV-SNP environment unless r.AllowKeyFile (a development flag), since
// a key in a file bypasses attestation; and a filesystem whose key comes from Azure key release
// with neither pinned_root nor pinned_signer gets a warning, since any authentic image of the
// key (older ones, or ones built by any key holder) would mount.
func CheckConfigForTEE(c *config.Config, r TEERules, log *slog.Logger) error {
	if r.Devices == nil {
		r.Devices = snpDevices
	}
	tee := snpEnvironment(r.Devices)
	for i, fsys := range c.AzureFilesystems {
		if fsys.KeyFile != "" && tee != "" && !r.AllowKeyFile {
			return fmt.Errorf("azure_filesystems[%d].key_file: %w (%s found): a key read from a file is not released by attestation, "+
				"so it protects nothing here; use key (Azure secure key release)", i, ErrKeyFileInTEE, tee)
		}
		if fsys.Key != nil && fsys.PinnedRoot == "" && fsys.PinnedSigner == "" {
			risk := "any authentic image for this key mounts, including older generations"
			if fsys.MinGeneration > 0 {
				risk = "min_generation alone does not stop a holder of the release key from serving an image of their own"
			}
			log.Warn("no pinned_root or pinned_signer for a key released by attestation: "+risk+"; pin the root or a publisher signer (docs/OPERATIONS.md, \"Rollback protection\")",
				"filesystem", i, "mount_point", fsys.MountPoint)
		}
	}
	return nil
}

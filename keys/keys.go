// Package keys is where the 32-byte release key comes from: a key file in development, or Azure
// secure key release in production (SEV-SNP report -> Azure Attestation token -> Key Vault or
// Managed HSM release -> unwrap). It hands back raw key bytes and never logs them.
package keys

import (
	"context"
	"fmt"
	"log/slog"
	"os"
)

// KeySize is the length of a release key in bytes.
const KeySize = 32

// ErrKeyFileSize: a key file does not hold exactly KeySize raw bytes.
var ErrKeyFileSize = fmt.Errorf("want exactly %d raw bytes", KeySize)

// Provider produces a release key. The caller owns the returned slice and zeroes it after use.
type Provider interface {
	ReleaseKey(ctx context.Context) ([]byte, error)
	// String names the provider for logs (a path or a key identifier, never key material).
	String() string
}

// FileProvider reads a raw 32-byte key file, the development default and the same format as the
// reference sidecar's keyfile.bin.
type FileProvider struct{ Path string }

func (p FileProvider) String() string { return "key file " + p.Path }

func (p FileProvider) ReleaseKey(context.Context) ([]byte, error) {
	return ReadKeyFile(p.Path)
}

// ReadKeyFile reads a raw 32-byte key file. A file that its group or other users may read or
// write gets a warning: the key is the only secret of the images it opens.
func ReadKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 {
		slog.Warn("key file is accessible to its group or other users; make it private with chmod 600",
			"path", path, "mode", fmt.Sprintf("%04o", st.Mode().Perm()))
	}
	if len(b) != KeySize {
		n := len(b)
		Zero(b)
		return nil, fmt.Errorf("key file %s holds %d bytes: %w", path, n, ErrKeyFileSize)
	}
	return b, nil
}

// Zero overwrites key material that is no longer needed.
func Zero(b []byte) {
	for i := range b {
		b[i] = 0
	}
}

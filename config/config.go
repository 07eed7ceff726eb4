// Package config reads the sidecar's configuration: the reference sidecar's JSON document (from a
// file, or base64 in the EncfsSideCarArgs environment variable) with encfs's own per-filesystem
// fields added. Decoding is strict: unknown fields, duplicate keys and type errors are reported
// with their JSON path, and the whole document is validated before anything is mounted.
package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// EnvVar is the environment variable holding the base64 configuration, as in the reference.
const EnvVar = "EncfsSideCarArgs"

// Config is the whole document.
type Config struct {
	AzureInfo        AzureInfo    `json:"azure_info"`
	AzureFilesystems []FileSystem `json:"azure_filesystems"`
}

// AzureInfo holds settings shared by all filesystems.
type AzureInfo struct {
	CertCache CertCache `json:"certcache"`
	Identity  Identity  `json:"identity"`
}

// CertCache says where to refresh the AMD VCEK chain (see keys.CertCache).
type CertCache struct {
	EndpointType string `json:"endpoint_type"`
	Endpoint     string `json:"endpoint"`
	TeeType      string `json:"tee_type"`
	APIVersion   string `json:"api_version"`
	ClientID     string `json:"client_id"` // accepted for compatibility; unused
}

// Identity selects a user-assigned managed identity by client id.
type Identity struct {
	ClientID string `json:"client_id"`
}

// FileSystem is one image to mount.
type FileSystem struct {
	MountPoint      string `json:"mount_point"`
	AzureURL        string `json:"azure_url"`         // https blob URL, or a local path / file:// URL
	AzureURLPrivate bool   `json:"azure_url_private"` // fetch with the managed identity's token
	// ReadWrite makes AzureURL a read-write volume (a page blob or local file made by `encfs
	// volume create`) rather than an image; MinGeneration then applies to the volume.
	ReadWrite bool `json:"read_write"`

	Key           *Key           `json:"key,omitempty"`
	KeyDerivation *KeyDerivation `json:"key_derivation,omitempty"`

	// encfs's own fields.

	// KeyFile is a raw 32-byte key file used instead of Key (development).
	KeyFile string `json:"key_file,omitempty"`
	// PinnedRoot is the image's integrity root (hex); any other image is refused before mounting.
	PinnedRoot string `json:"pinned_root,omitempty"`
	// Series is the image series (hex, as `encfs inspect` prints it): images of any other series
	// are refused. Required with min_generation and pinned_signer.
	Series string `json:"series,omitempty"`
	// MinGeneration refuses images of the series with a lower generation (rollback protection).
	MinGeneration uint64 `json:"min_generation,omitempty"`
	// PinnedSigner is the publisher's Ed25519 public key (hex): only images of the series it
	// signed are accepted, at or above min_generation.
	PinnedSigner string `json:"pinned_signer,omitempty"`
	// CacheSize bounds the in-memory verified-plaintext cache; 0 for the default.
	CacheSize ByteSize `json:"cache_size,omitempty"`
	// DiskCacheDir keeps fetched ciphertext on local disk in this directory, across restarts,
	// bounded by DiskCacheSize (default 1 GiB). Empty gives the mount a private cache sized to
	// the image (at most half the free space), removed at exit; "none" turns it off.
	DiskCacheDir  string   `json:"disk_cache_dir,omitempty"`
	DiskCacheSize ByteSize `json:"disk_cache_size,omitempty"`
	// Prefetch is "auto" (the default: fetch the whole image in the background when it fits
	// the caches), "all" (always), "none", or the absolute path of an access profile (encfs
	// mount --record-profile): its files first, in its order, then as auto.
	Prefetch string `json:"prefetch,omitempty"`
	// RecordProfile is an absolute path where the order in which files are first read is
	// written (by image inode number, see docs/OPERATIONS.md), for prefetch or encfs pack
	// --profile.
	RecordProfile string `json:"record_profile,omitempty"`
	// PublishSymlink mounts at a hidden <dir of mount_point>/.filesystem-N and then atomically
	// points mount_point at it, so consumers see the path only once it is ready (the reference
	// sidecar's behaviour).
	PublishSymlink bool `json:"publish_symlink,omitempty"`
}

// Key names the release key in Key Vault / Managed HSM and the authority that attests for it.
type Key struct {
	KID       string    `json:"kid"`
	KTY       string    `json:"kty"`
	KeyOps    []string  `json:"key_ops"`
	Authority Authority `json:"authority"`
	AKV       AKV       `json:"akv"`
}

// Authority is the Azure Attestation endpoint.
type Authority struct {
	Endpoint string `json:"endpoint"`
}

// AKV is the Key Vault or Managed HSM endpoint.
type AKV struct {
	Endpoint   string `json:"endpoint"`
	APIVersion string `json:"api_version"` // accepted for compatibility; the SDK picks its own
	// BearerToken is a fixed AAD token; usually empty so that managed identity is used.
	BearerToken Secret `json:"bearer_token"`
}

// KeyDerivation turns an RSA-HSM key into a symmetric key (HKDF-SHA256).
type KeyDerivation struct {
	Salt  string `json:"salt"` // hex
	Label string `json:"label"`
}

// Secret is a string that never prints or logs its value.
type Secret string

func (Secret) String() string               { return "<redacted>" }
func (Secret) GoString() string             { return "<redacted>" }
func (Secret) LogValue() slog.Value         { return slog.StringValue("<redacted>") }
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// MarshalJSON redacts too: a configuration printed as JSON must not carry the token.
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"<redacted>"`), nil }

// Load reads and validates a configuration file.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// ErrNoEnv is returned by FromEnv when EncfsSideCarArgs is not set.
var ErrNoEnv = errors.New("config: " + EnvVar + " is not set")

// FromEnv reads and validates the base64 configuration in EncfsSideCarArgs.
func FromEnv() (*Config, error) { return FromEnvVar(EnvVar) }

// FromEnvVar reads and validates the base64 configuration in the environment variable name.
func FromEnvVar(name string) (*Config, error) {
	v, ok := os.LookupEnv(name)
	if !ok || strings.TrimSpace(v) == "" {
		if name == EnvVar {
			return nil, ErrNoEnv
		}
		return nil, fmt.Errorf("config: %s is not set", name)
	}
	b, err := decodeBase64(v)
	if err != nil {
		return nil, fmt.Errorf("config: %s is not base64: %w", name, err)
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("config from %s: %w", name, err)
	}
	return c, nil
}

// Parse strictly decodes and validates a JSON document.
func Parse(b []byte) (*Config, error) {
	var c Config
	if err := decodeStrict(b, &c); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func decodeBase64(s string) ([]byte, error) {
	s = strings.Join(strings.Fields(s), "")
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		var b []byte
		if b, err = enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, err
}

// HiddenMountPoint is where filesystem index is mounted when PublishSymlink is set:
// <dir of mount_point>/.filesystem-<index>.
func (fs FileSystem) HiddenMountPoint(index int) string {
	return filepath.Join(filepath.Dir(filepath.Clean(fs.MountPoint)), fmt.Sprintf(".filesystem-%d", index))
}

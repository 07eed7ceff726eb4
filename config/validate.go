package config

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
)

// Validate checks the document as a whole and reports every problem, each with its path.
func (c *Config) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, &PathError{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	for _, e := range c.AzureInfo.CertCache.validate() {
		add(join("azure_info.certcache", e.Path), "%s", e.Msg)
	}
	if len(c.AzureFilesystems) == 0 {
		add("azure_filesystems", "no filesystems to mount")
	}
	mounts := map[string]int{}
	for i, fs := range c.AzureFilesystems {
		p := fmt.Sprintf("azure_filesystems[%d]", i)
		for _, e := range fs.validate() {
			add(join(p, e.Path), "%s", e.Msg)
		}
		if fs.MountPoint != "" {
			mp := filepath.Clean(fs.MountPoint)
			if j, dup := mounts[mp]; dup {
				add(p+".mount_point", "%s is also the mount point of azure_filesystems[%d]", fs.MountPoint, j)
			}
			mounts[mp] = i
		}
	}
	return errors.Join(errs...)
}

// validate checks a certificate cache setting; paths are relative to it.
func (c CertCache) validate() []*PathError {
	switch strings.ToLower(c.EndpointType) {
	case "", "localthim", "thim":
	case "azcache":
		if c.Endpoint == "" {
			return []*PathError{{Path: "endpoint", Msg: "required when endpoint_type is AzCache"}}
		}
	default:
		return []*PathError{{Path: "endpoint_type", Msg: fmt.Sprintf("%q: want LocalTHIM or AzCache", c.EndpointType)}}
	}
	return nil
}

// validate checks one filesystem; paths are relative to it.
func (fs *FileSystem) validate() []*PathError {
	var errs []*PathError
	add := func(path, format string, args ...any) {
		errs = append(errs, &PathError{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	switch {
	case fs.MountPoint == "":
		add("mount_point", "required: the path where consumers read the files")
	case !filepath.IsAbs(fs.MountPoint):
		add("mount_point", "%q must be an absolute path", fs.MountPoint)
	case filepath.Clean(fs.MountPoint) == "/":
		add("mount_point", "cannot be /")
	}
	if msg := checkImageURL(fs.AzureURL); msg != "" {
		add("azure_url", "%s", msg)
	}
	if fs.ReadWrite {
		// A read-write volume (docs/VOLUME.md), made with `encfs volume create`. The image
		// fields mean nothing for it: refused rather than silently ignored.
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"pinned_root", fs.PinnedRoot != ""}, {"series", fs.Series != ""}, {"pinned_signer", fs.PinnedSigner != ""},
			{"cache_size", fs.CacheSize != 0}, {"disk_cache_dir", fs.DiskCacheDir != ""}, {"disk_cache_size", fs.DiskCacheSize != 0},
			{"prefetch", fs.Prefetch != ""},
		} {
			if f.set {
				add(f.name, "applies to read-only images, not to a read_write volume; remove it")
			}
		}
	}
	switch {
	case fs.KeyFile != "" && fs.Key != nil:
		add("key_file", "set either key_file (development) or key (Azure secure key release), not both")
	case fs.KeyFile == "" && fs.Key == nil:
		add("key", "required: the Key Vault key to release (or key_file in development)")
	case fs.Key != nil:
		errs = append(errs, fs.Key.validate()...)
	}
	if fs.KeyDerivation != nil {
		if _, err := hex.DecodeString(fs.KeyDerivation.Salt); err != nil {
			add("key_derivation.salt", "must be hex")
		}
	}
	if fs.Key != nil && fs.Key.KTY == "RSA-HSM" && fs.KeyDerivation == nil {
		add("key_derivation", "required for an RSA-HSM key (salt, and optionally label)")
	}
	if fs.PinnedRoot != "" {
		if b, err := hex.DecodeString(fs.PinnedRoot); err != nil || len(b) != 32 {
			add("pinned_root", "want the image's 64-hex-character integrity root (see `encfs verify`)")
		}
	}
	if fs.Series != "" {
		if b, err := hex.DecodeString(fs.Series); err != nil || len(b) != 16 {
			add("series", "want the image's 32-hex-character series id (see `encfs inspect`)")
		}
	}
	if fs.PinnedSigner != "" {
		if b, err := hex.DecodeString(fs.PinnedSigner); err != nil || len(b) != 32 {
			add("pinned_signer", "want the publisher's 64-hex-character Ed25519 public key, as `encfs keygen` printed it with the signing key")
		}
	}
	if fs.Series == "" && fs.MinGeneration > 0 && !fs.ReadWrite {
		add("series", "required with min_generation: a generation counts within one image series, and without it an image of another dataset with a higher generation would mount")
	}
	if fs.Series == "" && fs.PinnedSigner != "" {
		add("series", "required with pinned_signer: without it any image the publisher signed, of any dataset, would mount")
	}
	if fs.CacheSize < 0 {
		add("cache_size", "must not be negative")
	}
	if fs.DiskCacheSize > 0 && fs.DiskCacheDir == "" {
		add("disk_cache_size", "set disk_cache_dir too")
	}
	if fs.DiskCacheDir != "" && fs.DiskCacheDir != "none" && !filepath.IsAbs(fs.DiskCacheDir) {
		add("disk_cache_dir", "%q must be an absolute path (or none)", fs.DiskCacheDir)
	}
	switch fs.Prefetch {
	case "", "auto", "all", "none":
	default:
		if !filepath.IsAbs(fs.Prefetch) {
			add("prefetch", "%q: want auto, all, none or the absolute path of an access profile", fs.Prefetch)
		}
	}
	if fs.RecordProfile != "" && !filepath.IsAbs(fs.RecordProfile) {
		add("record_profile", "%q must be an absolute path", fs.RecordProfile)
	}
	return errs
}

func (k *Key) validate() []*PathError {
	var errs []*PathError
	add := func(path, msg string) { errs = append(errs, &PathError{Path: "key." + path, Msg: msg}) }
	if k.KID == "" {
		add("kid", "required: the key's name in Key Vault")
	}
	switch k.KTY {
	case "", "oct", "oct-HSM", "RSA-HSM", "RSA":
	default:
		add("kty", fmt.Sprintf("%q: want oct-HSM, oct or RSA-HSM", k.KTY))
	}
	if k.Authority.Endpoint == "" {
		add("authority.endpoint", "required: the Azure Attestation endpoint, e.g. sharedeus2.eus2.attest.azure.net")
	} else if msg := checkHTTPSHost(k.Authority.Endpoint); msg != "" {
		add("authority.endpoint", msg)
	}
	if k.AKV.Endpoint == "" {
		add("akv.endpoint", "required: the Key Vault or Managed HSM, e.g. myvault.vault.azure.net")
	} else if msg := checkHTTPSHost(k.AKV.Endpoint); msg != "" {
		add("akv.endpoint", msg)
	}
	return errs
}

// checkHTTPSHost accepts a bare host name (the reference's form) or an https URL.
func checkHTTPSHost(s string) string {
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return fmt.Sprintf("%q is not a host name or https URL", s)
	}
	if u.Scheme != "https" {
		return fmt.Sprintf("%q must use https", s)
	}
	return ""
}

// checkImageURL accepts http(s) URLs, file:// URLs and absolute local paths.
func checkImageURL(s string) string {
	if s == "" {
		return "required: the image's blob URL (or a local path in development)"
	}
	if !strings.Contains(s, "://") {
		if !filepath.IsAbs(s) {
			return fmt.Sprintf("%q is neither a URL nor an absolute path", s)
		}
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Sprintf("%q is not a URL", s)
	}
	switch u.Scheme {
	case "https", "http":
		if u.Host == "" {
			return fmt.Sprintf("%q has no host", s)
		}
	case "file":
	default:
		return fmt.Sprintf("%q: want an https, http or file URL", s)
	}
	return ""
}

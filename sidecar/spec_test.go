package sidecar_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/config"
	"github.com/encfs/encfs/keys"
	"github.com/encfs/encfs/keys/skrtest"
	"github.com/encfs/encfs/sidecar"
)

// TestSpecsFromConfig: every setting of a configuration lands in its MountSpec, the defaults
// fill what it leaves out, and each filesystem's key comes from its own provider: a key file,
// or Azure key release over the release configuration of Options (here the test attestation
// service and Key Vault, with the real azkeys client).
func TestSpecsFromConfig(t *testing.T) {
	env := skrtest.NewEnv(t, skrtest.EnvOptions{})
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "release.key")
	fileKey := bytes.Repeat([]byte{7}, keys.KeySize)
	if err := os.WriteFile(keyFile, fileKey, 0o600); err != nil {
		t.Fatal(err)
	}
	doc, _ := json.Marshal(map[string]any{
		"azure_info": map[string]any{"identity": map[string]any{"client_id": "11111111-2222-3333-4444-555555555555"}},
		"azure_filesystems": []map[string]any{
			{"mount_point": "/mnt/share/a", "azure_url": "/images/a.img", "key_file": keyFile, "publish_symlink": true},
			{"mount_point": "/mnt/share/b", "azure_url": "https://acct.blob.core.windows.net/c/b.img", "key": env.ConfigKey(),
				"cache_size": "64MiB", "disk_cache_dir": "none", "prefetch": "all", "pinned_root": strings.Repeat("ab", 32)},
			{"mount_point": "/mnt/share/c", "azure_url": "https://acct.blob.core.windows.net/c/c.img", "key_file": keyFile,
				"disk_cache_dir": "/var/cache/encfs", "disk_cache_size": "2GiB"},
		},
	})
	c, err := config.Parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	o := sidecar.Options{LogPaths: true}
	env.Customize(&o.KeyRelease)
	specs, err := sidecar.SpecsFromConfig(c, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(specs) != 3 {
		t.Fatalf("%d specs for 3 filesystems", len(specs))
	}
	a, b, cc := specs[0], specs[1], specs[2]
	for i, s := range specs {
		if s.RequestTimeout != sidecar.ConfigReadTimeout || s.Source.Blob.Retry.Budget != sidecar.ConfigReadTimeout {
			t.Errorf("spec %d: read timeout %v, retry budget %v, want %v", i, s.RequestTimeout, s.Source.Blob.Retry.Budget, sidecar.ConfigReadTimeout)
		}
		if s.Source.Blob.ClientID != "11111111-2222-3333-4444-555555555555" {
			t.Errorf("spec %d: storage identity %q, want the configuration's client_id", i, s.Source.Blob.ClientID)
		}
		if !s.LogPaths || s.Log == nil || s.AllowOther != (os.Geteuid() == 0) {
			t.Errorf("spec %d: LogPaths %v, Log %v, AllowOther %v", i, s.LogPaths, s.Log, s.AllowOther)
		}
	}
	if a.Name != "filesystem 0 (/mnt/share/a)" || a.Image != "/images/a.img" || a.Mountpoint != "/mnt/share/a" {
		t.Errorf("filesystem 0: %q %q %q", a.Name, a.Image, a.Mountpoint)
	}
	if !a.Publish || a.HiddenDir != "/mnt/share/.filesystem-0" {
		t.Errorf("filesystem 0: publish %v at %q, want the reference's hidden .filesystem-0", a.Publish, a.HiddenDir)
	}
	if a.CacheBytes != sidecar.DefaultCacheBytes || a.Source.Chunk.DiskCache != blobio.AutoDiskCache || a.Prefetch != "" {
		t.Errorf("filesystem 0 defaults: cache %d, disk cache %q, prefetch %q", a.CacheBytes, a.Source.Chunk.DiskCache, a.Prefetch)
	}
	if b.Publish || b.CacheBytes != 64<<20 || b.Source.Chunk.DiskCache != "" || b.Prefetch != "all" || b.Pin.Root != strings.Repeat("ab", 32) {
		t.Errorf("filesystem 1: publish %v, cache %d, disk cache %q, prefetch %q, pin %+v", b.Publish, b.CacheBytes, b.Source.Chunk.DiskCache, b.Prefetch, b.Pin)
	}
	if cc.Source.Chunk.DiskCache != "/var/cache/encfs" || cc.Source.Chunk.DiskCacheBytes != 2<<30 {
		t.Errorf("filesystem 2: disk cache %q of %d bytes", cc.Source.Chunk.DiskCache, cc.Source.Chunk.DiskCacheBytes)
	}

	ctx := context.Background()
	ks, err := a.Keys(ctx)
	if err != nil || len(ks) != 1 || !bytes.Equal(ks[0], fileKey) {
		t.Fatalf("filesystem 0 (key_file): %d keys, %v", len(ks), err)
	}
	ks, err = b.Keys(ctx)
	if err != nil || len(ks) != 1 || !bytes.Equal(ks[0], env.ReleaseKey) {
		t.Fatalf("filesystem 1 (key release): %d keys, %v", len(ks), err)
	}
	if env.Vault.Releases() != 1 {
		t.Errorf("the test Key Vault released %d keys, want 1", env.Vault.Releases())
	}
}

// TestSpecsFromConfigNamesTheFilesystem: a key configuration that cannot work is refused
// before anything is mounted, naming the filesystem. (config.Parse refuses it too; a
// configuration built in code reaches SpecsFromConfig without that check.)
func TestSpecsFromConfigNamesTheFilesystem(t *testing.T) {
	c := &config.Config{AzureFilesystems: []config.FileSystem{
		{MountPoint: "/m/a", AzureURL: "/i", KeyFile: "/k"},
		{MountPoint: "/m/b", AzureURL: "/i", Key: &config.Key{KID: "k", KTY: "oct-HSM",
			Authority: config.Authority{Endpoint: "http://maa.example"}, AKV: config.AKV{Endpoint: "hsm.example"}}},
	}}
	_, err := sidecar.SpecsFromConfig(c, sidecar.Options{})
	if err == nil || !strings.Contains(err.Error(), "filesystem 1 (/m/b)") || !strings.Contains(err.Error(), "must use https") {
		t.Fatalf("error %v, want it to name filesystem 1 and say the authority must use https", err)
	}
}

package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/encfs/encfs/keys"
)

// reference is a configuration as the reference sidecar's documentation writes it.
const reference = `{
  "azure_info": {
    "certcache": {"endpoint_type": "LocalTHIM", "endpoint": "169.254.169.254/metadata/THIM/amd/certification", "tee_type": "SevSnpVM", "api_version": "api-version=2020-10-15-preview"},
    "identity": {"client_id": "11111111-2222-3333-4444-555555555555"}
  },
  "azure_filesystems": [
    {
      "mount_point": "/mnt/remote/share",
      "azure_url": "https://acct.blob.core.windows.net/c/encfs.img",
      "azure_url_private": true,
      "read_write": false,
      "key": {
        "kid": "encfs-key", "kty": "oct-HSM", "key_ops": ["encrypt"],
        "authority": {"endpoint": "sharedeus2.eus2.attest.azure.net"},
        "akv": {"endpoint": "myhsm.managedhsm.azure.net", "api_version": "api-version=7.3", "bearer_token": "SECRET-TOKEN"}
      },
      "key_derivation": {"salt": "00aa", "label": "Symmetric Encryption Key"}
    }
  ]
}`

func TestParseReference(t *testing.T) {
	c, err := Parse([]byte(reference))
	if err != nil {
		t.Fatal(err)
	}
	fs := c.AzureFilesystems[0]
	if fs.MountPoint != "/mnt/remote/share" || !fs.AzureURLPrivate || fs.Key.KID != "encfs-key" || fs.Key.AKV.BearerToken != "SECRET-TOKEN" {
		t.Fatalf("parsed %+v", fs)
	}
	if got := fs.HiddenMountPoint(0); got != "/mnt/remote/.filesystem-0" {
		t.Fatalf("hidden mount point %q", got)
	}
	cfg := fs.AzureSKRConfig(c.AzureInfo, keys.AzureSKRConfig{})
	if cfg.MAAEndpoint != "sharedeus2.eus2.attest.azure.net" || cfg.VaultURL != "myhsm.managedhsm.azure.net" || cfg.ClientID != "11111111-2222-3333-4444-555555555555" ||
		cfg.BearerToken != "SECRET-TOKEN" || cfg.Derivation.Salt != "00aa" || cfg.CertCache.EndpointType != "LocalTHIM" {
		t.Fatalf("release config %+v", cfg)
	}
	p, err := fs.KeyProvider(c.AzureInfo, keys.AzureSKRConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.(*keys.AzureSKR); !ok {
		t.Fatalf("provider %T", p)
	}
	// The token never prints.
	for _, s := range []string{fmt.Sprintf("%v %+v %#v %s", c, c, c, fs.Key.AKV.BearerToken), fmt.Sprint(p)} {
		if strings.Contains(s, "SECRET-TOKEN") {
			t.Fatalf("token printed: %s", s)
		}
	}
}

func TestEncfsFieldsAndKeyFile(t *testing.T) {
	c, err := Parse([]byte(`{"azure_filesystems":[{"mount_point":"/mnt/a","azure_url":"/data/a.img","key_file":"/keys/k.bin",
		"pinned_root":"` + strings.Repeat("ab", 32) + `","series":"` + strings.Repeat("cd", 16) + `","min_generation":7,"pinned_signer":"` + strings.Repeat("ef", 32) + `","cache_size":"256MiB","disk_cache_dir":"/var/cache/encfs",
		"disk_cache_size":1073741824,"publish_symlink":true,"key_derivation":null}]}`))
	if err != nil {
		t.Fatal(err)
	}
	fs := c.AzureFilesystems[0]
	if fs.CacheSize != 256<<20 || fs.DiskCacheSize != 1<<30 || fs.MinGeneration != 7 || fs.Series != strings.Repeat("cd", 16) || fs.PinnedSigner != strings.Repeat("ef", 32) || !fs.PublishSymlink {
		t.Fatalf("parsed %+v", fs)
	}
	p, err := fs.KeyProvider(c.AzureInfo, keys.AzureSKRConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if fp, ok := p.(keys.FileProvider); !ok || fp.Path != "/keys/k.bin" {
		t.Fatalf("provider %#v", p)
	}
}

func TestStrictDecodingPaths(t *testing.T) {
	cases := []struct{ doc, want string }{
		{`{"azure_filesystems":[{"mount_point":"/m","azure_url":"/i","key":{"kid":"k","authority":{"endpoint":"a.attest.azure.net"},"akv":{"endpont":"v"}}}]}`,
			`azure_filesystems[0].key.akv: unknown field "endpont" (did you mean "endpoint"?)`},
		{`{"azure_filesystems":[{"mount_point":"/m","azure_url":"/i","key_file":"/k"},{"mount_point":"/n","azure_url":"/i","key_file":"/k","read_write":"no"}]}`,
			`azure_filesystems[1].read_write: want true or false, got string`},
		{`{"azure_filesystems":[{"mount_point":"/m","azure_url":"/i","key_file":"/k","min_generation":-1}]}`,
			`azure_filesystems[0].min_generation: want an integer that fits uint64, got -1`},
		{`{"azure_filesystems":[{"mount_point":"/m","azure_url":"/i","key_file":"/k","cache_size":"lots"}]}`,
			`azure_filesystems[0].cache_size: size "lots"`},
		{`{"azure_filesystems":{"mount_point":"/m"}}`, `azure_filesystems: want an array, got object`},
		{`{"azure_info":{"identity":{"client_id":5}},"azure_filesystems":[]}`, `azure_info.identity.client_id: want a string, got number`},
		{`{"azure_filesystems":[{"mount_point":"/m","mount_point":"/n"}]}`, `azure_filesystems[0].mount_point: duplicate key`},
		{`{"Azure_Filesystems":[]}`, `unknown field "Azure_Filesystems" (did you mean "azure_filesystems"?)`},
		{`{"azure_filesystems":[}`, `invalid JSON at line 1`},
		{``, `empty document`},
	}
	for _, tc := range cases {
		_, err := Parse([]byte(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant %s", tc.doc, err, tc.want)
		}
		var pe *PathError
		if err != nil && strings.Contains(tc.want, ": ") && !errors.As(err, &pe) {
			t.Errorf("%s: %v is not a *PathError", tc.doc, err)
		}
	}
}

func TestValidation(t *testing.T) {
	cases := []struct{ doc, want string }{
		{`{"azure_filesystems":[]}`, "azure_filesystems: no filesystems to mount"},
		{`{"azure_filesystems":[{"azure_url":"/i","key_file":"/k"}]}`, "azure_filesystems[0].mount_point: required"},
		{`{"azure_filesystems":[{"mount_point":"rel","azure_url":"/i","key_file":"/k"}]}`, "must be an absolute path"},
		{`{"azure_filesystems":[{"mount_point":"/m","azure_url":"/i","key_file":"/k","read_write":true,"pinned_root":"00"}]}`,
			"azure_filesystems[0].pinned_root: applies to read-only images, not to a read_write volume"},
		{`{"azure_filesystems":[{"mount_point":"/m","azure_url":"/i","key_file":"/k","read_write":true,"prefetch":"all"}]}`,
			"azure_filesystems[0].prefetch: applies to read-only images"},
		{`{"azure_filesystems":[{"mount_point":"/m","azure_url":"/i"}]}`, "azure_filesystems[0].key: required"},
		{`{"azure_filesystems":[{"mount_point":"/m","azure_url":"ftp://x/i","key_file":"/k"}]}`, "azure_filesystems[0].azure_url"},
		{`{"azure_filesystems":[{"mount_point":"/m","azure_url":"/i","key_file":"/k","pinned_root":"abc"}]}`, "azure_filesystems[0].pinned_root"},
		{`{"azure_filesystems":[{"mount_point":"/m","azure_url":"/i","key_file":"/k","disk_cache_size":"1G"}]}`, "disk_cache_size: set disk_cache_dir too"},
		{`{"azure_filesystems":[{"mount_point":"/m","azure_url":"/i","key_file":"/k"},{"mount_point":"/m/","azure_url":"/i","key_file":"/k"}]}`,
			"azure_filesystems[1].mount_point: /m/ is also the mount point of azure_filesystems[0]"},
		{`{"azure_filesystems":[{"mount_point":"/m","azure_url":"/i","key":{"kid":"k","kty":"RSA-HSM","authority":{"endpoint":"a"},"akv":{"endpoint":"http://v"}}}]}`,
			"azure_filesystems[0].key.akv.endpoint: \"http://v\" must use https"},
		{`{"azure_filesystems":[{"mount_point":"/m","azure_url":"/i","key":{"kid":"k","kty":"RSA-HSM","authority":{"endpoint":"a"},"akv":{"endpoint":"v"}}}]}`,
			"azure_filesystems[0].key_derivation: required for an RSA-HSM key"},
		{`{"azure_info":{"certcache":{"endpoint_type":"Other"}},"azure_filesystems":[{"mount_point":"/m","azure_url":"/i","key_file":"/k"}]}`,
			"azure_info.certcache.endpoint_type"},
	}
	for _, tc := range cases {
		_, err := Parse([]byte(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant %s", tc.doc, err, tc.want)
		}
	}
	// Every problem is reported, not just the first.
	_, err := Parse([]byte(`{"azure_filesystems":[{"read_write":true,"series":"00"}]}`))
	for _, want := range []string{"mount_point", "azure_url", "series", "key"} {
		if err == nil || !strings.Contains(err.Error(), "azure_filesystems[0]."+want) {
			t.Errorf("combined error %v lacks %s", err, want)
		}
	}
}

func TestFromEnv(t *testing.T) {
	t.Setenv(EnvVar, "")
	if _, err := FromEnv(); !errors.Is(err, ErrNoEnv) {
		t.Fatalf("unset: %v", err)
	}
	t.Setenv(EnvVar, base64.StdEncoding.EncodeToString([]byte(reference)))
	c, err := FromEnv()
	if err != nil || c.AzureFilesystems[0].Key.KID != "encfs-key" {
		t.Fatalf("%+v %v", c, err)
	}
	t.Setenv(EnvVar, "!!!")
	if _, err := FromEnv(); err == nil || !strings.Contains(err.Error(), "not base64") {
		t.Fatalf("bad base64: %v", err)
	}
}

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{"0": 0, "4096": 4096, "64MiB": 64 << 20, "2G": 2 << 30, "1.5GiB": 3 << 29, "10MB": 10e6, "512 KiB": 512 << 10, "7B": 7} {
		if got, err := ParseByteSize(in); err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "MiB", "1e30", "12 parsecs"} {
		if _, err := ParseByteSize(bad); err == nil {
			t.Errorf("ParseByteSize(%q) accepted", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(reference))
	f.Add([]byte(`{"azure_filesystems":[{"mount_point":"/m","azure_url":"/i","key_file":"/k","cache_size":"1G"}]}`))
	f.Add([]byte(`{"a":{"b":[1,2,{"c":null}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			return
		}
		// Whatever passes must be a valid configuration.
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted an invalid document: %v", err)
		}
	})
}

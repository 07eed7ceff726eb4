package config

import (
	"crypto/x509"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/encfs/encfs/keys"
)

func TestParseSKRArgs(t *testing.T) {
	// The reference's documented shape.
	doc := `{"certcache":{"endpoint_type":"AzCache","endpoint":"americas.acccache.azure.net","tee_type":"SevSnpVM","api_version":"api-version=2020-10-15-preview"},"identity":{"client_id":"1234"},"maaconfig":{"user_agent":"x"}}`
	a, err := ParseSKRArgs(base64.StdEncoding.EncodeToString([]byte(doc)))
	if err != nil {
		t.Fatal(err)
	}
	cfg := a.AttestationConfig(keys.AzureSKRConfig{})
	if cfg.CertCache.EndpointType != "AzCache" || cfg.CertCache.Endpoint != "americas.acccache.azure.net" || cfg.ClientID != "1234" {
		t.Fatalf("got %+v", cfg)
	}
	if a, err := ParseSKRArgs(""); err != nil || a.CertCache.EndpointType != "" {
		t.Fatalf("empty value: %+v %v", a, err)
	}
	for _, tc := range []struct{ in, want string }{
		{"%%%", "not base64"},
		{base64.StdEncoding.EncodeToString([]byte(`{"certcache":{"endpoint_typ":"AzCache"}}`)), "endpoint_typ"},
		{base64.StdEncoding.EncodeToString([]byte(`{"certcache":{"endpoint_type":"AzCache"}}`)), "certcache.endpoint: required"},
		{base64.StdEncoding.EncodeToString([]byte(`{"certcache":{"endpoint_type":"Other"}}`)), "certcache.endpoint_type"},
		{base64.StdEncoding.EncodeToString([]byte(`[1]`)), "SkrSideCarArgs"},
	} {
		_, err := ParseSKRArgs(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want it to mention %q", tc.in, err, tc.want)
		}
	}
}

// TestReleaseConfigOverBase: what a configuration gives is written over the release
// configuration base; what it leaves out (here the certificate cache and the identity) and what
// it cannot say (the HTTP client, the trust roots) stay as the base has them.
func TestReleaseConfigOverBase(t *testing.T) {
	base := keys.AzureSKRConfig{ClientID: "base-identity", CertCache: keys.CertCache{EndpointType: "LocalTHIM", Endpoint: "https://thim.test"},
		HTTPClient: &http.Client{}, JWSRoots: x509.NewCertPool(), SecurityContextDir: "/ctx"}
	bare, err := Parse([]byte(`{"azure_filesystems":[{"mount_point":"/m","azure_url":"/i","key":{"kid":"k","kty":"oct-HSM","authority":{"endpoint":"maa.test"},"akv":{"endpoint":"hsm.test"}}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	cfg := bare.AzureFilesystems[0].AzureSKRConfig(bare.AzureInfo, base)
	if cfg.KeyName != "k" || cfg.VaultURL != "hsm.test" || cfg.MAAEndpoint != "maa.test" || cfg.KeyType != "oct-HSM" {
		t.Errorf("the filesystem's key did not reach the release configuration: %+v", cfg)
	}
	if cfg.ClientID != base.ClientID || cfg.CertCache != base.CertCache || cfg.HTTPClient != base.HTTPClient || cfg.JWSRoots != base.JWSRoots || cfg.SecurityContextDir != "/ctx" {
		t.Errorf("the base was not kept where the configuration says nothing: %+v", cfg)
	}
	if a := (SKRArgs{}).AttestationConfig(base); a.ClientID != base.ClientID || a.CertCache != base.CertCache || a.HTTPClient != base.HTTPClient {
		t.Errorf("empty SkrSideCarArgs over the base: %+v", a)
	}

	full, err := Parse([]byte(`{"azure_info":{"certcache":{"endpoint_type":"AzCache","endpoint":"americas.acccache.azure.net"},"identity":{"client_id":"cfg-identity"}},
		"azure_filesystems":[{"mount_point":"/m","azure_url":"/i","key":{"kid":"k","kty":"oct-HSM","authority":{"endpoint":"maa.test"},"akv":{"endpoint":"hsm.test"}}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	cfg = full.AzureFilesystems[0].AzureSKRConfig(full.AzureInfo, base)
	if cfg.ClientID != "cfg-identity" || cfg.CertCache.EndpointType != "AzCache" || cfg.CertCache.Endpoint != "americas.acccache.azure.net" || cfg.HTTPClient != base.HTTPClient {
		t.Errorf("the configuration's identity and certificate cache did not win over the base: %+v", cfg)
	}
}

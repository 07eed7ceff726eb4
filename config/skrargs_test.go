package config

import (
	"encoding/base64"
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

package config

import (
	"errors"
	"fmt"
	"strings"

	"github.com/encfs/encfs/keys"
)

// SKREnvVar is the environment variable holding the key release API's settings (base64 JSON), as
// the reference SKR sidecar reads them.
const SKREnvVar = "SkrSideCarArgs"

// SKRArgs are the settings of the key release API (`encfs skr`), the reference SKR sidecar's
// document: where to refresh the AMD certificates, and which managed identity asks for Key Vault
// tokens when a request carries no access_token. Every field is optional.
type SKRArgs struct {
	CertCache CertCache `json:"certcache"`
	Identity  Identity  `json:"identity"`
	MAAConfig MAAConfig `json:"maaconfig"`
}

// MAAConfig holds the reference's Azure Attestation client settings.
type MAAConfig struct {
	UserAgent string `json:"user_agent"` // accepted for compatibility; unused
}

// ParseSKRArgs strictly decodes and validates the base64 JSON of SkrSideCarArgs. An empty value
// gives the defaults (certificates from the local THIM endpoint, the default identity).
func ParseSKRArgs(b64 string) (*SKRArgs, error) {
	var a SKRArgs
	if strings.TrimSpace(b64) == "" {
		return &a, nil
	}
	b, err := decodeBase64(b64)
	if err != nil {
		return nil, fmt.Errorf("%s is not base64 (encode the JSON with base64 -w0): %w", SKREnvVar, err)
	}
	if err := decodeStrict(b, &a); err != nil {
		return nil, fmt.Errorf("%s: %w", SKREnvVar, err)
	}
	var errs []error
	for _, e := range a.CertCache.validate() {
		errs = append(errs, &PathError{Path: join("certcache", e.Path), Msg: e.Msg})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%s: %w", SKREnvVar, err)
	}
	return &a, nil
}

// AttestationConfig is the base release configuration the key release API builds each request's
// release on: base with the certificate cache and identity of these settings where they give
// them. base holds what the settings do not say (the SEV-SNP device, the HTTP client, trust
// roots); its zero value is what production runs with.
func (a SKRArgs) AttestationConfig(base keys.AzureSKRConfig) keys.AzureSKRConfig {
	return withIdentityAndCertCache(base, a.Identity, a.CertCache)
}

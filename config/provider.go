package config

import (
	"github.com/encfs/encfs/keys"
)

// KeyProvider returns where this filesystem's release key comes from: its key file, or Azure
// secure key release configured by AzureSKRConfig(info, base).
func (fs FileSystem) KeyProvider(info AzureInfo, base keys.AzureSKRConfig) (keys.Provider, error) {
	if fs.KeyFile != "" {
		return keys.FileProvider{Path: fs.KeyFile}, nil
	}
	p, err := keys.NewAzureSKR(fs.AzureSKRConfig(info, base))
	if err != nil {
		return nil, err // not a typed nil inside the interface
	}
	return p, nil
}

// AzureSKRConfig is the secure key release configuration of this filesystem (its Key must be
// set): base with the filesystem's key, vault, attestation authority and key derivation written
// over it, and info's identity and certificate cache where the configuration gives them. base
// holds what a configuration does not say (the SEV-SNP device, the HTTP client, trust roots); its
// zero value is what production runs with.
func (fs FileSystem) AzureSKRConfig(info AzureInfo, base keys.AzureSKRConfig) keys.AzureSKRConfig {
	cfg := withIdentityAndCertCache(base, info.Identity, info.CertCache)
	if fs.Key != nil {
		cfg.MAAEndpoint = fs.Key.Authority.Endpoint
		cfg.VaultURL = fs.Key.AKV.Endpoint
		cfg.KeyName = fs.Key.KID
		cfg.KeyType = fs.Key.KTY
		cfg.BearerToken = string(fs.Key.AKV.BearerToken)
	}
	if fs.KeyDerivation != nil {
		cfg.Derivation = keys.KeyDerivation{Salt: fs.KeyDerivation.Salt, Label: fs.KeyDerivation.Label}
	}
	return cfg
}

// withIdentityAndCertCache sets the managed identity and the certificate cache of a
// configuration over base, each where the configuration gives it.
func withIdentityAndCertCache(base keys.AzureSKRConfig, id Identity, cc CertCache) keys.AzureSKRConfig {
	if id.ClientID != "" {
		base.ClientID = id.ClientID
	}
	if c := (keys.CertCache{EndpointType: cc.EndpointType, Endpoint: cc.Endpoint, TeeType: cc.TeeType, APIVersion: cc.APIVersion}); c != (keys.CertCache{}) {
		base.CertCache = c
	}
	return base
}

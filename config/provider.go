package config

import (
	"github.com/encfs/encfs/keys"
)

// KeyProvider returns where this filesystem's release key comes from: its key file, or Azure
// secure key release with info's identity and certificate cache. Each customize function may
// adjust the release configuration (tests point it at skrtest.Env.Customize).
func (fs FileSystem) KeyProvider(info AzureInfo, customize ...func(*keys.AzureSKRConfig)) (keys.Provider, error) {
	if fs.KeyFile != "" {
		return keys.FileProvider{Path: fs.KeyFile}, nil
	}
	cfg := fs.AzureSKRConfig(info)
	for _, f := range customize {
		f(&cfg)
	}
	p, err := keys.NewAzureSKR(cfg)
	if err != nil {
		return nil, err // not a typed nil inside the interface
	}
	return p, nil
}

// AzureSKRConfig is the secure key release configuration of this filesystem (its Key must be set).
func (fs FileSystem) AzureSKRConfig(info AzureInfo) keys.AzureSKRConfig {
	cfg := keys.AzureSKRConfig{
		ClientID: info.Identity.ClientID,
		CertCache: keys.CertCache{
			EndpointType: info.CertCache.EndpointType,
			Endpoint:     info.CertCache.Endpoint,
			TeeType:      info.CertCache.TeeType,
			APIVersion:   info.CertCache.APIVersion,
		},
	}
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

package azure_test

import (
	"context"
	"net/url"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/blobio/azure"
	"github.com/encfs/encfs/blobio/azuritetest"
)

// badAudience issues a token for the wrong service.
type badAudience struct{}

func (badAudience) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	now := time.Now()
	return azcore.AccessToken{Token: azuritetest.MakeJWT("https://vault.azure.net", now, now.Add(time.Hour)), ExpiresOn: now.Add(time.Hour)}, nil
}

// openURL opens the Azure blob at loc.
func openURL(ctx context.Context, loc string, o azure.Options) (blobio.Source, error) {
	u, err := url.Parse(loc)
	if err != nil {
		return nil, err
	}
	s, err := azure.Open(ctx, u, o)
	if err != nil {
		return nil, err
	}
	return s, nil
}

package blobio_test

import (
	"context"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/encfs/encfs/blobio/azuritetest"
)

// badAudience issues a token for the wrong service.
type badAudience struct{}

func (badAudience) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	now := time.Now()
	return azcore.AccessToken{Token: azuritetest.MakeJWT("https://vault.azure.net", now, now.Add(time.Hour)), ExpiresOn: now.Add(time.Hour)}, nil
}

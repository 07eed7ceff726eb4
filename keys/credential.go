package keys

import (
	"context"
	"errors"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// NewCredential picks how to get Entra ID (AAD) tokens: a fixed bearer token when one is
// configured; workload identity when AZURE_FEDERATED_TOKEN_FILE is set (AKS); otherwise managed
// identity, user-assigned when clientID is given. opts configures the identity client's HTTP
// pipeline (nil for defaults).
func NewCredential(bearerToken, clientID string, getenv func(string) string, opts *azcore.ClientOptions) (azcore.TokenCredential, error) {
	if bearerToken != "" {
		return NewStaticCredential(bearerToken), nil
	}
	var co azcore.ClientOptions
	if opts != nil {
		co = *opts
	}
	if getenv("AZURE_FEDERATED_TOKEN_FILE") != "" {
		return azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
			ClientOptions: co,
			ClientID:      clientID,
		})
	}
	mo := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: co}
	if clientID != "" {
		mo.ID = azidentity.ClientID(clientID)
	}
	return azidentity.NewManagedIdentityCredential(mo)
}

// NewStaticCredential sends a fixed AAD access token (the reference's akv.bearer_token).
func NewStaticCredential(token string) azcore.TokenCredential { return staticToken(token) }

// staticToken is a configured bearer token (the reference's akv.bearer_token). Its String form
// hides the value so that printing the credential cannot leak it.
type staticToken string

func (t staticToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(t), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func (staticToken) String() string   { return "static bearer token" }
func (staticToken) GoString() string { return "keys.staticToken(<redacted>)" }

// stagedCredential tags token failures with StageAADToken so they are not mistaken for Key Vault
// refusing the release.
type stagedCredential struct{ azcore.TokenCredential }

func (c stagedCredential) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := c.TokenCredential.GetToken(ctx, o)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			err = &Error{Stage: StageAADToken, Err: err}
		}
	}
	return tok, err
}

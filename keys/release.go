package keys

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

// KeyVaultOptions configures the azkeys client pipeline shared by release and import: the
// transport (tests trust their own TLS server), bounded retries and per-try timeouts.
type KeyVaultOptions struct {
	HTTPClient *http.Client  // nil: the SDK's default
	Retries    int           // retries after the first try; 0 for 3
	TryTimeout time.Duration // per try; 0 for the SDK default
	RetryDelay time.Duration // first backoff delay; 0 for the SDK default
}

// NewKeyVaultClient builds an azkeys client for vaultURL with cred.
func NewKeyVaultClient(vaultURL string, cred azcore.TokenCredential, o KeyVaultOptions) (*azkeys.Client, error) {
	// The bearer challenge's resource is always checked against the vault's domain, so that a
	// token is never sent to a host that only claims to be a vault.
	co := &azkeys.ClientOptions{}
	if o.HTTPClient != nil {
		co.Transport = o.HTTPClient
	}
	co.Retry = policy.RetryOptions{MaxRetries: int32(o.Retries), TryTimeout: o.TryTimeout, RetryDelay: o.RetryDelay}
	if o.Retries == 0 {
		co.Retry.MaxRetries = 3
	}
	return azkeys.NewClient(vaultURL, stagedCredential{cred}, co)
}

// releaseKey asks Key Vault to release the key wrapped to the attestation token's runtime key.
func releaseKey(ctx context.Context, c *azkeys.Client, name, version, alg, token, nonce string) (string, error) {
	a := azkeys.KeyEncryptionAlgorithm(alg)
	resp, err := c.Release(ctx, name, version, azkeys.ReleaseParameters{
		TargetAttestationToken: &token,
		Algorithm:              &a,
		Nonce:                  &nonce,
	}, nil)
	if err != nil {
		return "", keyVaultError(StageKeyRelease, err)
	}
	if resp.Value == nil || *resp.Value == "" {
		return "", stageErr(StageKeyRelease, "Key Vault answered without a released key")
	}
	return *resp.Value, nil
}

// keyVaultError maps an azkeys failure to a release *Error. azcore's own error text repeats the
// whole response; only the service's code and message are kept.
func keyVaultError(stage Stage, err error) error {
	var staged *Error
	if errors.As(err, &staged) {
		return staged // the credential already named its stage
	}
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return &Error{Stage: stage, Err: fmt.Errorf("Key Vault unreachable: %w", err)}
	}
	e := &Error{Stage: stage, StatusCode: re.StatusCode, Code: re.ErrorCode}
	if re.RawResponse != nil && re.RawResponse.Body != nil {
		// azcore buffers the body of an error response, so it can be read again here.
		body, _ := io.ReadAll(io.LimitReader(re.RawResponse.Body, maxResponse))
		code, msg := serviceMessage(body)
		if e.Code == "" {
			e.Code = code
		}
		e.Message = msg
	}
	switch {
	case re.StatusCode == http.StatusUnauthorized:
		e.Err = fmt.Errorf("%w: Key Vault did not accept the identity's token", ErrAccessDenied)
	case re.StatusCode == http.StatusForbidden && (stage != StageKeyRelease || e.Code == "ForbiddenByRbac" || e.Code == "ForbiddenByPolicy" || e.Code == "AccessDenied"):
		// Only a release is judged against the release policy; any other 403 is about permissions.
		e.Err = fmt.Errorf("%w: the identity lacks the permission for this operation on the key", ErrAccessDenied)
	case re.StatusCode == http.StatusForbidden:
		e.Err = fmt.Errorf("%w: the attestation token does not satisfy it (check the container policy hash, x-ms-sevsnpvm-hostdata)", ErrPolicyNotMet)
	case re.StatusCode == http.StatusNotFound:
		e.Err = errors.New("no such key or key version in the vault")
	case retryableStatus(re.StatusCode):
		e.Err = ErrUnavailable
	default:
		e.Err = errors.New("Key Vault rejected the request")
	}
	return e
}

package azure

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/encfs/encfs/blobio"
)

// TestDiagnoseRealAzureCodes feeds the answers real Azure Storage sends (from its "common REST
// API error codes" and blob service error code pages), which Azurite does not all reproduce,
// and checks that each hint names its cause.
func TestDiagnoseRealAzureCodes(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	const host = "https://acct.blob.core.windows.net/images/model.img"
	facts := func(op, query string, auth Auth) requestFacts {
		u, err := url.Parse(host + query)
		if err != nil {
			t.Fatal(err)
		}
		return newRequestFacts(op, u, azureCred{mode: auth})
	}
	validSAS := "?sv=2022-11-02&sr=b&sp=r&st=2026-11-29T11:00:00Z&se=2026-11-29T13:00:00Z&sig=abc"
	for _, c := range []struct {
		name         string
		kind         error
		status       int
		code, detail string
		r            requestFacts
		want         []string
	}{
		{"signature mismatch, blob SAS", blobio.ErrAuth, 403, "AuthenticationFailed", "Signature did not match", facts("open", validSAS, AuthSAS),
			[]string{"does not fit this URL", "blob SAS", "check the names"}},
		{"signature mismatch, container SAS", blobio.ErrAuth, 403, "AuthenticationFailed", "", facts("open", strings.Replace(validSAS, "sr=b", "sr=c", 1), AuthSAS),
			[]string{"container SAS", "check the name"}},
		{"expired SAS", blobio.ErrAuth, 403, "AuthenticationFailed", "Signature not valid in the specified time frame", facts("read", strings.Replace(validSAS, "se=2026-11-29T13:00:00Z", "se=2026-11-29T11:30:00Z", 1), AuthSAS),
			[]string{"expired at 2026-11-29T11:30:00Z"}},
		{"SAS not yet valid", blobio.ErrAuth, 403, "AuthenticationFailed", "", facts("open", strings.Replace(validSAS, "st=2026-11-29T11:00:00Z", "st=2026-11-29T12:30:00Z", 1), AuthSAS),
			[]string{"valid only from 2026-11-29T12:30:00Z", "clock"}},
		{"time frame without se/st (clock skew)", blobio.ErrAuth, 403, "AuthenticationFailed", "Signature not valid in the specified time frame", facts("open", "?sv=2022-11-02&sr=b&sp=r&sig=abc", AuthSAS),
			[]string{"validity window", "clock"}},
		{"SAS lacks read", blobio.ErrAuth, 403, "AuthorizationPermissionMismatch", "", facts("open", strings.Replace(validSAS, "sp=r", "sp=cw", 1), AuthSAS),
			[]string{"sp=cw", "open needs r"}},
		{"SAS lacks write for upload", blobio.ErrAuth, 403, "AuthorizationPermissionMismatch", "", facts("upload to", validSAS, AuthSAS),
			[]string{"sp=r", "upload needs cw"}},
		{"firewall with a valid SAS", blobio.ErrAuth, 403, "AuthorizationFailure", "", facts("open", validSAS, AuthSAS),
			[]string{"firewall"}},
		{"signature mismatch on Azurite (AuthorizationFailure)", blobio.ErrAuth, 403, "AuthorizationFailure", "", func() requestFacts {
			u, _ := url.Parse("http://127.0.0.1:10000/devstoreaccount1/images/model.img" + validSAS)
			return newRequestFacts("open", u, azureCred{mode: AuthSAS})
		}(), []string{"does not fit this URL", "blob SAS"}},
		{"no credential, 401", blobio.ErrAuth, 401, "NoAuthenticationInformation", "", facts("open", "", AuthAuto),
			[]string{"no credential was sent", "sp=r"}},
		{"anonymous on a private container, 404", blobio.ErrNotFound, 404, "ResourceNotFound", "", facts("open", "", AuthAnonymous),
			[]string{"private container", "SAS"}},
		{"wrong account key", blobio.ErrAuth, 403, "AuthenticationFailed", "The MAC signature found in the HTTP request is not the same as any computed signature", facts("open", "", AuthConnectionString),
			[]string{"AccountKey", `"acct"`}},
		{"identity without a role", blobio.ErrAuth, 403, "AuthorizationPermissionMismatch", "", facts("open", "", AuthIdentity),
			[]string{"Storage Blob Data Reader", `"images"`}},
		{"identity without a role, upload", blobio.ErrAuth, 403, "AuthorizationFailure", "", facts("upload to", "", AuthIdentity),
			[]string{"Storage Blob Data Contributor"}},
		{"token refused", blobio.ErrAuth, 401, "InvalidAuthenticationInfo", "", facts("open", "", AuthIdentity),
			[]string{"token was refused"}},
		{"container missing", blobio.ErrNotFound, 404, "ContainerNotFound", "", facts("open", validSAS, AuthSAS),
			[]string{`no container "images"`}},
		{"container missing, upload with a SAS", blobio.ErrNotFound, 404, "ContainerNotFound", "", facts("upload to", strings.Replace(validSAS, "sp=r", "sp=cw", 1), AuthSAS),
			[]string{"a SAS cannot create it", "az storage container create -n images"}},
		{"blob missing", blobio.ErrNotFound, 404, "BlobNotFound", "", facts("open", validSAS, AuthSAS),
			[]string{`no blob "model.img"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := diagnose(c.kind, c.status, c.code, c.detail, c.r, now)
			for _, w := range c.want {
				if !strings.Contains(h, w) {
					t.Errorf("hint %q does not contain %q", h, w)
				}
			}
			if len(h) > 200 {
				t.Errorf("hint of %d characters: %s", len(h), h)
			}
		})
	}
	if h := diagnose(blobio.ErrAuth, 0, "", "the identity could not get a token", facts("open", "", AuthIdentity), now); h != "" {
		t.Errorf("a token failure (no answer from storage) got a storage diagnosis: %q", h)
	}
	if h := diagnose(blobio.ErrUnreachable, 503, "ServerBusy", "", facts("read", validSAS, AuthSAS), now); h != "" {
		t.Errorf("a transient failure got a diagnosis: %q", h)
	}
}

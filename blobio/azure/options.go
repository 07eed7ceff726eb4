package azure

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/encfs/encfs/blobio/internal/remote"
	"github.com/encfs/encfs/internal/redact"
	"github.com/encfs/encfs/internal/retry"
)

// Options say how Open, Upload and CheckUpload reach a blob.
type Options struct {
	// AnyHost accepts an upload URL that IsAzureURL does not recognise as Azure (a custom
	// domain or a private endpoint addressed by IP). Open takes any URL it is given.
	AnyHost bool
	// Auth picks the Azure credential; AuthAuto (the zero value) chooses as documented on Auth.
	Auth Auth
	// ClientID selects a user-assigned managed identity (or the workload identity's app).
	ClientID string
	// Credential, when set, is used for Azure bearer-token access instead of azidentity.
	Credential azcore.TokenCredential
	// ConnectionString overrides AZURE_STORAGE_CONNECTION_STRING (development).
	ConnectionString string
	// HTTPClient carries every request (tests set custom TLS roots); nil uses a shared pool.
	HTTPClient *http.Client
	// Retry bounds the retries of one operation: a read's own deadline (its context's) and
	// Retry.Budget, whichever comes first. Budget defaults to 60s.
	Retry retry.Policy
}

// transport returns the HTTP client for the Azure SDK, sharing one connection pool.
func (o Options) transport() policy.Transporter {
	if o.HTTPClient != nil {
		return o.HTTPClient
	}
	return remote.SharedHTTPClient()
}

// azureHostSuffixes are the blob endpoints of the public and sovereign clouds, and the DNS-zone
// endpoints of accounts created with Azure DNS zone endpoints. Private endpoints keep these
// names (resolved through privatelink zones), so they match too.
var azureHostSuffixes = []string{
	".blob.core.windows.net",      // public cloud
	".blob.core.chinacloudapi.cn", // Azure China
	".blob.core.usgovcloudapi.net",
	".blob.core.cloudapi.de",
	".blob.storage.azure.net", // DNS zone endpoints (ACCOUNT.zNN.blob.storage.azure.net)
}

// IsAzureURL reports whether Open treats u as Azure Blob Storage. The rule, in order:
//   - the scheme is azure://, azure+https:// or azure+http:// (an explicit hint, rewritten to
//     https or http);
//   - the host ends in a known blob endpoint suffix (azureHostSuffixes);
//   - the URL is path-style with the development account, /devstoreaccount1/... (Azurite);
//   - the query string is an Azure SAS (sv= and sig=).
//
// Anything else is a generic HTTPS range source (blobio/location says how to force Azure for a
// custom domain).
func IsAzureURL(u *url.URL) bool {
	if strings.HasPrefix(u.Scheme, "azure") {
		return true
	}
	host := strings.ToLower(u.Hostname())
	for _, s := range azureHostSuffixes {
		if strings.HasSuffix(host, s) {
			return true
		}
	}
	if strings.HasPrefix(u.Path, "/devstoreaccount1/") {
		return true
	}
	q := u.Query()
	return q.Get("sv") != "" && q.Get("sig") != ""
}

// Open opens an Azure blob (u's scheme may be azure://, azure+https:// or azure+http://, the
// explicit hints IsAzureURL knows). See Auth for the credentials it tries. The source is
// pinned to the version seen here: a later replacement fails reads with blobio.ErrChanged.
func Open(ctx context.Context, u *url.URL, opts Options) (*Source, error) {
	c := *u
	u = &c
	switch strings.ToLower(u.Scheme) {
	case "azure", "azure+https":
		u.Scheme = "https"
	case "azure+http":
		u.Scheme = "http"
	}
	// Path-style URLs (Azurite, an endpoint addressed by IP) put the account first.
	need := 2
	if h := u.Hostname(); net.ParseIP(h) != nil || h == "localhost" || !strings.Contains(h, ".") {
		need = 3
	}
	if parts := strings.SplitN(strings.Trim(u.Path, "/"), "/", need); len(parts) < need || parts[need-1] == "" {
		return nil, fmt.Errorf("open %s: an Azure blob URL needs a container and a blob name: https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB", redact.URL(u))
	}
	return openAzure(ctx, u, opts)
}

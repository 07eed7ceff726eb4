package blobio

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/encfs/encfs/internal/retry"
)

// Options say how Open reaches a remote image.
type Options struct {
	// Azure forces the Azure Blob protocol for a URL that Open would not recognise as Azure
	// (a custom domain or a private endpoint addressed by IP). See IsAzureURL for the rule.
	Azure bool
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

var (
	sharedClientOnce sync.Once
	sharedClient     *http.Client
)

// transport returns the HTTP client for the Azure SDK, sharing one connection pool.
func (o Options) transport() policy.Transporter {
	if o.HTTPClient != nil {
		return o.HTTPClient
	}
	return sharedHTTPClient()
}

// sharedHTTPClient is one connection pool for every remote source in the process.
func sharedHTTPClient() *http.Client {
	sharedClientOnce.Do(func() { sharedClient = defaultHTTPClient() })
	return sharedClient
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
// Anything else is a generic HTTPS range source; set Options.Azure to force Azure for a custom
// domain.
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

// IsRemote reports whether location is a URL rather than a local path.
func IsRemote(location string) bool {
	for _, p := range []string{"https://", "http://", "azure://", "azure+https://", "azure+http://"} {
		if len(location) >= len(p) && strings.EqualFold(location[:len(p)], p) {
			return true
		}
	}
	return false
}

// Open opens an image by location: a local path, an Azure blob URL, or any http(s) URL served
// with Range support. See IsAzureURL for how Azure is recognised and Auth for credentials.
// Remote sources are pinned to the version seen here: a later replacement fails reads with
// ErrChanged.
func Open(ctx context.Context, location string, opts Options) (Source, error) {
	if !IsRemote(location) {
		if strings.Contains(location, "://") {
			return nil, fmt.Errorf("open %q: unsupported scheme; use a local path, https://, http:// or azure://", Redact(location))
		}
		s, err := OpenFile(location)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	u, err := url.Parse(location)
	if err != nil {
		return nil, fmt.Errorf("open %s: not a valid URL: %v", Redact(location), redactErr(err))
	}
	if u.Host == "" {
		return nil, fmt.Errorf("open %s: the URL has no host", redactURL(u))
	}
	azure := opts.Azure || IsAzureURL(u)
	switch strings.ToLower(u.Scheme) {
	case "azure", "azure+https":
		u.Scheme = "https"
	case "azure+http":
		u.Scheme = "http"
	}
	if azure {
		// Path-style URLs (Azurite, an endpoint addressed by IP) put the account first.
		need := 2
		if h := u.Hostname(); net.ParseIP(h) != nil || h == "localhost" || !strings.Contains(h, ".") {
			need = 3
		}
		if parts := strings.SplitN(strings.Trim(u.Path, "/"), "/", need); len(parts) < need || parts[need-1] == "" {
			return nil, fmt.Errorf("open %s: an Azure blob URL needs a container and a blob name: https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB", redactURL(u))
		}
		return openAzure(ctx, u, opts)
	}
	return openHTTP(ctx, u, opts)
}

// Package location turns an image location into a blobio.Source: a local path opens as a
// blobio.FileSource, an Azure blob URL through blobio/azure, any other http(s) URL through
// blobio/httpsrc. It is the one place that sees every backend; each backend knows only its
// own protocol.
package location

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/blobio/azure"
	"github.com/encfs/encfs/blobio/httpsrc"
	"github.com/encfs/encfs/internal/redact"
	"github.com/encfs/encfs/internal/retry"
)

// Options say how Open reaches a remote image.
type Options struct {
	// Azure forces the Azure Blob protocol for a URL that Open would not recognise as Azure
	// (a custom domain or a private endpoint addressed by IP). See azure.IsAzureURL for the
	// rule.
	Azure bool
	// Auth picks the Azure credential; azure.AuthAuto (the zero value) chooses as documented
	// on azure.Auth.
	Auth azure.Auth
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

// AzureOptions are the options of the Azure backend, for Upload and CheckUpload too.
func (o Options) AzureOptions() azure.Options {
	return azure.Options{AnyHost: o.Azure, Auth: o.Auth, ClientID: o.ClientID, Credential: o.Credential,
		ConnectionString: o.ConnectionString, HTTPClient: o.HTTPClient, Retry: o.Retry}
}

// Open opens an image by location: a local path, an Azure blob URL, or any http(s) URL served
// with Range support. See azure.IsAzureURL for how Azure is recognised and azure.Auth for
// credentials. Remote sources are pinned to the version seen here: a later replacement fails
// reads with blobio.ErrChanged.
func Open(ctx context.Context, location string, opts Options) (blobio.Source, error) {
	if !blobio.IsRemote(location) {
		if strings.Contains(location, "://") {
			return nil, fmt.Errorf("open %q: unsupported scheme; use a local path, https://, http:// or azure://", redact.String(location))
		}
		s, err := blobio.OpenFile(location)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	u, err := url.Parse(location)
	if err != nil {
		return nil, fmt.Errorf("open %s: not a valid URL: %v", redact.String(location), redact.Err(err))
	}
	if u.Host == "" {
		return nil, fmt.Errorf("open %s: the URL has no host", redact.URL(u))
	}
	if opts.Azure || azure.IsAzureURL(u) {
		return azure.Open(ctx, u, opts.AzureOptions())
	}
	return httpsrc.Open(ctx, u, httpsrc.Options{HTTPClient: opts.HTTPClient, Retry: opts.Retry})
}

package azure

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"

	"github.com/encfs/encfs/internal/redact"
)

// Auth selects how an Azure blob is accessed. The zero value (AuthAuto) picks, in order:
// a SAS when the URL carries sig=; Options.Credential when set; the connection string
// (Options.ConnectionString or AZURE_STORAGE_CONNECTION_STRING) when it names the URL's
// account; an identity when one is configured (Options.ClientID, AZURE_CLIENT_ID or a workload
// identity token file); otherwise anonymous access, falling back to the default identity chain
// (managed identity, Azure CLI, ...) when anonymous access is refused.
type Auth string

const (
	AuthAuto             Auth = ""
	AuthSAS              Auth = "sas"               // the URL's query string is a SAS
	AuthAnonymous        Auth = "anonymous"         // public container
	AuthIdentity         Auth = "identity"          // Microsoft Entra ID (azidentity)
	AuthConnectionString Auth = "connection-string" // account key, for development
)

// ParseAuth checks a user-supplied --auth value.
func ParseAuth(s string) (Auth, error) {
	switch a := Auth(strings.ToLower(s)); a {
	case AuthAuto, "auto":
		return AuthAuto, nil
	case AuthSAS, AuthAnonymous, AuthIdentity, AuthConnectionString:
		return a, nil
	}
	return "", fmt.Errorf("unknown auth %q: want auto, sas, anonymous, identity or connection-string", s)
}

// devAccountKey is Azurite's and the old storage emulator's published development key.
const devAccountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

// connString is the part of a storage connection string blobio uses.
type connString struct {
	account, key, sas, endpoint string
}

func parseConnString(s string) (connString, error) {
	var c connString
	for _, part := range strings.Split(strings.TrimSpace(s), ";") {
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return c, errors.New("connection string: want KEY=VALUE pairs separated by ';'")
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "accountname":
			c.account = v
		case "accountkey":
			c.key = v
		case "sharedaccesssignature":
			c.sas = strings.TrimPrefix(v, "?")
		case "blobendpoint":
			c.endpoint = v
		case "usedevelopmentstorage":
			if strings.EqualFold(v, "true") {
				c.account, c.key = "devstoreaccount1", devAccountKey
				c.endpoint = "http://127.0.0.1:10000/devstoreaccount1"
			}
		}
	}
	if c.account == "" && c.endpoint != "" {
		if u, err := url.Parse(c.endpoint); err == nil {
			c.account = accountOf(u)
		}
	}
	if c.account == "" || (c.key == "" && c.sas == "") {
		return c, errors.New("connection string: needs AccountName and AccountKey (or SharedAccessSignature)")
	}
	return c, nil
}

// accountOf returns the storage account a blob URL addresses: the first DNS label for
// ACCOUNT.blob.<suffix>, or the first path segment for the path-style URLs of Azurite and of
// IP-addressed private endpoints.
func accountOf(u *url.URL) string {
	host := u.Hostname()
	if net.ParseIP(host) != nil || host == "localhost" || !strings.Contains(host, ".") {
		seg, _, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
		return seg
	}
	label, _, _ := strings.Cut(host, ".")
	return label
}

// hasSAS reports whether a URL carries a SAS signature.
func hasSAS(u *url.URL) bool { return u.Query().Get("sig") != "" }

// identityCredential builds the azidentity credential: with a client ID, a chain of workload
// identity (AKS, when a federated token file is mounted) and that user-assigned managed
// identity; without one, the default chain (environment, workload identity, managed identity,
// Azure CLI, Azure Developer CLI).
func identityCredential(clientID string, opts Options) (azcore.TokenCredential, error) {
	copts := azcore.ClientOptions{Transport: opts.transport()}
	if clientID == "" {
		return azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{ClientOptions: copts})
	}
	var chain []azcore.TokenCredential
	if os.Getenv("AZURE_FEDERATED_TOKEN_FILE") != "" {
		wi, err := azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{ClientOptions: copts, ClientID: clientID})
		if err == nil {
			chain = append(chain, wi)
		}
	}
	mi, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ClientOptions: copts, ID: azidentity.ClientID(clientID)})
	if err != nil {
		return nil, err
	}
	chain = append(chain, mi)
	return azidentity.NewChainedTokenCredential(chain, nil)
}

// identityConfigured reports whether the environment names an identity to use.
func identityConfigured(opts Options) bool {
	return opts.Credential != nil || opts.ClientID != "" || os.Getenv("AZURE_CLIENT_ID") != "" ||
		os.Getenv("AZURE_FEDERATED_TOKEN_FILE") != ""
}

// azureClientOptions turns off the SDK's own retries: blobio retries itself, so that every
// read has one time budget and one retry counter, and truncated bodies resume.
func azureClientOptions(opts Options) *blob.ClientOptions {
	return &blob.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: opts.transport(),
		Retry:     policy.RetryOptions{MaxRetries: -1},
		Telemetry: policy.TelemetryOptions{ApplicationID: "encfs"},
	}}
}

// azureCred is one resolved way to authenticate.
type azureCred struct {
	mode   Auth
	token  azcore.TokenCredential
	shared *blob.SharedKeyCredential
	sasURL string // the URL with a SAS from the connection string appended
}

// resolveAuth returns the credentials to try, in order, for mode (AuthAuto may yield an
// anonymous attempt followed by an identity).
func resolveAuth(u *url.URL, opts Options) ([]azureCred, error) {
	mode := opts.Auth
	connStr := opts.ConnectionString
	if connStr == "" {
		connStr = os.Getenv("AZURE_STORAGE_CONNECTION_STRING")
	}
	identity := func() (azureCred, error) {
		if opts.Credential != nil {
			return azureCred{mode: AuthIdentity, token: opts.Credential}, nil
		}
		if u.Scheme != "https" {
			return azureCred{}, errors.New("identity (bearer token) access needs an https:// URL")
		}
		c, err := identityCredential(opts.ClientID, opts)
		if err != nil {
			return azureCred{}, fmt.Errorf("identity: %v", redact.Err(err))
		}
		return azureCred{mode: AuthIdentity, token: c}, nil
	}
	fromConnString := func() (azureCred, error) {
		c, err := parseConnString(connStr)
		if err != nil {
			return azureCred{}, err
		}
		if acct := accountOf(u); !strings.EqualFold(acct, c.account) {
			return azureCred{}, fmt.Errorf("the connection string is for account %q but the URL names account %q", c.account, acct)
		}
		if c.key == "" {
			v := *u
			v.RawQuery = c.sas
			return azureCred{mode: AuthConnectionString, sasURL: v.String()}, nil
		}
		k, err := blob.NewSharedKeyCredential(c.account, c.key)
		if err != nil {
			return azureCred{}, fmt.Errorf("connection string: %v", redact.Err(err))
		}
		return azureCred{mode: AuthConnectionString, shared: k}, nil
	}
	one := func(c azureCred, err error) ([]azureCred, error) {
		if err != nil {
			return nil, err
		}
		return []azureCred{c}, nil
	}
	switch mode {
	case AuthSAS:
		if !hasSAS(u) {
			return nil, errors.New("authentication by SAS: the URL has no SAS query string (sig=...); append the SAS token to the URL")
		}
		return []azureCred{{mode: AuthSAS}}, nil
	case AuthAnonymous:
		return []azureCred{{mode: AuthAnonymous}}, nil
	case AuthIdentity:
		return one(identity())
	case AuthConnectionString:
		if connStr == "" {
			return nil, errors.New("authentication by connection string: AZURE_STORAGE_CONNECTION_STRING is not set")
		}
		return one(fromConnString())
	case AuthAuto:
	default:
		return nil, fmt.Errorf("unknown auth %q", mode)
	}
	switch {
	case hasSAS(u):
		return []azureCred{{mode: AuthSAS}}, nil
	case opts.Credential != nil:
		return one(identity())
	case connStr != "":
		if c, err := fromConnString(); err == nil {
			return []azureCred{c}, nil
		}
	}
	if identityConfigured(opts) {
		return one(identity())
	}
	creds := []azureCred{{mode: AuthAnonymous}}
	if u.Scheme == "https" {
		if c, err := identity(); err == nil {
			creds = append(creds, c)
		}
	}
	return creds, nil
}

// newBlobClient builds the SDK client for one credential.
func newBlobClient(rawURL string, c azureCred, opts Options) (*blob.Client, error) {
	co := azureClientOptions(opts)
	switch {
	case c.token != nil:
		return blob.NewClient(rawURL, c.token, co)
	case c.shared != nil:
		return blob.NewClientWithSharedKeyCredential(rawURL, c.shared, co)
	case c.sasURL != "":
		return blob.NewClientWithNoCredential(c.sasURL, co)
	default:
		return blob.NewClientWithNoCredential(rawURL, co)
	}
}

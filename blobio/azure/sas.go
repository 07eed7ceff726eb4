package azure

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/encfs/encfs/internal/redact"
)

// SASOptions say what a SAS made by MakeSAS allows.
type SASOptions struct {
	// Permissions are SAS permission letters: r to mount, cw (or rcw, to resume) to upload.
	Permissions string
	// Expires is how long the SAS is valid from now.
	Expires time.Duration
	// Container signs for the whole container (sr=c) instead of the one blob (sr=b).
	Container bool
	// ConnectionString holds the account key (default AZURE_STORAGE_CONNECTION_STRING);
	// UseDevelopmentStorage=true signs for Azurite's development account.
	ConnectionString string
}

// MakeSAS returns location (a blob URL) with a service SAS signed by the account key of a
// connection string: what `az storage blob generate-sas` does, without the az CLI. It starts
// five minutes in the past to allow for clock skew.
// ErrNoAccountKey: signing a SAS needs the account key, from a connection string, and none was
// given.
var ErrNoAccountKey = errors.New("signing needs the account key")

func MakeSAS(location string, o SASOptions) (string, error) {
	u, err := url.Parse(location)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("sas: %q is not a blob URL (https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB)", redact.String(location))
	}
	switch strings.ToLower(u.Scheme) {
	case "azure", "azure+https":
		u.Scheme = "https"
	case "azure+http":
		u.Scheme = "http"
	}
	if hasSAS(u) {
		return "", errors.New("sas: the URL already carries a SAS; give it without its query string")
	}
	if o.Permissions == "" || strings.Trim(o.Permissions, "racwdl") != "" {
		return "", fmt.Errorf("sas: permissions %q: use letters of racwdl (r to mount, rcw to upload)", o.Permissions)
	}
	if o.Expires <= 0 {
		return "", errors.New("sas: give a positive expiry (such as 24h)")
	}
	conn := o.ConnectionString
	if conn == "" {
		conn = os.Getenv("AZURE_STORAGE_CONNECTION_STRING")
	}
	if conn == "" {
		return "", fmt.Errorf("sas: %w: set AZURE_STORAGE_CONNECTION_STRING (UseDevelopmentStorage=true for Azurite)", ErrNoAccountKey)
	}
	cs, err := parseConnString(conn)
	if err != nil {
		return "", fmt.Errorf("sas: %w", err)
	}
	if cs.key == "" {
		return "", errors.New("sas: the connection string has no AccountKey to sign with")
	}
	if acct := accountOf(u); !strings.EqualFold(acct, cs.account) {
		return "", fmt.Errorf("sas: the connection string is for account %q but the URL names account %q", cs.account, acct)
	}
	r := newRequestFacts("", u, azureCred{})
	if r.container == "" || (!o.Container && r.blob == "") {
		return "", fmt.Errorf("sas: %s names no container and blob", redact.DisplayURL(u))
	}
	cred, err := blob.NewSharedKeyCredential(cs.account, cs.key)
	if err != nil {
		return "", fmt.Errorf("sas: %v", redact.Err(err))
	}
	protocol := sas.ProtocolHTTPS
	if u.Scheme == "http" {
		protocol = sas.ProtocolHTTPSandHTTP // Azurite
	}
	now := time.Now().UTC()
	v := sas.BlobSignatureValues{Protocol: protocol, StartTime: now.Add(-5 * time.Minute), ExpiryTime: now.Add(o.Expires),
		Permissions: canonicalPerms(o.Permissions), ContainerName: r.container}
	if !o.Container {
		v.BlobName = r.blob
	}
	q, err := v.SignWithSharedKey(cred)
	if err != nil {
		return "", fmt.Errorf("sas: %v", redact.Err(err))
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// canonicalPerms orders permission letters as the service requires (racwdl).
func canonicalPerms(p string) string {
	var b strings.Builder
	for _, c := range "racwdl" {
		if strings.ContainsRune(p, c) {
			b.WriteRune(c)
		}
	}
	return b.String()
}

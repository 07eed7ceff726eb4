package azure

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/internal/redact"
)

// This file turns a refused or missing Azure request into a hint that names the cause. The
// service's error code alone is not enough: real Azure answers AuthenticationFailed both for a
// signature that does not match and for an expired SAS, and Azurite answers
// AuthorizationFailure for every authentication problem, a missing credential included. So the
// diagnosis also looks at what the request carried: which credential, and for a SAS its
// visible fields (permissions, resource, start and expiry), which are not secret.

// Service error codes (Azure Storage "common REST API error codes" and the blob service's).
const (
	codeAuthenticationFailed     = "AuthenticationFailed" // 403: signature did not verify (or SAS outside its time window)
	codeAuthorizationFailure     = "AuthorizationFailure" // 403: not allowed (network rules; Azurite: any auth failure)
	codePermissionMismatch       = "AuthorizationPermissionMismatch"
	codeNoAuthenticationInfo     = "NoAuthenticationInformation" // 401: no credential on a private resource
	codeInvalidAuthenticationInf = "InvalidAuthenticationInfo"   // 401: a bearer token that is not valid here
	codeContainerNotFound        = "ContainerNotFound"
	codeBlobNotFound             = "BlobNotFound"
	codeResourceNotFound         = "ResourceNotFound" // 404 to anonymous requests on a private container
)

// sasFacts are the visible fields of a SAS.
type sasFacts struct {
	present       bool
	perms         string // sp
	resource      string // sr: b blob, c container, bs/bv snapshot/version; "" for an account SAS
	account       bool   // an account SAS (srt=): it may create containers if srt has c
	start, expiry time.Time
}

func parseSAS(q url.Values) sasFacts {
	s := sasFacts{present: q.Get("sig") != "", perms: q.Get("sp"), resource: q.Get("sr"), account: q.Get("srt") != ""}
	s.start = redact.SASTime(q.Get("st"))
	s.expiry = redact.SASTime(q.Get("se"))
	return s
}

// lacks returns the permission letters of need that the SAS does not have.
func (s sasFacts) lacks(need string) string {
	var missing []byte
	for _, c := range []byte(need) {
		if !strings.ContainsRune(s.perms, rune(c)) {
			missing = append(missing, c)
		}
	}
	return string(missing)
}

// requestFacts are what a failed request carried: enough to tell the causes apart.
type requestFacts struct {
	op                       string // "open", "read", "upload to"; for volumes "create", "write to", "lease"
	auth                     Auth   // the credential used
	sas                      sasFacts
	account, container, blob string
	pathStyle                bool // http://HOST/ACCOUNT/...: Azurite, or an endpoint addressed by IP
}

// newRequestFacts describes requests to u with credential c.
func newRequestFacts(op string, u *url.URL, c azureCred) requestFacts {
	r := requestFacts{op: op, auth: c.mode, account: accountOf(u)}
	q := u.Query()
	if c.sasURL != "" {
		if su, err := url.Parse(c.sasURL); err == nil {
			q = su.Query()
		}
	}
	r.sas = parseSAS(q)
	path := strings.TrimPrefix(u.Path, "/")
	if h := u.Hostname(); net.ParseIP(h) != nil || h == "localhost" || !strings.Contains(h, ".") {
		_, path, _ = strings.Cut(path, "/") // path-style: the account comes first
		r.pathStyle = true
	}
	r.container, r.blob, _ = strings.Cut(path, "/")
	return r
}

// needs is the SAS permissions op needs.
func (r requestFacts) needs() string {
	switch r.op {
	case "upload to", "create":
		return "cw"
	case "write to", "lease":
		return "rw" // a volume's page writes and its lease
	}
	return "r"
}

// writes reports whether the operation changes the blob (and so needs a writer's role).
func (r requestFacts) writes() bool { return r.needs() != "r" }

// diagnose returns the hint for a failed request, or "" when it has nothing better than the
// generic hint of the kind (network problems, throttling, a replaced blob).
func diagnose(kind error, status int, code, detail string, r requestFacts, now time.Time) string {
	switch {
	case status == 0:
		return "" // no answer from the service (say, the identity got no token): nothing to diagnose
	case errors.Is(kind, blobio.ErrAuth):
		return diagnoseAuth(status, code, detail, r, now)
	case errors.Is(kind, blobio.ErrNotFound):
		return diagnoseNotFound(code, r)
	}
	return ""
}

func diagnoseAuth(status int, code, detail string, r requestFacts, now time.Time) string {
	if r.auth == AuthAnonymous || code == codeNoAuthenticationInfo {
		return noCredentialHint(r)
	}
	if r.sas.present {
		s := r.sas
		switch {
		case !s.expiry.IsZero() && now.After(s.expiry):
			return fmt.Sprintf("the SAS expired at %s (se=); make a new one", s.expiry.UTC().Format(time.RFC3339))
		case !s.start.IsZero() && now.Before(s.start):
			return fmt.Sprintf("the SAS is valid only from %s (st=); wait, or check this machine's clock", s.start.UTC().Format(time.RFC3339))
		case strings.Contains(detail, "time frame"):
			return "the SAS is outside its validity window (st= to se=); check this machine's clock or make a new SAS"
		case code == codePermissionMismatch && s.lacks(r.needs()) != "":
			return fmt.Sprintf("the SAS allows sp=%s but %s needs %s; make a SAS with sp=%s", s.perms, opName(r.op), r.needs(), r.needs())
		case code == codePermissionMismatch:
			return fmt.Sprintf("the SAS (sp=%s, sr=%s) cannot do this %s; a container SAS cannot create a container", s.perms, s.resource, opName(r.op))
		}
		if code == codeAuthorizationFailure && !r.pathStyle {
			// Real Azure answers a signature that does not match with AuthenticationFailed;
			// AuthorizationFailure to a SAS within its window means a network rule.
			return "the account refuses this network (firewall or private endpoint rules), or the SAS does not fit this URL"
		}
		scope := "it was made for another account, container or blob"
		switch s.resource {
		case "b", "bs", "bv":
			scope = "a blob SAS fits only its own blob (check the names)"
		case "c":
			scope = "a container SAS fits only its own container (check the name)"
		}
		hint := "the SAS does not fit this URL: " + scope + "; or it is truncated, or its key was rotated"
		return hint
	}
	switch r.auth {
	case AuthConnectionString:
		if code == codePermissionMismatch {
			return "the connection string's SAS lacks a permission this " + opName(r.op) + " needs"
		}
		return fmt.Sprintf("the AccountKey in the connection string is not the key of account %q (wrong, or rotated: copy a current one)", r.account)
	case AuthIdentity:
		if code == codeAuthenticationFailed || code == codeInvalidAuthenticationInf {
			return "the identity's token was refused (another tenant, or not a token for storage)"
		}
		role := "Storage Blob Data Reader"
		if r.writes() {
			role = "Storage Blob Data Contributor"
		}
		return fmt.Sprintf("the identity has no data role on container %q: assign %s (it takes up to 10 minutes to apply)", r.container, role)
	}
	return ""
}

func noCredentialHint(r requestFacts) string {
	return fmt.Sprintf("no credential was sent and the blob is not public: add a SAS with sp=%s to the URL, set AZURE_STORAGE_CONNECTION_STRING, or use an identity", r.needs())
}

func diagnoseNotFound(code string, r requestFacts) string {
	switch {
	case code == codeContainerNotFound && r.op == "create":
		return fmt.Sprintf("account %q has no container %q, and encfs does not create containers for volumes: create it first (az storage container create -n %s --account-name %s)", r.account, r.container, r.container, r.account)
	case code == codeContainerNotFound && r.op == "upload to" && r.sas.present && !r.sas.account:
		return fmt.Sprintf("container %q does not exist and a SAS cannot create it: create it (az storage container create -n %s) or use the account key or an identity", r.container, r.container)
	case code == codeContainerNotFound:
		return fmt.Sprintf("account %q has no container %q: check the name (lowercase)", r.account, r.container)
	case code == codeBlobNotFound:
		return fmt.Sprintf("container %q has no blob %q: check the name (case matters)", r.container, r.blob)
	case r.auth == AuthAnonymous:
		return fmt.Sprintf("check the account, container and blob names; a private container also answers 404 when no credential is sent: add a SAS with sp=%s", r.needs())
	}
	return "check the account, container and blob names"
}

func opName(op string) string {
	switch op {
	case "upload to":
		return "upload"
	case "write to":
		return "write"
	}
	return op
}

// authDetail extracts the first sentence of the AuthenticationErrorDetail of an error answer,
// which says which check failed ("Signature did not match", "Signature not valid in the
// specified time frame"). The string-to-sign that may follow is left out. HEAD answers have no
// body, so it is often empty.
func authDetail(re *azcore.ResponseError) string {
	if re == nil || re.RawResponse == nil {
		return ""
	}
	body, err := runtime.Payload(re.RawResponse)
	if err != nil || !bytes.Contains(body, []byte("AuthenticationErrorDetail")) {
		return ""
	}
	var e struct {
		Detail string `xml:"AuthenticationErrorDetail"`
	}
	if xml.Unmarshal(body, &e) != nil {
		return ""
	}
	d, _, _ := strings.Cut(strings.TrimSpace(e.Detail), "String to sign")
	d, _, _ = strings.Cut(d, "\n")
	d = strings.TrimRight(strings.TrimSpace(d), ". ")
	if len(d) > 160 {
		d = d[:160] + "..."
	}
	return redact.String(d)
}

// explain sets the Cause of a failed Azure operation to the diagnosis of its cause, when
// there is one. err is returned unchanged unless it is an *blobio.Error.
func explain(err error, r requestFacts) error {
	var e *blobio.Error
	if !errors.As(err, &e) {
		return err
	}
	detail := ""
	if e.Err != nil {
		detail = e.Err.Error()
	}
	if c := diagnose(e.Kind, e.Status, e.Code, detail, r, time.Now()); c != "" {
		e.Cause = c
	}
	return err
}

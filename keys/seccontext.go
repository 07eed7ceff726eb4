package keys

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Names of the container group's security context files and their environment fallbacks.
const (
	envSecurityContextDir = "UVM_SECURITY_CONTEXT_DIR"
	fileSecurityPolicy    = "security-policy-base64"
	fileHostAMDCert       = "host-amd-cert-base64"
	fileReferenceInfo     = "reference-info-base64"
	envSecurityPolicy     = "UVM_SECURITY_POLICY"
	envHostAMDCert        = "UVM_HOST_AMD_CERTIFICATE"
	envReferenceInfo      = "UVM_REFERENCE_INFO"
)

// HostAMDCert is the certificate document the host gives the UVM (and that THIM serves): the
// VCEK for the platform's current TCB and the ASK/ARK chain above it, all PEM.
type HostAMDCert struct {
	VcekCert         string `json:"vcekCert"`
	Tcbm             string `json:"tcbm"`
	CertificateChain string `json:"certificateChain"`
	CacheControl     string `json:"cacheControl,omitempty"`
}

// ChainPEM is the VCEK followed by ASK and ARK, the VcekCertChain sent to Azure Attestation.
func (c *HostAMDCert) ChainPEM() []byte {
	return []byte(strings.TrimRight(c.VcekCert, "\n") + "\n" + c.CertificateChain)
}

// securityContext is what the container group's host provided: certificates (may be nil, then
// they come from the quote or THIM), the UVM endorsement (may be nil) and the policy.
type securityContext struct {
	Certs         *HostAMDCert
	ReferenceInfo []byte // COSE_Sign1 UVM endorsement
	Policy        []byte // the container security policy (for logging its presence only)
	Source        string // directory or "environment", for messages
}

// loadSecurityContext reads the security context from dir, else $UVM_SECURITY_CONTEXT_DIR, else
// the first /security-context-* directory, then fills what is missing from the environment.
// Finding nothing at all is not an error here: certificates can still come from the quote's
// certificate table or THIM.
func loadSecurityContext(dir string, getenv func(string) string) (*securityContext, error) {
	if dir == "" {
		dir = getenv(envSecurityContextDir)
	}
	if dir == "" {
		if m, _ := filepath.Glob("/security-context-*"); len(m) > 0 {
			dir = m[0]
		}
	}
	sc := &securityContext{Source: "environment"}
	read := func(file, env string) ([]byte, error) {
		var raw string
		if dir != "" {
			b, err := os.ReadFile(filepath.Join(dir, file))
			switch {
			case err == nil:
				raw = string(b)
				sc.Source = dir
			case !errors.Is(err, os.ErrNotExist):
				return nil, err
			}
		}
		if raw == "" {
			raw = getenv(env)
		}
		if strings.TrimSpace(raw) == "" {
			return nil, nil
		}
		b, err := decodeB64(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		return b, nil
	}
	var err error
	if sc.Policy, err = read(fileSecurityPolicy, envSecurityPolicy); err != nil {
		return nil, err
	}
	if sc.ReferenceInfo, err = read(fileReferenceInfo, envReferenceInfo); err != nil {
		return nil, err
	}
	certJSON, err := read(fileHostAMDCert, envHostAMDCert)
	if err != nil {
		return nil, err
	}
	if certJSON != nil {
		if sc.Certs, err = parseHostAMDCert(certJSON); err != nil {
			return nil, fmt.Errorf("%s: %w", fileHostAMDCert, err)
		}
	}
	return sc, nil
}

// parseHostAMDCert decodes the host certificate JSON and checks that it holds PEM.
func parseHostAMDCert(b []byte) (*HostAMDCert, error) {
	var c HostAMDCert
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("certificate JSON: %w", err)
	}
	if !strings.Contains(c.VcekCert, "-----BEGIN CERTIFICATE-----") {
		return nil, errors.New("certificate JSON: vcekCert holds no PEM certificate")
	}
	if !strings.Contains(c.CertificateChain, "-----BEGIN CERTIFICATE-----") {
		return nil, errors.New("certificate JSON: certificateChain holds no PEM certificate")
	}
	return &c, nil
}

// decodeB64 accepts the standard and URL-safe alphabets, padded or not, and ignores line breaks,
// since the files are written by different tools.
func decodeB64(s string) ([]byte, error) {
	s = strings.Join(strings.Fields(s), "")
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("not valid base64")
}

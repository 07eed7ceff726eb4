package keys

import (
	"context"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// DefaultTHIMURL is the instance metadata endpoint that serves the platform's AMD certificates
// to Azure confidential container groups.
const DefaultTHIMURL = "http://169.254.169.254/metadata/THIM/amd/certification"

// CertCache says where to fetch the VCEK chain when the security context lacks it or carries a
// stale one. It mirrors the reference sidecar's azure_info.certcache.
type CertCache struct {
	// EndpointType is "LocalTHIM" (default, also "THIM"): Endpoint is a URL answering the host
	// certificate JSON with header Metadata: true; or "AzCache": Endpoint is a host name answering
	// https://{endpoint}/{tee_type}/certificates/{chip id}/{reported tcb}?{api_version} with PEM.
	EndpointType string
	Endpoint     string
	TeeType      string // AzCache only; default "SevSnpVM"
	APIVersion   string // AzCache only, e.g. "api-version=2020-10-15-preview"
}

// fetchCerts gets a fresh certificate document for the reported TCB.
func (c CertCache) fetchCerts(ctx context.Context, hc *http.Client, rp retryPolicy, rep *snpReport) (*HostAMDCert, error) {
	var url string
	azCache := strings.EqualFold(c.EndpointType, "AzCache")
	switch {
	case azCache:
		if c.Endpoint == "" {
			return nil, errors.New("certcache endpoint_type AzCache needs an endpoint")
		}
		tee := c.TeeType
		if tee == "" {
			tee = "SevSnpVM"
		}
		url = fmt.Sprintf("https://%s/%s/certificates/%s/%s", strings.TrimPrefix(c.Endpoint, "https://"), tee,
			hex.EncodeToString(rep.ChipID), strconv.FormatUint(rep.ReportedTCB, 16))
		if c.APIVersion != "" {
			url += "?" + strings.TrimPrefix(c.APIVersion, "?")
		}
	case c.EndpointType == "" || strings.EqualFold(c.EndpointType, "LocalTHIM") || strings.EqualFold(c.EndpointType, "THIM"):
		url = c.Endpoint
		if url == "" {
			url = DefaultTHIMURL
		} else if !strings.Contains(url, "://") {
			// The reference's form is a bare host and path, fetched over http (the link-local
			// metadata endpoint has no TLS): "169.254.169.254/metadata/THIM/amd/certification".
			url = "http://" + url
		}
	default:
		return nil, fmt.Errorf("certcache endpoint_type %q: want LocalTHIM or AzCache", c.EndpointType)
	}
	var body []byte
	err := rp.do(ctx, func(ctx context.Context) error {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Metadata", "true")
		body, err = fetch(ctx, hc, req)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("fetch certificates from %s: %w", url, err)
	}
	if azCache {
		return certsFromPEM(body, rep.ReportedTCB)
	}
	return parseHostAMDCert(body)
}

// certsFromPEM splits a PEM chain (VCEK first) into the host certificate shape.
func certsFromPEM(b []byte, tcb uint64) (*HostAMDCert, error) {
	var blocks []string
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		blocks = append(blocks, string(pem.EncodeToMemory(blk)))
	}
	if len(blocks) < 3 {
		return nil, fmt.Errorf("certificate cache returned %d PEM certificates, want VCEK, ASK and ARK", len(blocks))
	}
	return &HostAMDCert{VcekCert: blocks[0], CertificateChain: strings.Join(blocks[1:], ""), Tcbm: strconv.FormatUint(tcb, 16)}, nil
}

// tcbMatches reports whether a certificate document was issued for the reported TCB. An absent
// or unparsable tcbm is treated as matching: there is nothing to compare.
func tcbMatches(c *HostAMDCert, reported uint64) bool {
	if c.Tcbm == "" {
		return true
	}
	t, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimSpace(c.Tcbm), "0x"), 16, 64)
	return err != nil || t == reported
}

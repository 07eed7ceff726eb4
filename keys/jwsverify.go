package keys

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/encfs/encfs/keys/internal/jose"
)

// verifyReleaseJWS checks Key Vault's signed release response: the x5c chain must lead to a
// trusted root (roots, or the system pool when nil) and name the vault's host, x5t#S256 must
// match the leaf, and the leaf must have signed the JWS. Only then is the payload returned.
func verifyReleaseJWS(compact, vaultURL string, roots *x509.CertPool, now time.Time) ([]byte, error) {
	j, err := jose.Parse(compact)
	if err != nil {
		return nil, err
	}
	if len(j.Header.X5c) == 0 {
		return nil, errors.New("release response carries no x5c certificate chain")
	}
	certs := make([]*x509.Certificate, 0, len(j.Header.X5c))
	for i, s := range j.Header.X5c {
		// RFC 7515 says standard base64; accept URL-safe too rather than fail on a formality.
		der, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			if der, err = jose.B64.DecodeString(s); err != nil {
				return nil, fmt.Errorf("x5c[%d]: not base64", i)
			}
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("x5c[%d]: %w", i, err)
		}
		certs = append(certs, c)
	}
	leaf := certs[0]
	if j.Header.X5tS256 != "" {
		sum := sha256.Sum256(leaf.Raw)
		got, err := jose.B64.DecodeString(j.Header.X5tS256)
		if err != nil || !bytes.Equal(got, sum[:]) {
			return nil, errors.New("x5t#S256 does not match the signing certificate")
		}
	}
	host, err := vaultHost(vaultURL)
	if err != nil {
		return nil, err
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		DNSName:       host,
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return nil, fmt.Errorf("signing certificate %q is not trusted for %s: %w", leaf.Subject.CommonName, host, err)
	}
	if err := j.Verify(leaf.PublicKey); err != nil {
		return nil, err
	}
	return j.Payload, nil
}

// vaultHost is the host name (without port) that the signing certificate must name.
func vaultHost(vaultURL string) (string, error) {
	u, err := url.Parse(vaultURL)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("vault URL %q has no host", vaultURL)
	}
	if h, _, err := net.SplitHostPort(u.Host); err == nil {
		return h, nil
	}
	return u.Host, nil
}

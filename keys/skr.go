package keys

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/encfs/encfs/keys/internal/rsaaes"
)

// AzureSKRConfig describes one key to release by attestation. The zero values of the optional
// fields select production behaviour; tests replace QuoteProvider, HTTPClient, JWSRoots and the
// security context directory.
type AzureSKRConfig struct {
	MAAEndpoint string // attestation authority: "sharedeus2.eus2.attest.azure.net" or an https URL
	VaultURL    string // Key Vault or Managed HSM: "myvault.vault.azure.net" or an https URL
	KeyName     string
	KeyVersion  string // empty: the current version
	KeyType     string // expected kty (oct, oct-HSM, RSA-HSM); empty accepts any of them
	Derivation  KeyDerivation
	// Algorithm is the release wrapping algorithm; AlgCKMRSAAESKeyWrap (what both Key Vault and
	// Managed HSM accept, and the reference sidecar requests) by default.
	Algorithm string

	// Credential, when set, is used as is. Otherwise BearerToken, when set, is sent as the AAD
	// token; otherwise managed identity (user-assigned when ClientID is set) or workload identity.
	Credential  azcore.TokenCredential
	BearerToken string
	ClientID    string

	SecurityContextDir string    // default: $UVM_SECURITY_CONTEXT_DIR or /security-context-*
	CertCache          CertCache // where to refresh the VCEK chain; default THIM
	MAAAPIVersion      string    // default DefaultMAAAPIVersion

	QuoteProvider QuoteProvider  // default: go-sev-guest's configfs-tsm or /dev/sev-guest
	HTTPClient    *http.Client   // for Azure Attestation, THIM and Key Vault; default http.DefaultClient
	JWSRoots      *x509.CertPool // roots for the release JWS signer; default the system roots

	Attempts    int           // tries per network step; default 4
	RetryDelay  time.Duration // first backoff delay; default 500ms
	StepTimeout time.Duration // per try; default 30s

	Logger *slog.Logger        // default slog.Default()
	Getenv func(string) string // default os.Getenv
	Now    func() time.Time    // default time.Now
}

// AzureSKR releases a key from Azure Key Vault or Managed HSM by SEV-SNP attestation.
type AzureSKR struct {
	cfg AzureSKRConfig
	att *Attester
}

// NewAzureSKR checks cfg and returns a provider; nothing touches the network until ReleaseKey.
func NewAzureSKR(cfg AzureSKRConfig) (*AzureSKR, error) {
	var err error
	if cfg.MAAEndpoint, err = httpsURL("attestation authority", cfg.MAAEndpoint); err != nil {
		return nil, fmt.Errorf("azure key release: %w", err)
	}
	if cfg.VaultURL, err = httpsURL("Key Vault endpoint", cfg.VaultURL); err != nil {
		return nil, fmt.Errorf("azure key release: %w", err)
	}
	if cfg.KeyName == "" {
		return nil, errors.New("azure key release: key name (kid) is empty")
	}
	if cfg.Algorithm == "" {
		cfg.Algorithm = AlgCKMRSAAESKeyWrap
	}
	if _, err := rsaaes.OAEPHash(cfg.Algorithm); err != nil {
		return nil, err
	}
	switch cfg.KeyType {
	case "", "oct", "oct-HSM", "RSA", "RSA-HSM":
	default:
		return nil, fmt.Errorf("azure key release: kty %q: want oct-HSM, oct or RSA-HSM", cfg.KeyType)
	}
	if _, err := hex.DecodeString(cfg.Derivation.Salt); err != nil {
		return nil, fmt.Errorf("azure key release: key_derivation salt is not hex")
	}
	cfg = cfg.withDefaults()
	return &AzureSKR{cfg: cfg, att: NewAttester(cfg)}, nil
}

// withDefaults fills the optional fields that have production defaults.
func (cfg AzureSKRConfig) withDefaults() AzureSKRConfig {
	if cfg.MAAAPIVersion == "" {
		cfg.MAAAPIVersion = DefaultMAAAPIVersion
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Getenv == nil {
		cfg.Getenv = os.Getenv
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return cfg
}

// EndpointURL turns a bare host name (the reference configuration's form) into an https URL and
// refuses any other scheme.
func EndpointURL(s string) (string, error) { return httpsURL("endpoint", s) }

// httpsURL accepts a bare host name (the reference configuration's form) or an https URL.
func httpsURL(what, s string) (string, error) {
	s = strings.TrimRight(strings.TrimSpace(s), "/")
	if s == "" {
		return "", fmt.Errorf("%s is empty", what)
	}
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	if !strings.HasPrefix(s, "https://") {
		return "", fmt.Errorf("%s %q must use https", what, s)
	}
	return s, nil
}

func (p *AzureSKR) String() string {
	return fmt.Sprintf("Azure secure key release of %s from %s (attested by %s)", p.cfg.KeyName, p.cfg.VaultURL, p.cfg.MAAEndpoint)
}

// ReleaseKey runs the whole release: report, attestation, Key Vault release, verification and
// unwrapping, and turns the released key into the 32-byte release key (RSA-HSM keys through
// HKDF). Every failure is an *Error naming its stage.
func (p *AzureSKR) ReleaseKey(ctx context.Context) ([]byte, error) {
	rel, err := p.Release(ctx)
	if err != nil {
		return nil, err
	}
	defer Zero(rel.Material)
	key, err := releaseKeyFromMaterial(rel.Kty, rel.Material, p.cfg.Derivation)
	if err != nil {
		return nil, &Error{Stage: StageUnwrap, Err: err}
	}
	p.cfg.Logger.Info("release key obtained by attestation", "key", p.cfg.KeyName, "vault", p.cfg.VaultURL)
	return key, nil
}

// ReleasedKey is a key as Key Vault released it, unwrapped but not converted: the key release
// API hands it to the caller as a JWK. The caller zeroes Material after use.
type ReleasedKey struct {
	Kid      string   // the key's identifier in the vault (its URL with version)
	Kty      string   // oct, oct-HSM, RSA, RSA-HSM, EC or EC-HSM
	KeyOps   []string // the operations the vault permits on the key
	Material []byte   // raw bytes for oct keys, PKCS#8 DER for RSA and EC keys
}

// Release runs report, attestation, Key Vault release, JWS verification and unwrapping, and
// returns the released key material. Every failure is an *Error naming its stage.
func (p *AzureSKR) Release(ctx context.Context) (*ReleasedKey, error) {
	log := p.cfg.Logger.With("key", p.cfg.KeyName, "vault", p.cfg.VaultURL)
	rk, err := newRuntimeKey()
	if err != nil {
		return nil, &Error{Stage: StageSNPReport, Err: err}
	}
	token, err := p.att.token(ctx, p.cfg.MAAEndpoint, rk.data, log)
	if err != nil {
		return nil, err
	}

	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce)
	jws, err := p.release(ctx, token, hex.EncodeToString(nonce))
	if err != nil {
		return nil, err
	}
	payload, err := verifyReleaseJWS(jws, p.cfg.VaultURL, p.cfg.JWSRoots, p.cfg.Now())
	if err != nil {
		return nil, &Error{Stage: StageJWSVerification, Err: err}
	}
	if err := checkReleaseMatches(payload, hex.EncodeToString(nonce), p.cfg.KeyName, p.cfg.KeyVersion); err != nil {
		return nil, &Error{Stage: StageUnwrap, Err: err}
	}
	rel, err := p.unwrap(rk, payload)
	if err != nil {
		return nil, &Error{Stage: StageUnwrap, Err: err}
	}
	log.Debug("key released and unwrapped", "kty", rel.Kty)
	return rel, nil
}

// release obtains the signed release response from Key Vault.
func (p *AzureSKR) release(ctx context.Context, token, nonce string) (string, error) {
	rp := p.att.rp.withDefaults()
	cred := p.cfg.Credential
	if cred == nil {
		var err error
		co := &azcore.ClientOptions{
			Transport: p.cfg.HTTPClient,
			Retry:     policy.RetryOptions{MaxRetries: int32(rp.Attempts - 1), TryTimeout: rp.StepTimeout},
		}
		if cred, err = NewCredential(p.cfg.BearerToken, p.cfg.ClientID, p.cfg.Getenv, co); err != nil {
			return "", &Error{Stage: StageAADToken, Err: err}
		}
	}
	c, err := NewKeyVaultClient(p.cfg.VaultURL, cred, KeyVaultOptions{
		HTTPClient: p.cfg.HTTPClient,
		Retries:    rp.Attempts - 1,
		TryTimeout: rp.StepTimeout,
		RetryDelay: rp.BaseDelay,
	})
	if err != nil {
		return "", &Error{Stage: StageKeyRelease, Err: err}
	}
	return releaseKey(ctx, c, p.cfg.KeyName, p.cfg.KeyVersion, p.cfg.Algorithm, token, nonce)
}

// unwrap recovers the released key material from a verified release payload. A replayed
// response needs no separate check: it is wrapped to another release's ephemeral key and cannot
// unwrap.
func (p *AzureSKR) unwrap(rk *runtimeKey, payload []byte) (*ReleasedKey, error) {
	rel, err := parseReleasePayload(payload)
	if err != nil {
		return nil, err
	}
	if p.cfg.KeyType != "" && !sameKeyFamily(p.cfg.KeyType, rel.Kty) {
		return nil, fmt.Errorf("released key is %s, configured kty is %s", rel.Kty, p.cfg.KeyType)
	}
	enc, ct, err := parseKeyHSM(rel.KeyHSM)
	if err != nil {
		return nil, err
	}
	if enc != "" && enc != p.cfg.Algorithm {
		return nil, fmt.Errorf("key wrapped with %s, requested %s", enc, p.cfg.Algorithm)
	}
	material, err := rsaaes.Unwrap(rk.priv, p.cfg.Algorithm, ct)
	if err != nil {
		return nil, err
	}
	return &ReleasedKey{Kid: rel.Kid, Kty: rel.Kty, KeyOps: rel.KeyOps, Material: material}, nil
}

// sameKeyFamily treats the HSM and software forms of a key type alike: the reference accepts an
// "oct" configuration for an oct-HSM key.
func sameKeyFamily(a, b string) bool {
	return strings.TrimSuffix(a, "-HSM") == strings.TrimSuffix(b, "-HSM")
}

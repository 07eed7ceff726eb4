package keys

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
)

// Attester is the attesting half of a secure key release, usable on its own: an SEV-SNP report
// over caller-chosen runtime data, and an Azure Attestation token for it. The key release API
// (`encfs skr`) serves both to the other containers of a group; AzureSKR uses the same steps
// with its ephemeral wrapping key as the runtime data.
type Attester struct {
	cfg AzureSKRConfig
	rp  retryPolicy
}

// NewAttester takes the attestation fields of cfg (quote provider, security context,
// certificate cache, HTTP client, retries, logger); the vault and key fields are ignored.
func NewAttester(cfg AzureSKRConfig) *Attester {
	cfg = cfg.withDefaults()
	return &Attester{cfg: cfg, rp: retryPolicy{Attempts: cfg.Attempts, BaseDelay: cfg.RetryDelay, StepTimeout: cfg.StepTimeout}}
}

// ReportDataFor is the SNP REPORT_DATA that binds runtimeData: its SHA-256, then 32 zero bytes
// (what Azure Attestation checks, and what the reference sidecar puts in raw reports).
func ReportDataFor(runtimeData []byte) [64]byte {
	var rd [64]byte
	sum := sha256.Sum256(runtimeData)
	copy(rd[:], sum[:])
	return rd
}

// Report returns the raw signed SNP report (1184 bytes) whose REPORT_DATA is
// ReportDataFor(runtimeData). Failures are *Error at StageSNPReport.
func (a *Attester) Report(runtimeData []byte) ([]byte, error) {
	rep, err := a.report(runtimeData)
	if err != nil {
		return nil, err
	}
	return rep.Raw, nil
}

func (a *Attester) report(runtimeData []byte) (*snpReport, error) {
	qp := a.cfg.QuoteProvider
	if qp == nil {
		var err error
		if qp, err = DefaultQuoteProvider(); err != nil {
			return nil, &Error{Stage: StageSNPReport, Err: err}
		}
	}
	rep, err := getReport(qp, ReportDataFor(runtimeData))
	if err != nil {
		return nil, &Error{Stage: StageSNPReport, Err: err}
	}
	return rep, nil
}

// Token attests runtimeData with Azure Attestation at maaEndpoint (a host name or an https URL)
// and returns the token, whose x-ms-runtime claim holds runtimeData (which must be a JSON
// object: the attestation is of data type JSON, as the reference sidecar sends it). Failures
// are *Error naming their stage: security context, SNP report or attestation.
func (a *Attester) Token(ctx context.Context, maaEndpoint string, runtimeData []byte) (string, error) {
	endpoint, err := httpsURL("attestation authority", maaEndpoint)
	if err != nil {
		return "", &Error{Stage: StageAttestation, Err: err}
	}
	return a.token(ctx, endpoint, runtimeData, a.cfg.Logger)
}

// Evidence is the attestation evidence itself, for a verifier other than Azure Attestation: the
// raw report over the caller's runtime data, the VCEK chain for the report's TCB, and the UVM
// endorsement of the security context.
type Evidence struct {
	Report         []byte       // the signed 1184-byte SNP report
	ReportedTCB    uint64       // its REPORTED_TCB
	Certs          *HostAMDCert // VCEK, ASK and ARK for ReportedTCB
	UVMEndorsement []byte       // COSE_Sign1 reference info; nil when the security context has none
}

// Evidence gathers the report over runtimeData and what verifies it. Failures are *Error at the
// security context or SNP report stage.
func (a *Attester) Evidence(ctx context.Context, runtimeData []byte) (*Evidence, error) {
	return a.evidence(ctx, runtimeData, a.cfg.Logger)
}

func (a *Attester) evidence(ctx context.Context, runtimeData []byte, log *slog.Logger) (*Evidence, error) {
	sc, err := loadSecurityContext(a.cfg.SecurityContextDir, a.cfg.Getenv)
	if err != nil {
		return nil, &Error{Stage: StageSecurityContext, Err: err}
	}
	rep, err := a.report(runtimeData)
	if err != nil {
		return nil, err
	}
	log.Debug("SNP report obtained", "reported_tcb", fmt.Sprintf("%016x", rep.ReportedTCB))
	certs, err := a.certificates(ctx, sc, rep, log)
	if err != nil {
		return nil, err
	}
	return &Evidence{Report: rep.Raw, ReportedTCB: rep.ReportedTCB, Certs: certs, UVMEndorsement: sc.ReferenceInfo}, nil
}

// token gathers the evidence for runtimeData and exchanges it for an Azure Attestation token.
func (a *Attester) token(ctx context.Context, endpoint string, runtimeData []byte, log *slog.Logger) (string, error) {
	ev, err := a.evidence(ctx, runtimeData, log)
	if err != nil {
		return "", err
	}
	if ev.UVMEndorsement == nil {
		log.Warn("no UVM endorsement (reference-info) in the security context; Azure Attestation will not mark the UVM compliant")
	}
	body, err := buildMAARequest(ev.Report, ev.Certs, ev.UVMEndorsement, runtimeData)
	if err != nil {
		return "", &Error{Stage: StageAttestation, Err: err}
	}
	token, err := attest(ctx, a.cfg.HTTPClient, a.rp, endpoint, a.cfg.MAAAPIVersion, body)
	if err != nil {
		return "", err
	}
	log.Debug("attestation token obtained", "authority", endpoint)
	return token, nil
}

// certificates picks the VCEK chain: the security context's, else the quote's certificate table,
// else the certificate cache; a chain issued for another TCB than the reported one is refreshed
// once from the certificate cache, as the reference sidecar does after a TCB update.
func (a *Attester) certificates(ctx context.Context, sc *securityContext, rep *snpReport, log *slog.Logger) (*HostAMDCert, error) {
	certs := sc.Certs
	if certs == nil {
		certs = rep.TableCerts
	}
	if certs != nil && tcbMatches(certs, rep.ReportedTCB) {
		return certs, nil
	}
	if certs != nil {
		log.Info("host certificates are for another TCB than the report's; refreshing them",
			"tcbm", certs.Tcbm, "reported_tcb", fmt.Sprintf("%016x", rep.ReportedTCB))
	}
	fresh, err := a.cfg.CertCache.fetchCerts(ctx, a.cfg.HTTPClient, a.rp, rep)
	if err != nil {
		e := serviceError(StageSecurityContext, err)
		e.Err = fmt.Errorf("no usable VCEK certificate chain (security context: %s): %w", sc.Source, e.Err)
		return nil, e
	}
	return fresh, nil
}

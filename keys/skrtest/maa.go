package skrtest

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/encfs/encfs/keys/internal/jose"
	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/verify"
)

// MAA is a test Azure Attestation service for SevSnpVm: it checks the VCEK chain up to the
// trusted fake ARK, the report's signature, and that REPORT_DATA is the SHA-256 of the runtime
// data, then issues an RS256 JWT with the SNP claims; its signing keys are at /certs.
type MAA struct {
	*httptest.Server
	key *rsa.PrivateKey
	kid string
	ark *x509.Certificate

	mu sync.Mutex
	// TokenLifetime is how long issued tokens are valid; negative issues expired tokens.
	TokenLifetime time.Duration
	// FailNext answers the next FailNext attestation requests with 503.
	FailNext int
	// Requests counts attestation requests, including failed ones.
	Requests int
	lastTok  string
}

// NewMAA starts a test attestation service trusting ark as the AMD root.
func NewMAA(ark *x509.Certificate) (*MAA, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	m := &MAA{key: key, kid: "test-maa-signing-key", ark: ark, TokenLifetime: 8 * time.Hour}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /attest/SevSnpVm", m.attest)
	mux.HandleFunc("GET /certs", m.certs)
	m.Server = httptest.NewTLSServer(mux)
	return m, nil
}

// SetFailNext makes the next n attestation requests fail with 503 (the service is down).
func (m *MAA) SetFailNext(n int) { m.mu.Lock(); m.FailNext = n; m.mu.Unlock() }

// SetTokenLifetime changes the validity of tokens issued from now on.
func (m *MAA) SetTokenLifetime(d time.Duration) { m.mu.Lock(); m.TokenLifetime = d; m.mu.Unlock() }

// RequestCount returns how many attestation requests arrived.
func (m *MAA) RequestCount() int { m.mu.Lock(); defer m.mu.Unlock(); return m.Requests }

// LastToken is the most recently issued attestation token.
func (m *MAA) LastToken() string { m.mu.Lock(); defer m.mu.Unlock(); return m.lastTok }

func (m *MAA) certs(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, jose.JWKSet{Keys: []jose.JWK{jose.RSAPublicJWK(&m.key.PublicKey, m.kid)}})
}

// attestRequest mirrors the body keys.buildMAARequest sends.
type attestRequest struct {
	Report      string `json:"report"`
	RuntimeData struct {
		Data     string `json:"data"`
		DataType string `json:"dataType"`
	} `json:"runtimeData"`
	Nonce json.Number `json:"nonce"`
}

func (m *MAA) attest(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	m.Requests++
	fail := m.FailNext > 0
	if fail {
		m.FailNext--
	}
	lifetime := m.TokenLifetime
	m.mu.Unlock()
	if fail {
		writeError(w, http.StatusServiceUnavailable, "ServiceUnavailable", "The attestation service is temporarily unavailable.")
		return
	}
	if r.URL.Query().Get("api-version") == "" {
		writeError(w, http.StatusBadRequest, "BadRequest", "api-version is required")
		return
	}
	claims, err := m.check(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "InvalidParameter", err.Error())
		return
	}
	now := time.Now()
	claims["iss"] = m.URL
	claims["iat"] = now.Unix()
	claims["nbf"] = now.Unix()
	claims["exp"] = now.Add(lifetime).Unix()
	payload, _ := json.Marshal(claims)
	tok, err := jose.Sign(jose.Header{Alg: "RS256", Kid: m.kid, Typ: "JWT", Jku: m.URL + "/certs"}, payload, m.key)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	m.mu.Lock()
	m.lastTok = tok
	m.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]string{"token": tok})
}

// check validates an attestation request the way Azure Attestation does for SevSnpVm and returns
// the claims of the token to issue. Error texts are in the service's style.
func (m *MAA) check(r *http.Request) (map[string]any, error) {
	var req attestRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		return nil, fmt.Errorf("request body is not valid JSON: %v", err)
	}
	reportJSON, err := jose.B64.DecodeString(req.Report)
	if err != nil {
		return nil, errors.New("report is not base64url")
	}
	var rep struct {
		SnpReport, VcekCertChain, Endorsements string
	}
	if err := json.Unmarshal(reportJSON, &rep); err != nil {
		return nil, fmt.Errorf("report is not valid JSON: %v", err)
	}
	raw, err := jose.B64.DecodeString(rep.SnpReport)
	if err != nil || len(raw) != abi.ReportSize {
		return nil, fmt.Errorf("SnpReport must be a base64url %d-byte report", abi.ReportSize)
	}
	chainPEM, err := jose.B64.DecodeString(rep.VcekCertChain)
	if err != nil {
		return nil, errors.New("VcekCertChain is not base64url")
	}
	vcek, err := m.verifyChain(chainPEM)
	if err != nil {
		return nil, err
	}
	if err := verify.SnpReportSignature(raw, vcek); err != nil {
		return nil, fmt.Errorf("SNP report signature verification failed: %v", err)
	}
	report, err := abi.ReportToProto(raw)
	if err != nil {
		return nil, fmt.Errorf("malformed SNP report: %v", err)
	}
	runtime, err := jose.B64.DecodeString(req.RuntimeData.Data)
	if err != nil {
		return nil, errors.New("runtimeData.data is not base64url")
	}
	sum := sha256.Sum256(runtime)
	if !bytes.Equal(report.GetReportData()[:32], sum[:]) {
		return nil, errors.New("Report data in the SNP report does not match the hash of the runtime data")
	}
	var runtimeClaims map[string]any
	if err := json.Unmarshal(runtime, &runtimeClaims); err != nil {
		return nil, errors.New("runtime data of type JSON is not a JSON object")
	}
	compliant := false
	if rep.Endorsements != "" {
		var e struct{ Uvm []string }
		eb, err := jose.B64.DecodeString(rep.Endorsements)
		if err != nil || json.Unmarshal(eb, &e) != nil {
			return nil, errors.New("Endorsements is malformed")
		}
		compliant = len(e.Uvm) > 0 && e.Uvm[0] != ""
	}
	policy, err := abi.ParseSnpPolicy(report.GetPolicy())
	if err != nil {
		return nil, fmt.Errorf("SNP guest policy: %v", err)
	}
	claims := map[string]any{
		"x-ms-attestation-type":           "sevsnpvm",
		"x-ms-sevsnpvm-hostdata":          hex.EncodeToString(report.GetHostData()),
		"x-ms-sevsnpvm-is-debuggable":     policy.Debug,
		"x-ms-sevsnpvm-vmpl":              report.GetVmpl(),
		"x-ms-sevsnpvm-reportdata":        hex.EncodeToString(report.GetReportData()),
		"x-ms-sevsnpvm-launchmeasurement": hex.EncodeToString(report.GetMeasurement()),
		"x-ms-sevsnpvm-reported-tcb":      report.GetReportedTcb(),
		"x-ms-runtime":                    runtimeClaims,
		"x-ms-ver":                        "1.0",
		"x-ms-policy-hash":                "test",
		"x-ms-sevsnpvm-guestsvn":          report.GetGuestSvn(),
		"x-ms-sevsnpvm-bootloader-svn":    0,
		"x-ms-sevsnpvm-microcode-svn":     0,
		"x-ms-sevsnpvm-snpfw-svn":         0,
		"x-ms-sevsnpvm-tee-svn":           0,
		"x-ms-sevsnpvm-idkeydigest":       hex.EncodeToString(report.GetIdKeyDigest()),
		"x-ms-sevsnpvm-familyId":          hex.EncodeToString(report.GetFamilyId()),
		"x-ms-sevsnpvm-imageId":           hex.EncodeToString(report.GetImageId()),
		"x-ms-sevsnpvm-authorkeydigest":   hex.EncodeToString(report.GetAuthorKeyDigest()),
	}
	if compliant {
		claims["x-ms-compliance-status"] = "azure-compliant-uvm"
	}
	return claims, nil
}

// verifyChain parses VCEK, ASK, ARK from PEM and checks VCEK <- ASK <- ARK == the trusted root.
func (m *MAA) verifyChain(chainPEM []byte) (*x509.Certificate, error) {
	var certs []*x509.Certificate
	for rest := chainPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("VcekCertChain: %v", err)
		}
		certs = append(certs, c)
	}
	if len(certs) != 3 {
		return nil, fmt.Errorf("VcekCertChain holds %d certificates, want VCEK, ASK and ARK", len(certs))
	}
	vcek, ask, ark := certs[0], certs[1], certs[2]
	if !ark.Equal(m.ark) {
		return nil, errors.New("VcekCertChain does not end in a trusted AMD root key")
	}
	if err := ask.CheckSignatureFrom(ark); err != nil {
		return nil, fmt.Errorf("ASK is not signed by the ARK: %v", err)
	}
	if err := vcek.CheckSignatureFrom(ask); err != nil {
		return nil, fmt.Errorf("VCEK is not signed by the ASK: %v", err)
	}
	return vcek, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers in the Azure error shape {"error":{"code","message"}}.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

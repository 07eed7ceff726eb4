package skrapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/encfs/encfs/keys"
)

// rawJSON is a response body already encoded, zeroed once sent (it may hold a key).
type rawJSON []byte

// status answers GET /status, as the reference documents it.
func (s *Server) status(context.Context, *http.Request) (any, error) {
	return map[string]string{"message": "STATUS OK"}, nil
}

// attestRaw answers POST /attest/raw {"runtime_data"} with {"report": hex}: the raw SNP report
// whose REPORT_DATA is SHA-256 of the decoded runtime data, as the reference makes it.
func (s *Server) attestRaw(_ context.Context, r *http.Request) (any, error) {
	var req rawRequest
	if err := decodeRequest(r, &req); err != nil {
		return nil, err
	}
	rd, err := decodeRuntimeData(req.RuntimeData)
	if err != nil {
		return nil, err
	}
	report, err := s.attester.Report(rd)
	if err != nil {
		return nil, err
	}
	return map[string]string{"report": hex.EncodeToString(report)}, nil
}

// attestCombined answers POST /attest/combined {"runtime_data"} with the evidence a verifier of
// one's own needs (the reference's route for the Privacy Sandbox key management service): the
// report, the VCEK chain for its TCB, that TCB, and the UVM endorsement, each base64.
func (s *Server) attestCombined(ctx context.Context, r *http.Request) (any, error) {
	var req rawRequest
	if err := decodeRequest(r, &req); err != nil {
		return nil, err
	}
	rd, err := decodeRuntimeData(req.RuntimeData)
	if err != nil {
		return nil, err
	}
	ev, err := s.attester.Evidence(ctx, rd)
	if err != nil {
		return nil, err
	}
	tcb := ev.Certs.Tcbm
	if tcb == "" {
		tcb = fmt.Sprintf("%016x", ev.ReportedTCB)
	}
	return map[string]string{
		"endorsed_tcb":     tcb,
		"endorsements":     base64.StdEncoding.EncodeToString(ev.Certs.ChainPEM()),
		"evidence":         base64.StdEncoding.EncodeToString(ev.Report),
		"uvm_endorsements": base64.StdEncoding.EncodeToString(ev.UVMEndorsement),
	}, nil
}

// attestMAA answers POST /attest/maa {"maa_endpoint", "runtime_data"} with {"token"}: an Azure
// Attestation token whose x-ms-runtime claim is the runtime data.
func (s *Server) attestMAA(ctx context.Context, r *http.Request) (any, error) {
	var req maaRequest
	if err := decodeRequest(r, &req); err != nil {
		return nil, err
	}
	if _, err := keys.EndpointURL(req.MAAEndpoint); err != nil {
		return nil, badRequest("maa_endpoint: " + err.Error())
	}
	rd, err := decodeRuntimeData(req.RuntimeData)
	if err != nil {
		return nil, err
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(rd, &obj); err != nil {
		return nil, badRequest("runtime_data must be base64 of a JSON object: Azure Attestation takes runtime data of type JSON and returns it as the x-ms-runtime claim")
	}
	token, err := s.attester.Token(ctx, req.MAAEndpoint, rd)
	if err != nil {
		return nil, err
	}
	return map[string]string{"token": token}, nil
}

// keyRelease answers POST /key/release {"maa_endpoint", "akv_endpoint", "kid", "access_token"}
// with {"key": "<JWK>"}: the key released to this container group's attestation, as a JWK in a
// JSON string, as the reference returns it.
func (s *Server) keyRelease(ctx context.Context, r *http.Request) (any, error) {
	var req releaseRequest
	if err := decodeRequest(r, &req); err != nil {
		return nil, err
	}
	if _, err := keys.EndpointURL(req.MAAEndpoint); err != nil {
		return nil, badRequest("maa_endpoint: " + err.Error())
	}
	vault, err := keys.EndpointURL(req.AKVEndpoint)
	if err != nil {
		return nil, badRequest("akv_endpoint: " + err.Error())
	}
	cfg := s.o.Base
	cfg.MAAEndpoint, cfg.VaultURL = req.MAAEndpoint, vault
	if cfg.KeyName, cfg.KeyVersion, err = splitKID(req.KID, vault); err != nil {
		return nil, err
	}
	cfg.KeyType = "" // any type: the caller gets the key as the vault holds it
	if req.AccessToken != "" {
		cfg.Credential, cfg.BearerToken = nil, req.AccessToken
	} else if cfg.Credential, err = s.credential(); err != nil {
		return nil, &keys.Error{Stage: keys.StageAADToken, Err: err}
	}
	p, err := keys.NewAzureSKR(cfg)
	if err != nil {
		return nil, badRequest(err.Error())
	}
	rel, err := p.Release(ctx)
	if err != nil {
		return nil, err
	}
	defer keys.Zero(rel.Material)
	jwk, err := releasedJWK(rel)
	if err != nil {
		return nil, &keys.Error{Stage: keys.StageUnwrap, Err: fmt.Errorf("released %s key: %w", rel.Kty, err)}
	}
	defer keys.Zero(jwk)
	return rawJSON(keyResponse(jwk)), nil
}

// keyResponse is {"key": "<jwk>"} with the JWK's JSON as a JSON string, built in a byte slice
// that the caller can zero. The JWK is JSON text, so only quotes and backslashes need escaping.
func keyResponse(jwk []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(jwk) + len(jwk)/4 + 16)
	b.WriteString(`{"key":"`)
	for _, c := range jwk {
		if c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	b.WriteString(`"}`)
	return b.Bytes()
}

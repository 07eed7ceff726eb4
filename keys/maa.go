package keys

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/encfs/encfs/keys/internal/jose"
)

// DefaultMAAAPIVersion is the Azure Attestation API version used for SevSnpVm attestation.
const DefaultMAAAPIVersion = "2022-08-01"

// maaRequest is the body of POST {maa}/attest/SevSnpVm.
type maaRequest struct {
	Report      string         `json:"report"`
	RuntimeData maaRuntimeData `json:"runtimeData"`
	Nonce       uint64         `json:"nonce"`
}

type maaRuntimeData struct {
	Data     string `json:"data"`
	DataType string `json:"dataType"`
}

// maaReport is the JSON document that, base64url-encoded, forms maaRequest.Report.
type maaReport struct {
	SnpReport     string `json:"SnpReport"`
	VcekCertChain string `json:"VcekCertChain"`
	Endorsements  string `json:"Endorsements,omitempty"`
}

type maaEndorsements struct {
	Uvm []string `json:"Uvm"`
}

// buildMAARequest assembles the attestation request body.
func buildMAARequest(report []byte, certs *HostAMDCert, uvm, runtimeData []byte) ([]byte, error) {
	r := maaReport{
		SnpReport:     jose.B64.EncodeToString(report),
		VcekCertChain: jose.B64.EncodeToString(certs.ChainPEM()),
	}
	if len(uvm) > 0 {
		e, err := json.Marshal(maaEndorsements{Uvm: []string{jose.B64.EncodeToString(uvm)}})
		if err != nil {
			return nil, err
		}
		r.Endorsements = jose.B64.EncodeToString(e)
	}
	rj, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	var nonce [8]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, err
	}
	return json.Marshal(maaRequest{
		Report:      jose.B64.EncodeToString(rj),
		RuntimeData: maaRuntimeData{Data: jose.B64.EncodeToString(runtimeData), DataType: "JSON"},
		// JSON numbers above 2^53 lose precision in some parsers; keep the nonce within it.
		Nonce: binary.BigEndian.Uint64(nonce[:]) >> 11,
	})
}

// attest sends the report to Azure Attestation and returns its token. Failures carry MAA's own
// error text.
func attest(ctx context.Context, hc *http.Client, rp retryPolicy, endpoint, apiVersion string, body []byte) (string, error) {
	url := strings.TrimRight(endpoint, "/") + "/attest/SevSnpVm?api-version=" + apiVersion
	var resp []byte
	err := rp.do(ctx, func(ctx context.Context) error {
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		resp, err = fetch(ctx, hc, req)
		return err
	})
	if err != nil {
		return "", serviceError(StageAttestation, err)
	}
	var out struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(resp, &out); err != nil || out.Token == "" {
		return "", stageErr(StageAttestation, "response from %s holds no token", endpoint)
	}
	return out.Token, nil
}

// serviceError turns a failed HTTP step into a release *Error carrying the service's message.
func serviceError(stage Stage, err error) *Error {
	e := &Error{Stage: stage, Err: err}
	var h *httpStatusError
	if errors.As(err, &h) {
		e.StatusCode, e.Code, e.Message = h.Status, h.Code, h.Message
		// The status is already in the Error's own text; keep Err for retry context only.
		var x *retryExhausted
		if errors.As(err, &x) {
			e.Err = ErrUnavailable
		} else {
			e.Err = fmt.Errorf("%s rejected the request", stageService[stage])
		}
	}
	return e
}

// stageService names the service behind a stage in messages.
var stageService = map[Stage]string{
	StageAttestation:     "Azure Attestation",
	StageSecurityContext: "the certificate cache (THIM)",
	StageKeyRelease:      "Key Vault",
}

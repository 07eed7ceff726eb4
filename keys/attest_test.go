package keys_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-sev-guest/abi"

	"github.com/encfs/encfs/keys"
	"github.com/encfs/encfs/keys/skrtest"
)

// TestAttesterReportAndToken checks the attestation steps on their own: the raw report carries
// SHA-256 of the caller's runtime data, and Azure Attestation's token carries the runtime data
// itself as x-ms-runtime.
func TestAttesterReportAndToken(t *testing.T) {
	env := skrtest.NewEnv(t, skrtest.EnvOptions{})
	a := keys.NewAttester(env.SKRConfig())
	runtime := []byte(`{"purpose":"attester test","nonce":"42"}`)

	raw, err := a.Report(runtime)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := abi.ReportToProto(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := keys.ReportDataFor(runtime)
	if !bytes.Equal(rep.GetReportData(), want[:]) {
		t.Fatalf("REPORT_DATA %x, want %x", rep.GetReportData(), want)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tok, err := a.Token(ctx, env.MAA.URL, runtime)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	claimsJSON, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Runtime map[string]string `json:"x-ms-runtime"`
	}
	if err := json.Unmarshal(claimsJSON, &claims); err != nil {
		t.Fatal(err)
	}
	if claims.Runtime["purpose"] != "attester test" || claims.Runtime["nonce"] != "42" {
		t.Fatalf("x-ms-runtime %v does not hold the runtime data", claims.Runtime)
	}

	// Runtime data that is not a JSON object is refused by Azure Attestation, with its message.
	_, err = a.Token(ctx, env.MAA.URL, []byte("not json"))
	var e *keys.Error
	if !errors.As(err, &e) || e.Stage != keys.StageAttestation || e.StatusCode != 400 {
		t.Fatalf("want a 400 at the attestation stage, got %v", err)
	}
}

// TestReleaseReturnsMaterial checks Release, the step under ReleaseKey that the key release API
// uses: the vault's key type and operations and the unconverted material.
func TestReleaseReturnsMaterial(t *testing.T) {
	env := skrtest.NewEnv(t, skrtest.EnvOptions{})
	p, err := keys.NewAzureSKR(env.SKRConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rel, err := p.Release(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rel.Kty != "oct-HSM" || len(rel.KeyOps) == 0 || !strings.Contains(rel.Kid, "/keys/"+env.KeyName+"/") {
		t.Fatalf("released %s %v %s", rel.Kty, rel.KeyOps, rel.Kid)
	}
	if !bytes.Equal(rel.Material, env.ReleaseKey) {
		t.Fatal("released material is not the vault's key")
	}
}

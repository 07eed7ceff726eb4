package keys

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
)

// ReleasePolicy is a Key Vault / Managed HSM key release policy: the key is released when, for
// any one authority, every claim condition holds in the attestation token it issued.
type ReleasePolicy struct {
	Version string            `json:"version"`
	AnyOf   []PolicyAuthority `json:"anyOf"`
}

// PolicyAuthority is the set of conditions on tokens from one attestation authority.
type PolicyAuthority struct {
	Authority string            `json:"authority"`
	AllOf     []PolicyCondition `json:"allOf"`
}

// PolicyCondition requires a token claim to equal a value (compared as its JSON text form).
type PolicyCondition struct {
	Claim  string `json:"claim"`
	Equals any    `json:"equals"`
}

// NewReleasePolicy builds the policy that releases a key only to a compliant, non-debuggable
// (unless allowDebug) SEV-SNP container group at VMPL 0 whose container policy hashes to
// hostData (64 hex characters), as attested by maa.
func NewReleasePolicy(maa, hostData string, allowDebug bool) (*ReleasePolicy, error) {
	authority, err := httpsURL("attestation authority", maa)
	if err != nil {
		return nil, err
	}
	hd := strings.ToLower(strings.TrimSpace(hostData))
	if b, err := hex.DecodeString(hd); err != nil || len(b) != 32 {
		return nil, fmt.Errorf("host data %q: want the 64-hex-character SHA-256 of the container policy", hostData)
	}
	conds := []PolicyCondition{
		{Claim: "x-ms-sevsnpvm-hostdata", Equals: hd},
		{Claim: "x-ms-compliance-status", Equals: "azure-compliant-uvm"},
		{Claim: "x-ms-sevsnpvm-vmpl", Equals: "0"},
	}
	if !allowDebug {
		conds = append(conds, PolicyCondition{Claim: "x-ms-sevsnpvm-is-debuggable", Equals: "false"})
	}
	return &ReleasePolicy{Version: "1.0.0", AnyOf: []PolicyAuthority{{Authority: authority, AllOf: conds}}}, nil
}

// ParseReleasePolicy decodes and sanity-checks a policy document.
func ParseReleasePolicy(b []byte) (*ReleasePolicy, error) {
	var p ReleasePolicy
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("release policy: %w", err)
	}
	if len(p.AnyOf) == 0 {
		return nil, fmt.Errorf("release policy: anyOf is empty")
	}
	for i, a := range p.AnyOf {
		if a.Authority == "" || len(a.AllOf) == 0 {
			return nil, fmt.Errorf("release policy: anyOf[%d] needs an authority and allOf conditions", i)
		}
	}
	return &p, nil
}

// Satisfied reports whether claims from a token issued by issuer meet the policy, and if not,
// the first condition that failed, for a service-style error message.
func (p *ReleasePolicy) Satisfied(issuer string, claims map[string]any) (bool, string) {
	why := "no authority in the policy matches the token issuer " + issuer
	for _, a := range p.AnyOf {
		if strings.TrimRight(a.Authority, "/") != strings.TrimRight(issuer, "/") {
			continue
		}
		ok := true
		for _, c := range a.AllOf {
			if claimText(claims[c.Claim]) != claimText(c.Equals) {
				ok, why = false, fmt.Sprintf("claim %s is %s, the policy requires %s", c.Claim, claimText(claims[c.Claim]), claimText(c.Equals))
				break
			}
		}
		if ok {
			return true, ""
		}
	}
	return false, why
}

// claimText compares claims the way release policies do: "false" equals false, "0" equals 0.
func claimText(v any) string {
	switch x := v.(type) {
	case nil:
		return "<absent>"
	case string:
		return x
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

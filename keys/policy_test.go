package keys

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestReleasePolicy(t *testing.T) {
	hd := strings.Repeat("ab", 32)
	p, err := NewReleasePolicy("sharedeus2.eus2.attest.azure.net", strings.ToUpper(hd), false)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(p)
	p2, err := ParseReleasePolicy(b)
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]any{
		"x-ms-sevsnpvm-hostdata":      hd,
		"x-ms-compliance-status":      "azure-compliant-uvm",
		"x-ms-sevsnpvm-is-debuggable": false,
		"x-ms-sevsnpvm-vmpl":          float64(0), // as JSON decodes it
	}
	iss := "https://sharedeus2.eus2.attest.azure.net"
	if ok, why := p2.Satisfied(iss, claims); !ok {
		t.Fatalf("not satisfied: %s", why)
	}
	if ok, _ := p2.Satisfied("https://other.attest.azure.net", claims); ok {
		t.Fatal("another authority satisfied the policy")
	}
	claims["x-ms-sevsnpvm-is-debuggable"] = true
	if ok, why := p2.Satisfied(iss, claims); ok || !strings.Contains(why, "is-debuggable") {
		t.Fatalf("debuggable guest: %v %s", ok, why)
	}
	dbg, _ := NewReleasePolicy(iss, hd, true)
	if ok, _ := dbg.Satisfied(iss, claims); !ok {
		t.Fatal("--allow-debug policy refused a debuggable guest")
	}
	delete(claims, "x-ms-compliance-status")
	if ok, _ := p2.Satisfied(iss, claims); ok {
		t.Fatal("non-compliant UVM satisfied the policy")
	}
	for _, bad := range []string{"", "abc", strings.Repeat("zz", 32)} {
		if _, err := NewReleasePolicy(iss, bad, false); err == nil {
			t.Errorf("host data %q accepted", bad)
		}
	}
	if _, err := NewReleasePolicy("http://x", hd, false); err == nil {
		t.Error("http authority accepted")
	}
}

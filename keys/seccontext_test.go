package keys

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"
)

func TestLoadSecurityContextDirAndEnv(t *testing.T) {
	dir := t.TempDir()
	cert := []byte(`{"vcekCert":"-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n","tcbm":"DB18000000000004","certificateChain":"-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----\n"}`)
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(base64.StdEncoding.EncodeToString(b)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("host-amd-cert-base64", cert)
	env := map[string]string{
		envSecurityContextDir: dir,
		envReferenceInfo:      base64.RawURLEncoding.EncodeToString([]byte("cose from env")),
	}
	sc, err := loadSecurityContext("", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if sc.Certs == nil || sc.Certs.Tcbm != "DB18000000000004" || string(sc.ReferenceInfo) != "cose from env" || sc.Policy != nil {
		t.Fatalf("loaded %+v", sc)
	}
	if !tcbMatches(sc.Certs, 0xDB18000000000004) || tcbMatches(sc.Certs, 0xDB18000000000005) {
		t.Fatal("tcbm comparison is wrong")
	}
	write("host-amd-cert-base64", []byte(`{"vcekCert":"nope"}`))
	if _, err := loadSecurityContext(dir, func(string) string { return "" }); err == nil {
		t.Fatal("certificate JSON without PEM accepted")
	}
	// Nothing anywhere is not an error: certificates may come from the quote or THIM.
	if sc, err := loadSecurityContext(t.TempDir(), func(string) string { return "" }); err != nil || sc.Certs != nil {
		t.Fatalf("empty context: %+v %v", sc, err)
	}
}

func FuzzParseHostAMDCert(f *testing.F) {
	f.Add([]byte(`{"vcekCert":"` + "-----BEGIN CERTIFICATE-----" + `","tcbm":"01","certificateChain":"-----BEGIN CERTIFICATE-----"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseHostAMDCert(b)
		if err != nil {
			return
		}
		_ = tcbMatches(c, 1)
		_ = c.ChainPEM()
		_, _ = certsFromPEM(b, 1)
	})
}

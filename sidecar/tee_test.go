package sidecar_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/encfs/encfs/config"
	"github.com/encfs/encfs/sidecar"
)

func TestConfigRulesForTEE(t *testing.T) {
	none := []string{filepath.Join(t.TempDir(), "no-sev-guest")}
	t.Setenv("UVM_SECURITY_CONTEXT_DIR", "")
	if m, _ := filepath.Glob("/security-context-*"); len(m) > 0 {
		t.Skip("this machine has a security context directory; the test needs one without")
	}
	keyFile, _ := config.Parse([]byte(`{"azure_filesystems":[{"mount_point":"/m","azure_url":"/i","key_file":"/k"}]}`))
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	if err := sidecar.CheckConfigForTEE(keyFile, sidecar.TEERules{Devices: none}, log); err != nil {
		t.Fatalf("key_file outside a TEE: %v", err)
	}

	// A device of the SEV-SNP guest, as go-sev-guest opens it.
	dev := filepath.Join(t.TempDir(), "sev-guest")
	os.WriteFile(dev, nil, 0o600)
	if err := sidecar.CheckConfigForTEE(keyFile, sidecar.TEERules{Devices: []string{dev}}, log); err == nil || !strings.Contains(err.Error(), "refused in an SEV-SNP environment") {
		t.Fatalf("key_file in an SEV-SNP environment: %v", err)
	}
	if err := sidecar.CheckConfigForTEE(keyFile, sidecar.TEERules{AllowKeyFile: true, Devices: []string{dev}}, log); err != nil {
		t.Fatalf("key_file with --dev-allow-key-file: %v", err)
	}
	// The ACI security context, found by its environment variable.
	t.Setenv("UVM_SECURITY_CONTEXT_DIR", t.TempDir())
	if err := sidecar.CheckConfigForTEE(keyFile, sidecar.TEERules{Devices: none}, log); err == nil {
		t.Fatal("key_file accepted in a container group with a security context")
	}

	key := `"key":{"kid":"k","kty":"oct-HSM","authority":{"endpoint":"maa.example"},"akv":{"endpoint":"hsm.example"}}`
	for doc, warn := range map[string]bool{
		`{"azure_filesystems":[{"mount_point":"/m","azure_url":"/i",` + key + `}]}`:                                                                                                true,
		`{"azure_filesystems":[{"mount_point":"/m","azure_url":"/i",` + key + `,"series":"` + strings.Repeat("ab", 16) + `","min_generation":2}]}`:                                 true,
		`{"azure_filesystems":[{"mount_point":"/m","azure_url":"/i",` + key + `,"pinned_root":"` + strings.Repeat("ab", 32) + `"}]}`:                                               false,
		`{"azure_filesystems":[{"mount_point":"/m","azure_url":"/i",` + key + `,"series":"` + strings.Repeat("ab", 16) + `","pinned_signer":"` + strings.Repeat("cd", 32) + `"}]}`: false,
	} {
		c, err := config.Parse([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		logs.Reset()
		if err := sidecar.CheckConfigForTEE(c, sidecar.TEERules{Devices: none}, log); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(logs.String(), "no pinned_root or pinned_signer"); got != warn {
			t.Errorf("%s: warned %v, want %v:\n%s", doc, got, warn, logs.String())
		}
	}
}

// TestConfigPinsReachTheMount: the configuration's pins are the ones Mount checks.
func TestConfigPinsReachTheMount(t *testing.T) {
	root, series, signer := strings.Repeat("ab", 32), strings.Repeat("cd", 16), strings.Repeat("ef", 32)
	c, err := config.Parse([]byte(`{"azure_filesystems":[{"mount_point":"/m","azure_url":"/i","key_file":"/k","pinned_root":"` + root +
		`","series":"` + series + `","min_generation":4,"pinned_signer":"` + signer + `"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	specs, err := sidecar.SpecsFromConfig(c, sidecar.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p := specs[0].Pin; p.Root != root || p.Series != series || p.MinGeneration != 4 || p.Signer != signer {
		t.Fatalf("pin %+v", p)
	}
}

// TestConfigVolumeWaitsForLease: a read-write filesystem of a configuration is a volume whose
// writer waits for a killed predecessor's lease to end, with the configuration's minimum
// generation; a read-only one is an image.
func TestConfigVolumeWaitsForLease(t *testing.T) {
	c, err := config.Parse([]byte(`{"azure_filesystems":[` +
		`{"mount_point":"/rw","azure_url":"/v","key_file":"/k","read_write":true,"min_generation":7},` +
		`{"mount_point":"/ro","azure_url":"/i","key_file":"/k"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	specs, err := sidecar.SpecsFromConfig(c, sidecar.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if v := specs[0].Volume; v == nil || v.LeaseWait != sidecar.ConfigLeaseWait || v.MinGeneration != 7 || v.ReadOnly {
		t.Fatalf("read-write filesystem: volume options %+v", v)
	}
	if specs[1].Volume != nil {
		t.Fatalf("read-only filesystem mounted as a volume: %+v", specs[1].Volume)
	}
}

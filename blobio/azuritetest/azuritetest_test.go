package azuritetest

import (
	"strings"
	"testing"
	"time"
)

func TestBinFromEnv(t *testing.T) {
	t.Setenv("ENCFS_AZURITE_BIN", "/nonexistent/azurite-blob")
	if _, err := Bin(); err == nil || !strings.Contains(err.Error(), "ENCFS_AZURITE_BIN") {
		t.Fatalf("missing binary: %v", err)
	}
}

func TestJWTShape(t *testing.T) {
	tok := MakeJWT("https://storage.azure.com", time.Now(), time.Now().Add(time.Hour))
	if strings.Count(tok, ".") != 2 {
		t.Fatalf("not a JWT: %s", tok)
	}
}

func TestStartAndStop(t *testing.T) {
	s := Start(t, Config{})
	resp, err := s.HTTPClient.Get(s.Endpoint + "?comp=list")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == 0 {
		t.Fatal("no answer")
	}
}

package redact

import (
	"net/url"
	"strings"
	"testing"
)

func TestRedaction(t *testing.T) {
	u, _ := url.Parse("https://a.blob.core.windows.net/c/b?sv=2024&se=2026-01-01&sig=SECRET%2Fxyz&sp=r")
	s := URL(u)
	if strings.Contains(s, "SECRET") || !strings.Contains(s, "sig=REDACTED") || !strings.Contains(s, "se=2026-01-01") {
		t.Fatal(s)
	}
	msg := `Get "https://a/b?X-Amz-Signature=abc123&x=1": EOF; Authorization: Bearer eyJhbGciOi.x.y; AccountKey=zzz==;`
	r := String(msg)
	for _, bad := range []string{"abc123", "eyJhbGciOi", "zzz=="} {
		if strings.Contains(r, bad) {
			t.Errorf("%q survives in %q", bad, r)
		}
	}
}

func TestDisplayURL(t *testing.T) {
	u, _ := url.Parse("https://acct.blob.core.windows.net/c/b.img?sv=2022-11-02&sr=b&sp=r&se=2026-11-29T13:00:00Z&sig=SECRETSIG&snapshot=2026-01-01T00:00:00.0000000Z")
	got := DisplayURL(u)
	want := "https://acct.blob.core.windows.net/c/b.img?snapshot=2026-01-01T00%3A00%3A00.0000000Z (SAS sp=r se=2026-11-29T13:00Z)"
	if got != want {
		t.Errorf("DisplayURL = %q\nwant %q", got, want)
	}
}

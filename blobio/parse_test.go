package blobio

import (
	"net/url"
	"strings"
	"testing"
)

func TestParseContentRange(t *testing.T) {
	for _, c := range []struct {
		in   string
		want ContentRange
		ok   bool
	}{
		{"bytes 0-0/10", ContentRange{0, 0, 10}, true},
		{"bytes 5-9/10", ContentRange{5, 9, 10}, true},
		{"bytes 5-9/*", ContentRange{5, 9, -1}, true},
		{"bytes */10", ContentRange{-1, -1, 10}, true},
		{"bytes 5-10/10", ContentRange{}, false},
		{"bytes 9-5/10", ContentRange{}, false},
		{"bytes -1-5/10", ContentRange{}, false},
		{"bytes 1-5", ContentRange{}, false},
		{"items 1-5/10", ContentRange{}, false},
		{"bytes */*", ContentRange{}, false},
		{"bytes +1-5/10", ContentRange{}, false},
		{"bytes 1-99999999999999999999/10", ContentRange{}, false},
	} {
		got, err := ParseContentRange(c.in)
		if (err == nil) != c.ok || (c.ok && got != c.want) {
			t.Errorf("ParseContentRange(%q) = %+v, %v", c.in, got, err)
		}
	}
}

func TestRedaction(t *testing.T) {
	u, _ := url.Parse("https://a.blob.core.windows.net/c/b?sv=2024&se=2026-01-01&sig=SECRET%2Fxyz&sp=r")
	s := redactURL(u)
	if strings.Contains(s, "SECRET") || !strings.Contains(s, "sig=REDACTED") || !strings.Contains(s, "se=2026-01-01") {
		t.Fatal(s)
	}
	msg := `Get "https://a/b?X-Amz-Signature=abc123&x=1": EOF; Authorization: Bearer eyJhbGciOi.x.y; AccountKey=zzz==;`
	r := Redact(msg)
	for _, bad := range []string{"abc123", "eyJhbGciOi", "zzz=="} {
		if strings.Contains(r, bad) {
			t.Errorf("%q survives in %q", bad, r)
		}
	}
}

func TestIsAzureURL(t *testing.T) {
	for in, want := range map[string]bool{
		"https://acct.blob.core.windows.net/c/b":               true,
		"https://acct.blob.core.chinacloudapi.cn/c/b":          true,
		"https://acct.z12.blob.storage.azure.net/c/b":          true,
		"http://127.0.0.1:10000/devstoreaccount1/c/b":          true,
		"azure://images.example.com/c/b":                       true,
		"https://cdn.example.com/c/b?sv=2024-01-01&sig=x":      true,
		"https://bucket.s3.amazonaws.com/img?X-Amz-Signature=": false,
		"https://example.com/img":                              false,
	} {
		u, _ := url.Parse(in)
		if got := IsAzureURL(u); got != want {
			t.Errorf("IsAzureURL(%s) = %v", in, got)
		}
	}
}

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-0/10", "bytes */5", "bytes 1-2/*", "bytes 9223372036854775806-9223372036854775806/9223372036854775807", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cr, err := ParseContentRange(s)
		if err != nil {
			return
		}
		if cr.Total < -1 || (cr.Start >= 0 && (cr.End < cr.Start || (cr.Total >= 0 && cr.End >= cr.Total))) {
			t.Fatalf("%q -> %+v", s, cr)
		}
		if cr.Start < 0 && cr.Total < 0 {
			t.Fatalf("%q -> %+v", s, cr)
		}
	})
}

func FuzzConnString(f *testing.F) {
	f.Add("AccountName=a;AccountKey=" + devAccountKey)
	f.Add("UseDevelopmentStorage=true")
	f.Add("BlobEndpoint=http://127.0.0.1:1/acct;SharedAccessSignature=sv=1&sig=x")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseConnString(s)
		if err == nil && (c.account == "" || (c.key == "" && c.sas == "")) {
			t.Fatalf("%q accepted without account or secret", s)
		}
	})
}

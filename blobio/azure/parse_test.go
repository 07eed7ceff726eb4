package azure

import (
	"net/url"
	"testing"
)

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

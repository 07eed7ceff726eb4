package blobio

import "testing"

func TestDisplay(t *testing.T) {
	for in, want := range map[string]string{
		"/data/img.encfs": "/data/img.encfs",
		"https://acct.blob.core.windows.net/c/b.img?sv=2022-11-02&sr=b&sp=r&se=2026-11-29T13:00:00Z&sig=SECRET": "https://acct.blob.core.windows.net/c/b.img (SAS sp=r se=2026-11-29T13:00Z)",
		"https://example.com/img?token=SECRET": "https://example.com/img",
	} {
		if got := Display(in); got != want {
			t.Errorf("Display(%q) = %q, want %q", in, got, want)
		}
	}
}

package location_test

import (
	"context"
	"testing"

	"github.com/encfs/encfs/blobio/location"
)

func TestOpenRejectsBadLocations(t *testing.T) {
	for _, loc := range []string{
		"ftp://example.com/x",
		"https://acct.blob.core.windows.net/onlycontainer",
		"http://127.0.0.1:10000/devstoreaccount1/c",
		"https:///nohost",
		"/nonexistent/image.encfs",
	} {
		if _, err := location.Open(context.Background(), loc, location.Options{}); err == nil {
			t.Errorf("Open(%q) succeeded", loc)
		} else {
			t.Logf("%s: %v", loc, err)
		}
	}
}

package keys

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestAzCacheFetch(t *testing.T) {
	const pemCert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
	var gotPath, gotQuery string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath, gotQuery = r.URL.Path, r.URL.RawQuery
		w.Write([]byte(pemCert + pemCert + pemCert))
	}))
	defer srv.Close()
	cc := CertCache{EndpointType: "AzCache", Endpoint: strings.TrimPrefix(srv.URL, "https://"), APIVersion: "api-version=2020-10-15-preview"}
	rep := &snpReport{ChipID: []byte{0xab, 0xcd}, ReportedTCB: 0xdb18000000000004}
	c, err := cc.fetchCerts(context.Background(), srv.Client(), retryPolicy{Attempts: 1}, rep)
	if err != nil {
		t.Fatal(err)
	}
	if gotPath != "/SevSnpVM/certificates/abcd/db18000000000004" || gotQuery != "api-version=2020-10-15-preview" {
		t.Fatalf("asked %s?%s", gotPath, gotQuery)
	}
	if !tcbMatches(c, rep.ReportedTCB) || strings.Count(c.CertificateChain, "BEGIN") != 2 {
		t.Fatalf("certs %+v", c)
	}
	if _, err := (CertCache{EndpointType: "Other"}).fetchCerts(context.Background(), srv.Client(), retryPolicy{}, rep); err == nil {
		t.Fatal("unknown endpoint type accepted")
	}
}

// TestLocalTHIMBareEndpoint: the reference's examples give the THIM endpoint as a bare host and
// path; it is fetched over http, with the Metadata header.
func TestLocalTHIMBareEndpoint(t *testing.T) {
	const doc = `{"vcekCert":"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n","tcbm":"04","certificateChain":"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}`
	var gotPath string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Metadata") != "true" {
			http.Error(w, "Metadata header required", http.StatusBadRequest)
			return
		}
		gotPath = r.URL.Path
		w.Write([]byte(doc))
	}))
	defer srv.Close()
	cc := CertCache{EndpointType: "LocalTHIM", Endpoint: strings.TrimPrefix(srv.URL, "http://") + "/metadata/THIM/amd/certification"}
	c, err := cc.fetchCerts(context.Background(), srv.Client(), retryPolicy{Attempts: 1}, &snpReport{})
	if err != nil {
		t.Fatal(err)
	}
	if gotPath != "/metadata/THIM/amd/certification" || c.Tcbm != "04" {
		t.Fatalf("asked %s, got %+v", gotPath, c)
	}
}

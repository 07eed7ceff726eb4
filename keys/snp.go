package keys

import (
	"bytes"
	"encoding/pem"
	"fmt"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/client"
)

// QuoteProvider produces an SNP attestation report (followed by the certificate table, if the
// platform has one) for the given REPORT_DATA. go-sev-guest's client.QuoteProvider (configfs-tsm
// or /dev/sev-guest) satisfies it, and so do its testing fakes.
type QuoteProvider interface {
	GetRawQuote(reportData [64]byte) ([]byte, error)
}

// DefaultQuoteProvider picks configfs-tsm or /dev/sev-guest, whichever the kernel offers: the
// production source of SNP reports when AzureSKRConfig.QuoteProvider is nil.
func DefaultQuoteProvider() (QuoteProvider, error) {
	qp, err := client.GetQuoteProvider()
	if err != nil {
		return nil, fmt.Errorf("no SEV-SNP guest interface (configfs-tsm or /dev/sev-guest): %w", err)
	}
	return qp, nil
}

// snpReport is the raw report plus the fields this package looks at.
type snpReport struct {
	Raw         []byte       // the signed 1184-byte report
	ReportedTCB uint64       // REPORTED_TCB, compared with the certificates' tcbm
	ChipID      []byte       // CHIP_ID, to look up the VCEK in a certificate cache
	TableCerts  *HostAMDCert // VCEK/ASK/ARK from the quote's certificate table, if present
}

// getReport asks the quote provider for a report over reportData and checks it carries it.
func getReport(qp QuoteProvider, reportData [64]byte) (*snpReport, error) {
	quote, err := qp.GetRawQuote(reportData)
	if err != nil {
		return nil, err
	}
	if len(quote) < abi.ReportSize {
		return nil, fmt.Errorf("quote of %d bytes is shorter than a %d-byte report", len(quote), abi.ReportSize)
	}
	raw := quote[:abi.ReportSize]
	r, err := abi.ReportToProto(raw)
	if err != nil {
		return nil, fmt.Errorf("parse report: %w", err)
	}
	if !bytes.Equal(r.GetReportData(), reportData[:]) {
		return nil, fmt.Errorf("report carries different REPORT_DATA than requested")
	}
	rep := &snpReport{Raw: raw, ReportedTCB: r.GetReportedTcb(), ChipID: r.GetChipId()}
	if len(quote) > abi.ReportSize {
		rep.TableCerts = tableCerts(quote)
	}
	return rep, nil
}

// tableCerts turns the quote's certificate table into the host certificate shape, or nil when it
// lacks a VCEK (as on ACI, where the host provides certificates separately).
func tableCerts(quote []byte) *HostAMDCert {
	att, err := abi.ReportCertsToProto(quote)
	if err != nil {
		return nil
	}
	chain := att.GetCertificateChain()
	if len(chain.GetVcekCert()) == 0 || len(chain.GetAskCert()) == 0 || len(chain.GetArkCert()) == 0 {
		return nil
	}
	p := func(der []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	}
	return &HostAMDCert{
		VcekCert:         p(chain.GetVcekCert()),
		CertificateChain: p(chain.GetAskCert()) + p(chain.GetArkCert()),
	}
}

package skrtest

import (
	"encoding/binary"
	"encoding/hex"
	"sync"
	"time"

	"github.com/google/go-sev-guest/abi"
	labi "github.com/google/go-sev-guest/client/linuxabi"
	sgtest "github.com/google/go-sev-guest/testing"
)

// SEV is a fake SEV-SNP guest: go-sev-guest's test quote provider, signing with its test AMD
// chain. The fake answers only REPORT_DATA registered in advance, and a release's REPORT_DATA
// depends on a fresh ephemeral key, so SEV registers each request on the fly with a report built
// from the fields below.
type SEV struct {
	mu       sync.Mutex
	qp       *sgtest.QuoteProvider
	HostData [32]byte // HOST_DATA: the container policy hash
	Debug    bool     // the guest policy's debug bit
	VMPL     uint32
	// ReportedTCB is placed in REPORTED_TCB; it defaults to the fake VCEK's TCB.
	ReportedTCB uint64
	Measurement [48]byte
	Calls       int // number of reports produced
}

// NewSEV makes a fake guest whose reports carry hostData.
func NewSEV(hostData [32]byte) (*SEV, error) {
	qp, err := sgtest.TcQuoteProvider(nil, &sgtest.DeviceOptions{Now: time.Now(), Product: abi.DefaultSevProduct()})
	if err != nil {
		return nil, err
	}
	s := &SEV{qp: qp, HostData: hostData, ReportedTCB: uint64(qp.Device.Signer.TCB)}
	for i := range s.Measurement {
		s.Measurement[i] = byte(i)
	}
	return s, nil
}

// Signer is the fake AMD chain (ARK, ASK, VCEK) that signs the reports.
func (s *SEV) Signer() *sgtest.AmdSigner { return s.qp.Device.Signer }

// GetRawQuote implements keys.QuoteProvider through go-sev-guest's fake.
func (s *SEV) GetRawQuote(reportData [64]byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Calls++
	raw := sgtest.CreateRawReport(&sgtest.TestReportOptions{ReportData: reportData[:]})
	binary.LittleEndian.PutUint64(raw[0x08:], abi.SnpPolicyToBytes(abi.SnpPolicy{Debug: s.Debug, SMT: true}))
	binary.LittleEndian.PutUint32(raw[0x30:], s.VMPL)
	copy(raw[0x90:0xC0], s.Measurement[:])
	copy(raw[0xC0:0xE0], s.HostData[:])
	binary.LittleEndian.PutUint64(raw[0x180:], s.ReportedTCB)
	s.qp.Device.ReportDataRsp[hex.EncodeToString(reportData[:])] = &sgtest.GetReportResponse{
		Resp: labi.SnpReportRespABI{Data: raw},
	}
	return s.qp.GetRawQuote(reportData)
}

package xts

import (
	"slices"
	"testing"
)

// Each benchmark op is one 4096-byte image sector, in place, as the read
// path decrypts it.

func BenchmarkXTSDecrypt4K(b *testing.B)        { benchSector(b, bestImpl(), false) }
func BenchmarkXTSEncrypt4K(b *testing.B)        { benchSector(b, bestImpl(), true) }
func BenchmarkXTSDecrypt4KAESNI(b *testing.B)   { benchSector(b, implAESNI, false) }
func BenchmarkXTSEncrypt4KAESNI(b *testing.B)   { benchSector(b, implAESNI, true) }
func BenchmarkXTSDecrypt4KVAES256(b *testing.B) { benchSector(b, implVAES256, false) }
func BenchmarkXTSEncrypt4KVAES256(b *testing.B) { benchSector(b, implVAES256, true) }
func BenchmarkXTSDecrypt4KPureGo(b *testing.B)  { benchSector(b, implGeneric, false) }
func BenchmarkXTSEncrypt4KPureGo(b *testing.B)  { benchSector(b, implGeneric, true) }
func BenchmarkXTSDecrypt4KXCrypto(b *testing.B) { benchXCrypto(b, false) }
func BenchmarkXTSEncrypt4KXCrypto(b *testing.B) { benchXCrypto(b, true) }

func benchSector(b *testing.B, path implementation, encrypt bool) {
	if !slices.Contains(supportedImpls(), path) {
		b.Skipf("%v is not supported on this machine", path)
	}
	saved := impl
	defer func() { impl = saved }()
	impl = path
	c, err := NewCipher(make([]byte, KeySize))
	if err != nil {
		b.Fatal(err)
	}
	op := c.Decrypt
	if encrypt {
		op = c.Encrypt
	}
	buf := make([]byte, 4096)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	var sector uint64
	for b.Loop() {
		op(buf, buf, sector)
		sector++
	}
}

func benchXCrypto(b *testing.B, encrypt bool) {
	x := reference(b, make([]byte, KeySize))
	op := x.Decrypt
	if encrypt {
		op = x.Encrypt
	}
	buf := make([]byte, 4096)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	var sector uint64
	for b.Loop() {
		op(buf, buf, sector)
		sector++
	}
}

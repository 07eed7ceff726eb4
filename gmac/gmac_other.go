//go:build !amd64 || purego

package gmac

const useAsm = false

func ghashPowers(*[16]byte, *[maxBlocks][16]byte) { panic("gmac: no assembly on this platform") }

func tag(*[16]byte, []byte, *[15][16]byte, *[16]byte) { panic("gmac: no assembly on this platform") }

//go:build !amd64 || purego

package xts

// Without assembly every call takes the portable path.

type asmKeys struct{}

func (*asmKeys) expand([]byte) {}

func bestImpl() implementation { return implGeneric }

func supportedImpls() []implementation { return []implementation{implGeneric} }

func encryptSector(c *Cipher, dst, src []byte, sector uint64) { c.encryptGeneric(dst, src, sector) }

func decryptSector(c *Cipher, dst, src []byte, sector uint64) { c.decryptGeneric(dst, src, sector) }

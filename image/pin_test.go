package image

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func TestPin(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	_, other, _ := ed25519.GenerateKey(nil)
	h := &Header{Generation: 5, Series: [SeriesSize]byte{1, 2, 3}}
	h.Root[0] = 0xab
	h.Sign(priv)
	root, series, signer := h.RootHex(), h.SeriesHex(), hex.EncodeToString(pub)
	otherSeries := strings.Repeat("0", 31) + "9"
	for _, c := range []struct {
		pin  Pin
		want error
	}{
		{Pin{}, nil},
		{Pin{Root: root, Series: series, MinGeneration: 5}, nil},
		{Pin{Root: strings.ToUpper(root)}, nil},
		{Pin{Series: series, MinGeneration: 6}, ErrRollback},
		{Pin{Root: strings.Repeat("0", 64)}, ErrRollback},
		{Pin{Series: otherSeries, MinGeneration: 1}, ErrRollback},
		{Pin{Series: series, Signer: signer, MinGeneration: 5}, nil},
		{Pin{Series: series, Signer: hex.EncodeToString(other.Public().(ed25519.PublicKey))}, ErrRollback},
	} {
		if err := c.pin.Check(h); !errors.Is(err, c.want) {
			t.Errorf("%+v: %v, want %v", c.pin, err, c.want)
		}
	}
	// A signature over another generation, root, series or UUID does not verify.
	for name, change := range map[string]func(*Header){
		"generation": func(h *Header) { h.Generation++ },
		"root":       func(h *Header) { h.Root[5] ^= 1 },
		"series":     func(h *Header) { h.Series[0] ^= 1 },
		"uuid":       func(h *Header) { h.UUID[0] ^= 1 },
	} {
		c := *h
		change(&c)
		p := Pin{Series: c.SeriesHex(), Signer: signer}
		if err := p.Check(&c); !errors.Is(err, ErrRollback) {
			t.Errorf("signature kept after changing the %s: %v", name, err)
		}
	}
	unsigned := &Header{Generation: 5, Series: h.Series}
	if err := (Pin{Series: series, Signer: signer}).Check(unsigned); !errors.Is(err, ErrRollback) {
		t.Errorf("unsigned image under a signer pin: %v", err)
	}
	for _, bad := range []Pin{{Root: "xyz"}, {MinGeneration: 3}, {Signer: signer}, {Series: "00"}, {Series: series, Signer: "ab"}} {
		if err := bad.Check(h); err == nil || errors.Is(err, ErrRollback) {
			t.Errorf("malformed pin %+v: %v", bad, err)
		}
	}
}

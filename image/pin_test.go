package image

import (
	"errors"
	"strings"
	"testing"
)

func TestPin(t *testing.T) {
	h := &Header{Generation: 5}
	h.Root[0] = 0xab
	root := h.RootHex()
	for _, c := range []struct {
		pin  Pin
		want error
	}{
		{Pin{}, nil},
		{Pin{Root: root, MinGeneration: 5}, nil},
		{Pin{Root: strings.ToUpper(root)}, nil},
		{Pin{MinGeneration: 6}, ErrRollback},
		{Pin{Root: strings.Repeat("0", 64)}, ErrRollback},
	} {
		if err := c.pin.Check(h); !errors.Is(err, c.want) {
			t.Errorf("%+v: %v, want %v", c.pin, err, c.want)
		}
	}
	if err := (Pin{Root: "xyz"}).Check(h); err == nil || errors.Is(err, ErrRollback) {
		t.Errorf("malformed pin: %v", err)
	}
}

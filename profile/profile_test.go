package profile_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/encfs/encfs/profile"
)

func TestRoundTripAndRecorder(t *testing.T) {
	r := profile.NewRecorder("0123")
	for _, ino := range []uint64{7, 3, 7, 12, 3, 1} {
		r.Add(ino)
	}
	p, changed := r.Snapshot()
	if !changed || !slices.Equal(p.Inodes, []uint64{7, 3, 12, 1}) {
		t.Fatalf("recorded %v (changed %v), want the first reads in order", p.Inodes, changed)
	}
	if _, changed := r.Snapshot(); changed {
		t.Fatal("a second snapshot with nothing new says changed")
	}
	path := filepath.Join(t.TempDir(), "p")
	if err := p.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	q, err := profile.Load(path)
	if err != nil || q.Image != "0123" || !slices.Equal(q.Inodes, p.Inodes) {
		t.Fatalf("loaded %+v, %v", q, err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", "empty"},
		{"hello\n1\n", "not an encfs access profile"},
		{profile.Header + "\n1\nx\n", `line 3: "x" is not an inode number`},
		{profile.Header + "\n1\n1\n", "inode 1 appears twice"},
		{profile.Header + "\n1\nimage 12\n", "image line must come once"},
		{profile.Header + "\n-1\n", "not an inode number"},
	} {
		if _, err := profile.Parse([]byte(c.in)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q): %v, want %q", c.in, err, c.want)
		}
	}
	p, err := profile.Parse([]byte(profile.Header + "\n# comment\n\nimage ab\n5\n 6 \n"))
	if err != nil || p.Image != "ab" || !slices.Equal(p.Inodes, []uint64{5, 6}) {
		t.Fatalf("%+v, %v", p, err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(profile.Header + "\nimage x\n1\n2\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := profile.Parse(data)
		if err != nil {
			return
		}
		q, err := profile.Parse(p.Marshal())
		if err != nil || !slices.Equal(p.Inodes, q.Inodes) {
			t.Fatalf("round trip of %q: %v", data, err)
		}
	})
}

package image

import (
	"bytes"
	"testing"
)

// The parsers below read bytes that come from storage. The MAC and the integrity tree stop a
// storage attacker, but a parser must still never panic or loop on any input: an image made by
// a buggy or hostile key holder must give an error, not crash the sidecar.

func FuzzParseHeader(f *testing.F) {
	h := &Header{ContentBlocks: 2 * BlocksPerUnit, IndexBlock: 5, Series: [SeriesSize]byte{1}, Keyslots: []Keyslot{{}}}
	h.TreeOffset = contentOffset + h.ContentBlocks*BlockSize
	h.TreeBlocks = newTreeGeometry(h.ContentUnits()).totalBlocks
	// The fuzzer works on the used part of the header (944 bytes) and the rest is zero: an 8 KiB
	// input makes minimisation so slow that the fuzzer stalls. The zero check of the reserved
	// tail is covered by TestTamper.
	f.Add(h.Marshal()[:headerUsed])
	h.Signer[0], h.Signature[0] = 1, 1
	f.Add(h.Marshal()[:headerUsed])
	f.Add([]byte(Magic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		b := in
		if len(in) >= len(Magic) { // shorter inputs exercise the truncated-header path
			b = make([]byte, HeaderSize)
			copy(b, in[:min(len(in), headerUsed)])
		}
		h, err := ParseHeader(b)
		if err != nil {
			return
		}
		// Whatever parses must encode back to the same bytes: there is one encoding.
		if !bytes.Equal(h.Marshal(), b[:HeaderSize]) {
			t.Fatalf("header does not round-trip")
		}
		if h.ImageSize() <= HeaderSize {
			t.Fatalf("parsed header with image size %d", h.ImageSize())
		}
	})
}

func FuzzParseIndex(f *testing.F) {
	var ents []byte
	ents = AppendDirent(ents, DirEntry{Name: "a", Ino: 1, Type: 8})
	ents = AppendDirent(ents, DirEntry{Name: "b", Ino: 2, Type: 4})
	xs := AppendXattrs(nil, []Xattr{{Name: "user.a", Value: []byte("v")}})
	sb := (&Superblock{InodeTableOffset: 4096, InodeCount: 3, MetaOffset: 0, MetaLength: 100}).marshal()
	rec := make([]byte, InodeSize)
	(&Inode{Mode: modeReg | 0o644, Size: 10, Nlink: 1}).Marshal(rec)
	f.Add(ents, uint32(2), uint64(0), xs, sb[:superblockSize], rec)
	f.Fuzz(func(t *testing.T, ents []byte, count uint32, dirIno uint64, xattrs, sbBytes, inode []byte) {
		const contentBytes = 1 << 20
		if out, err := parseDirents(ents, count, 1000, dirIno); err == nil {
			for _, e := range out {
				if uint32(e.Type)<<12 == modeDir && e.Ino <= dirIno {
					t.Fatalf("entry %q names directory inode %d from directory inode %d: a cycle is possible", e.Name, e.Ino, dirIno)
				}
			}
			var re []byte
			for _, e := range out {
				re = AppendDirent(re, e)
			}
			if !bytes.Equal(re, ents) || uint32(len(out)) != count {
				t.Fatalf("directory entries do not round-trip")
			}
		}
		if out, err := parseXattrs(xattrs); err == nil && !bytes.Equal(AppendXattrs(nil, out), xattrs) {
			t.Fatalf("xattrs do not round-trip")
		}
		sb, err := parseSuperblock(sbBytes, contentBytes)
		if err != nil {
			sb = &Superblock{MetaLength: 4096, InodeCount: 1}
		}
		if len(inode) >= InodeSize {
			if in, err := parseInode(1, inode, sb, contentBytes); err == nil {
				buf := make([]byte, InodeSize)
				in.Marshal(buf)
				if !bytes.Equal(buf, inode[:InodeSize]) {
					t.Fatalf("inode does not round-trip")
				}
			}
		}
	})
}

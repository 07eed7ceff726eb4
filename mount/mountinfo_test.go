package mount

import "testing"

func TestParseMountinfoLine(t *testing.T) {
	line := `42 27 0:39 / /tmp/a\040dir/mnt ro,nosuid,nodev,relatime shared:5 master:1 - fuse.encfs encfs ro,user_id=0,group_id=0`
	got, ok := parseMountinfoLine(line)
	want := Info{Dev: "0:39", MountPoint: "/tmp/a dir/mnt", FSType: "fuse.encfs", Source: "encfs"}
	if !ok || got != want || !got.IsFUSE() {
		t.Errorf("got %+v, %v; want %+v", got, ok, want)
	}
	if _, ok := parseMountinfoLine("garbage"); ok {
		t.Error("garbage parsed")
	}
	if (Info{FSType: "fusectl"}).IsFUSE() {
		t.Error("fusectl taken for a FUSE mount")
	}
	if s := unescapeOctal(`a\134b\011c\`); s != "a\\b\tc\\" {
		t.Errorf("unescape: %q", s)
	}
}

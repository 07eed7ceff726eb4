package mount

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Info is one line of /proc/self/mountinfo.
type Info struct {
	Dev        string // major:minor of the filesystem
	MountPoint string
	FSType     string // "fuse.encfs" for encfs mounts
	Source     string
}

// IsFUSE reports whether the mount is served by a FUSE daemon.
func (i Info) IsFUSE() bool { return i.FSType == "fuse" || strings.HasPrefix(i.FSType, "fuse.") }

// Mounts parses /proc/self/mountinfo.
func Mounts() ([]Info, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Info
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if info, ok := parseMountinfoLine(sc.Text()); ok {
			out = append(out, info)
		}
	}
	return out, sc.Err()
}

// parseMountinfoLine decodes "id parent maj:min root mountpoint opts [optional...] - fstype
// source superopts" (proc(5)).
func parseMountinfoLine(line string) (Info, bool) {
	fields := strings.Fields(line)
	sep := -1
	for i := 6; i < len(fields); i++ {
		if fields[i] == "-" {
			sep = i
			break
		}
	}
	if sep < 0 || sep+2 >= len(fields) {
		return Info{}, false
	}
	return Info{Dev: fields[2], MountPoint: unescapeOctal(fields[4]), FSType: fields[sep+1], Source: unescapeOctal(fields[sep+2])}, true
}

// unescapeOctal undoes the kernel's \ooo escaping of spaces, tabs, newlines and backslashes.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// MountsAt returns the mounts whose mount point is path, last mounted (topmost) last.
func MountsAt(path string) ([]Info, error) {
	all, err := Mounts()
	if err != nil {
		return nil, err
	}
	var out []Info
	for _, m := range all {
		if m.MountPoint == path {
			out = append(out, m)
		}
	}
	return out, nil
}

// canonical resolves symlinks in path's parent directories, but not in its last element: that
// element may be a dead FUSE mount (where stat fails), and mountinfo names it literally.
func canonical(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	parent, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if errors.Is(err, fs.ErrNotExist) {
		return "", missingParent{fmt.Sprintf("mount point %s: its parent directory %s does not exist; create it first (only the mount point itself is created)",
			path, filepath.Dir(abs))}
	}
	if err != nil {
		return "", fmt.Errorf("mount point %s: %w", path, err)
	}
	return filepath.Join(parent, filepath.Base(abs)), nil
}

// missingParent is a mount point whose parent directory is missing; it is an fs.ErrNotExist.
type missingParent struct{ msg string }

func (e missingParent) Error() string { return e.msg }
func (e missingParent) Unwrap() error { return fs.ErrNotExist }

// Package profile is the access profile of an image: the order in which a workload first read
// its files, recorded by `encfs mount --record-profile FILE` and replayed as a fetch order by
// `encfs mount --prefetch FILE` or from the image itself (`encfs pack --profile FILE`). This is
// what lazy-pulling container images do with prefetch lists (nydus) and landmarks (stargz):
// the files a job reads first are fetched first, ahead of its reads.
//
// A profile names files by image inode number, never by path: the file is written outside the
// TEE (wherever the operator points it), and inode numbers say nothing about the files without
// the image key, which holds the names, sizes and contents. The same source tree packed again
// gets the same inode numbers (pack numbers files in a fixed walk order), so a profile recorded
// on one image applies to the next pack of the same tree.
//
// The file format is text, one line each:
//
//	encfs access profile 1
//	image <UUID of the image it was recorded on, informative>
//	<inode number, decimal>
//	...
//
// Lines starting with # and empty lines are ignored. An inode appears at most once.
package profile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Header is the first line of a profile file.
const Header = "encfs access profile 1"

// MaxEntries bounds a profile: about 80 MiB of memory to replay, more files than an image of
// any dataset we know of. A recorder stops adding past it.
const MaxEntries = 10_000_000

// Profile is an ordered list of image inode numbers.
type Profile struct {
	// Image is the UUID of the image the profile was recorded on ("" if unknown); it is a hint
	// for operators, not checked against the image mounted (see the package comment).
	Image  string
	Inodes []uint64
}

// Parse reads a profile file's contents.
func Parse(data []byte) (*Profile, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 4096), 4096)
	p := &Profile{}
	seen := map[uint64]bool{}
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if line == 1 {
			if text != Header {
				return nil, fmt.Errorf("not an encfs access profile: the first line is not %q", Header)
			}
			continue
		}
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		if rest, ok := strings.CutPrefix(text, "image "); ok {
			if p.Image != "" || len(p.Inodes) > 0 {
				return nil, fmt.Errorf("line %d: the image line must come once, right after the first line", line)
			}
			p.Image = strings.TrimSpace(rest)
			continue
		}
		ino, err := strconv.ParseUint(text, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: %q is not an inode number", line, text)
		}
		if seen[ino] {
			return nil, fmt.Errorf("line %d: inode %d appears twice", line, ino)
		}
		if len(p.Inodes) >= MaxEntries {
			return nil, fmt.Errorf("line %d: more than %d entries", line, MaxEntries)
		}
		seen[ino] = true
		p.Inodes = append(p.Inodes, ino)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", line+1, err)
	}
	if line == 0 {
		return nil, errors.New("not an encfs access profile: the file is empty")
	}
	return p, nil
}

// Load reads and parses a profile file.
func Load(path string) (*Profile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("access profile: %w", err)
	}
	p, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("access profile %s: %w", path, err)
	}
	return p, nil
}

// Marshal encodes the profile in the file format.
func (p *Profile) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString(Header + "\n")
	if p.Image != "" {
		b.WriteString("image " + p.Image + "\n")
	}
	for _, ino := range p.Inodes {
		b.WriteString(strconv.FormatUint(ino, 10))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// WriteFile writes the profile to path atomically (a temporary file beside it, then a rename),
// so that a reader never sees half of it.
func (p *Profile) WriteFile(path string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("access profile: %w", err)
	}
	_, err = tmp.Write(p.Marshal())
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("access profile: %w", err)
	}
	return nil
}

// Recorder collects the order of first reads. It is safe for concurrent use.
type Recorder struct {
	mu      sync.Mutex
	image   string
	seen    map[uint64]bool
	inodes  []uint64
	changed bool
}

// NewRecorder starts an empty recording for the image with this UUID.
func NewRecorder(image string) *Recorder {
	return &Recorder{image: image, seen: map[uint64]bool{}}
}

// Add records a read of inode ino; only its first counts.
func (r *Recorder) Add(ino uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen[ino] || len(r.inodes) >= MaxEntries {
		return
	}
	r.seen[ino] = true
	r.inodes = append(r.inodes, ino)
	r.changed = true
}

// Snapshot returns the profile recorded so far, and whether anything was added since the last
// snapshot.
func (r *Recorder) Snapshot() (p *Profile, changed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	changed, r.changed = r.changed, false
	return &Profile{Image: r.image, Inodes: append([]uint64(nil), r.inodes...)}, changed
}

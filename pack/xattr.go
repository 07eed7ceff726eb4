package pack

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/encfs/encfs/image"
)

// readXattrs returns the extended attributes of path (not following symlinks), sorted by name.
// A filesystem without xattr support simply has none.
func readXattrs(path string) ([]image.Xattr, error) {
	size, err := unix.Llistxattr(path, nil)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.ENODATA) {
			return nil, nil
		}
		return nil, fmt.Errorf("%s: list xattrs: %w", path, err)
	}
	if size == 0 {
		return nil, nil
	}
	buf := make([]byte, size)
	if size, err = unix.Llistxattr(path, buf); err != nil {
		return nil, fmt.Errorf("%s: list xattrs: %w", path, err)
	}
	var xs []image.Xattr
	for _, name := range bytes.Split(buf[:size], []byte{0}) {
		if len(name) == 0 {
			continue
		}
		if len(name) > 255 {
			return nil, fmt.Errorf("%s: xattr name longer than 255 bytes", path)
		}
		v, err := getXattr(path, string(name))
		if err != nil {
			if errors.Is(err, unix.ENODATA) { // removed between list and get
				continue
			}
			return nil, fmt.Errorf("%s: read xattr %s: %w", path, name, err)
		}
		xs = append(xs, image.Xattr{Name: string(name), Value: v})
	}
	slices.SortFunc(xs, func(a, b image.Xattr) int { return bytes.Compare([]byte(a.Name), []byte(b.Name)) })
	return xs, nil
}

func getXattr(path, name string) ([]byte, error) {
	size, err := unix.Lgetxattr(path, name, nil)
	if err != nil {
		return nil, err
	}
	v := make([]byte, size)
	if size, err = unix.Lgetxattr(path, name, v); err != nil {
		return nil, err
	}
	return v[:size], nil
}

package blockdev

import (
	"context"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// FileDevice is a plain local file as a Device, with no cryptography: the baseline of the
// benchmarks (the same loop + ext4 + FUSE stack as a volume, without its cost) and a simple
// device for tests.
type FileDevice struct {
	f    *os.File
	size int64
}

var _ Device = (*FileDevice)(nil)

// CreateFileDevice creates a new sparse file of size bytes (a multiple of 4096) at path.
func CreateFileDevice(path string, size int64) (*FileDevice, error) {
	if size <= 0 || size%4096 != 0 {
		return nil, fmt.Errorf("device size %d is not a positive multiple of 4096", size)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	return &FileDevice{f: f, size: size}, nil
}

// OpenFileDevice opens the file at path as a device; its size must be a multiple of 4096.
func OpenFileDevice(path string) (*FileDevice, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if st.Size() <= 0 || st.Size()%4096 != 0 {
		f.Close()
		return nil, fmt.Errorf("%s: size %d is not a positive multiple of 4096", path, st.Size())
	}
	return &FileDevice{f: f, size: st.Size()}, nil
}

func (d *FileDevice) ReadAt(ctx context.Context, p []byte, off int64) error {
	_, err := d.f.ReadAt(p, off) // io.ReaderAt: a short read is an error
	return err
}

func (d *FileDevice) WriteAt(ctx context.Context, p []byte, off int64) error {
	_, err := d.f.WriteAt(p, off)
	return err
}

func (d *FileDevice) Flush(ctx context.Context) error {
	return unix.Fdatasync(int(d.f.Fd()))
}

func (d *FileDevice) Size() int64 { return d.size }

// Close closes the file.
func (d *FileDevice) Close() error { return d.f.Close() }

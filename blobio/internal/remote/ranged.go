package remote

import (
	"context"
	"fmt"
	"io"
)

// RangeGetter starts one ranged GET of count bytes at start and returns its checked body (the
// right version, the right range), or why not.
type RangeGetter func(ctx context.Context, start, count int64) (io.ReadCloser, *Attempt)

// ReadRanged is ReadAt for the remote sources: it clamps the read to size, fetches it with
// get under the retrier, and after a body cut short asks only for the bytes still missing.
func ReadRanged(ctx context.Context, r *Retrier, name string, size int64, p []byte, off int64, get RangeGetter) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read %s: negative offset %d", name, off)
	}
	if off >= size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	want := p
	var eof error
	if rem := size - off; int64(len(want)) > rem {
		want = want[:rem]
		eof = io.EOF
	}
	done := 0
	op := fmt.Sprintf("read %d bytes at %d from", len(want), off)
	err := r.Do(ctx, op, func(ctx context.Context) *Attempt {
		for done < len(want) {
			count := int64(len(want) - done)
			body, a := get(ctx, off+int64(done), count)
			if a != nil {
				return a
			}
			n, err := io.ReadFull(body, want[done:])
			body.Close()
			done += n
			if err != nil {
				return ClassifyTransport(fmt.Errorf("body cut short after %d of %d bytes: %w", n, count, err))
			}
		}
		return nil
	})
	if err != nil {
		return done, err
	}
	return len(want), eof
}

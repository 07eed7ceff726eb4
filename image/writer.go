package image

import (
	"bufio"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"time"
)

// WriterOptions configure a new image. Only ReleaseKeys is required. The master key and the
// salt, from which every data key derives, are always fresh random values: no option sets
// them, so two packings never share a key (docs/FORMAT.md, "Keys").
type WriterOptions struct {
	ReleaseKeys [][]byte // 1 to MaxKeyslots release keys, one keyslot each
	// Series keeps the series of an earlier image (its generations form one line); nil starts
	// a new series with a random id.
	Series     *[SeriesSize]byte
	UUID       *[16]byte // default: random
	Created    time.Time // default: now
	Generation uint64
	// SignKey, if set, signs (series, generation, root, UUID) with Ed25519 as the publisher.
	SignKey ed25519.PrivateKey
	Workers int    // encryption goroutines; default GOMAXPROCS
	TempDir string // for the leaf-hash spool; default: a private temporary directory
}

// batchBytes is the unit of work of the encryption pipeline: 1 MiB, a whole number of
// verification units.
const batchBytes = 1 << 20

type batch struct {
	buf    []byte
	first  uint64 // first content block
	leaves []byte
	done   chan struct{}
}

// Writer streams content into a new image: callers Write file data and index bytes into the
// content space, and Finish writes the index superblock, the integrity tree and the header.
// Encryption and leaf hashing run on Workers goroutines; memory is bounded by a few batches per
// worker, whatever the image size.
type Writer struct {
	f       *os.File
	hdr     Header
	keys    *imageKeys
	hasher  *leafHasher
	signKey ed25519.PrivateKey

	cur    *batch
	offset uint64 // content bytes written so far
	free   chan *batch
	work   chan *batch
	order  chan *batch
	wg     sync.WaitGroup // workers
	done   chan struct{}  // closed when the ordering writer exits
	leaves *os.File
	errMu  sync.Mutex
	err    error
}

// NewWriter starts an image in f, which must be empty and seekable.
func NewWriter(f *os.File, opts WriterOptions) (*Writer, error) {
	if n := len(opts.ReleaseKeys); n < 1 || n > MaxKeyslots {
		return nil, fmt.Errorf("an image needs 1 to %d release keys, got %d", MaxKeyslots, n)
	}
	if opts.SignKey != nil && len(opts.SignKey) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("signing key is %d bytes, want an Ed25519 private key of %d", len(opts.SignKey), ed25519.PrivateKeySize)
	}
	w := &Writer{f: f, signKey: opts.SignKey}
	h := &w.hdr
	// The master key is needed only here, to wrap it in the keyslots and derive the working
	// keys; it is cleared on the way out, whether NewWriter fails or not.
	master := make([]byte, MasterKeySize)
	defer clear(master)
	randomBytes(master)
	randomBytes(h.Salt[:])
	if opts.UUID != nil {
		h.UUID = *opts.UUID
	} else {
		randomBytes(h.UUID[:])
		h.UUID[6] = h.UUID[6]&0x0f | 0x40 // version 4
		h.UUID[8] = h.UUID[8]&0x3f | 0x80 // RFC 4122 variant
	}
	if opts.Series != nil {
		if allZero(opts.Series[:]) {
			return nil, fmt.Errorf("series id is all zero: give the series an image was packed with (encfs inspect shows it)")
		}
		h.Series = *opts.Series
	} else {
		for allZero(h.Series[:]) {
			randomBytes(h.Series[:])
		}
	}
	if opts.Created.IsZero() {
		opts.Created = time.Now()
	}
	h.Created = opts.Created.Unix()
	h.Generation = opts.Generation
	for i, k := range opts.ReleaseKeys {
		if len(k) != ReleaseKeySize {
			return nil, fmt.Errorf("release key %d is %d bytes, want %d", i+1, len(k), ReleaseKeySize)
		}
		ks := wrapMasterKey(h, k, master)
		for _, prev := range h.Keyslots {
			if prev.Fingerprint == ks.Fingerprint {
				return nil, fmt.Errorf("release key with fingerprint %x given twice", ks.Fingerprint)
			}
		}
		h.Keyslots = append(h.Keyslots, ks)
	}
	var err error
	if w.keys, err = deriveKeys(master, h.Salt[:]); err != nil {
		return nil, err
	}
	w.hasher = newLeafHasher(&h.Salt)
	if w.leaves, err = os.CreateTemp(opts.TempDir, ".encfs-leaves-*"); err != nil {
		return nil, fmt.Errorf("leaf hash spool: %w", err)
	}
	os.Remove(w.leaves.Name()) // unlinked: vanishes with the process, whatever happens

	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	inflight := 2*workers + 2
	w.free = make(chan *batch, inflight)
	for i := 0; i < inflight; i++ {
		w.free <- &batch{buf: make([]byte, 0, batchBytes), leaves: make([]byte, 0, batchBytes/UnitSize*leafSize)}
	}
	w.work = make(chan *batch, inflight)
	w.order = make(chan *batch, inflight)
	w.done = make(chan struct{})
	for i := 0; i < workers; i++ {
		w.wg.Add(1)
		go w.encryptLoop()
	}
	go w.writeLoop()
	return w, nil
}

// Offset is the content offset the next Write lands at.
func (w *Writer) Offset() uint64 { return w.offset }

// Write appends p to the content space.
func (w *Writer) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		if err := w.failed(); err != nil {
			return written, err
		}
		w.takeBatch()
		n := copy(w.cur.buf[len(w.cur.buf):cap(w.cur.buf)], p)
		w.cur.buf = w.cur.buf[:len(w.cur.buf)+n]
		p, written, w.offset = p[n:], written+n, w.offset+uint64(n)
		if len(w.cur.buf) == cap(w.cur.buf) {
			w.submit()
		}
	}
	return written, nil
}

// ReadFrom appends everything r yields to the content space, reading straight into the
// pipeline's batch buffers (no intermediate copy).
func (w *Writer) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	for {
		if err := w.failed(); err != nil {
			return total, err
		}
		w.takeBatch()
		n, err := r.Read(w.cur.buf[len(w.cur.buf):cap(w.cur.buf)])
		w.cur.buf = w.cur.buf[:len(w.cur.buf)+n]
		total, w.offset = total+int64(n), w.offset+uint64(n)
		if len(w.cur.buf) == cap(w.cur.buf) {
			w.submit()
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// PadToBlock writes zeros up to the next block boundary.
func (w *Writer) PadToBlock() error { return w.padTo(BlockSize) }

// PadToUnit writes zeros up to the next verification unit boundary.
func (w *Writer) PadToUnit() error { return w.padTo(UnitSize) }

func (w *Writer) padTo(size uint64) error {
	if r := w.offset % size; r != 0 {
		_, err := w.Write(make([]byte, size-r))
		return err
	}
	return nil
}

// takeBatch makes sure there is a batch to fill, waiting for a free one if needed.
func (w *Writer) takeBatch() {
	if w.cur == nil {
		w.cur = <-w.free
		w.cur.buf = w.cur.buf[:0]
		w.cur.first = w.offset / BlockSize
	}
}

func (w *Writer) submit() {
	b := w.cur
	w.cur = nil
	b.done = make(chan struct{})
	w.order <- b
	w.work <- b
}

func (w *Writer) encryptLoop() {
	defer w.wg.Done()
	ls := w.hasher.get()
	defer w.hasher.put(ls)
	for b := range w.work {
		// Every batch is whole units: full batches are, and Finish pads the last one.
		for i := 0; i < len(b.buf)/BlockSize; i++ {
			blk := b.buf[i*BlockSize : (i+1)*BlockSize]
			w.keys.xts.Encrypt(blk, blk, b.first+uint64(i))
		}
		n := len(b.buf) / UnitSize
		b.leaves = b.leaves[:n*leafSize]
		for i := 0; i < n; i++ {
			copy(b.leaves[i*leafSize:], ls.leafOf(b.buf[i*UnitSize:(i+1)*UnitSize]))
		}
		close(b.done)
	}
}

// writeLoop writes encrypted batches in content order and spools their leaf hashes.
func (w *Writer) writeLoop() {
	defer close(w.done)
	leaves := bufio.NewWriterSize(w.leaves, 1<<20)
	for b := range w.order {
		<-b.done
		if w.failed() == nil {
			if _, err := w.f.WriteAt(b.buf, int64(contentOffset+b.first*BlockSize)); err != nil {
				w.fail(fmt.Errorf("write image: %w", err))
			} else if _, err := leaves.Write(b.leaves); err != nil {
				w.fail(fmt.Errorf("write leaf hash spool: %w", err))
			}
		}
		w.free <- b
	}
	if err := leaves.Flush(); err != nil {
		w.fail(fmt.Errorf("write leaf hash spool: %w", err))
	}
}

func (w *Writer) fail(err error) {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	if w.err == nil {
		w.err = err
	}
}

func (w *Writer) failed() error {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	return w.err
}

// drain stops the pipeline and waits for every batch to be written.
func (w *Writer) drain() {
	if w.work == nil {
		return
	}
	close(w.work)
	close(w.order)
	w.wg.Wait()
	<-w.done
	w.work = nil
}

// Abort stops the pipeline and releases its resources; the caller removes the file.
func (w *Writer) Abort() {
	w.drain()
	w.leaves.Close()
}

// Finish writes the index superblock sb (its locations filled in by the caller) and zeros up
// to a whole unit, the integrity tree and the authenticated header, and syncs the file. It
// returns the header.
func (w *Writer) Finish(sb *Superblock) (*Header, error) {
	defer w.Abort()
	if err := w.PadToBlock(); err != nil {
		return nil, err
	}
	w.hdr.IndexBlock = w.offset / BlockSize
	if _, err := w.Write(sb.marshal()); err != nil {
		return nil, err
	}
	if err := w.PadToUnit(); err != nil {
		return nil, err
	}
	if w.cur != nil {
		w.submit()
	}
	w.drain()
	if err := w.failed(); err != nil {
		return nil, err
	}
	h := &w.hdr
	h.ContentBlocks = w.offset / BlockSize
	h.TreeOffset = contentOffset + h.ContentBlocks*BlockSize
	geo := newTreeGeometry(h.ContentUnits())
	h.TreeBlocks = geo.totalBlocks
	root, err := w.writeTree(geo)
	if err != nil {
		return nil, err
	}
	h.Root = root
	if w.signKey != nil {
		h.Sign(w.signKey)
	}
	h.Seal(w.keys.headerMAC)
	if _, err := w.f.WriteAt(h.Marshal(), 0); err != nil {
		return nil, fmt.Errorf("write header: %w", err)
	}
	if err := w.f.Sync(); err != nil {
		return nil, fmt.Errorf("sync image: %w", err)
	}
	out := *h
	return &out, nil
}

// writeTree streams the spooled leaf hashes into level 0 and builds every level above it with
// one block of memory per level. It returns the root.
func (w *Writer) writeTree(geo treeGeometry) ([32]byte, error) {
	var root [32]byte
	next := make([]uint64, len(geo.levels)) // next block index per level
	acc := make([][]byte, len(geo.levels))  // partial block of hashes per level above 0
	var emit func(level int, blk []byte) error
	emit = func(level int, blk []byte) error {
		t := geo.levels[level].first + next[level]
		next[level]++
		if _, err := w.f.WriteAt(blk, int64(w.hdr.TreeOffset+t*BlockSize)); err != nil {
			return fmt.Errorf("write integrity tree: %w", err)
		}
		h := nodeHash(&w.hdr.Salt, blk)
		if level == geo.top() {
			root = h
			return nil
		}
		acc[level+1] = append(acc[level+1], h[:]...)
		if len(acc[level+1]) == BlockSize {
			err := emit(level+1, acc[level+1])
			acc[level+1] = acc[level+1][:0]
			return err
		}
		return nil
	}
	if _, err := w.leaves.Seek(0, io.SeekStart); err != nil {
		return root, err
	}
	r := bufio.NewReaderSize(w.leaves, 1<<20)
	blk := make([]byte, BlockSize)
	for i := uint64(0); i < geo.levels[0].count; i++ {
		clear(blk)
		if _, err := io.ReadFull(r, blk); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			return root, fmt.Errorf("read leaf hash spool: %w", err)
		}
		if err := emit(0, blk); err != nil {
			return root, err
		}
	}
	for level := 1; level < len(geo.levels); level++ {
		if len(acc[level]) > 0 {
			full := make([]byte, BlockSize)
			copy(full, acc[level])
			if err := emit(level, full); err != nil {
				return root, err
			}
		}
	}
	return root, nil
}

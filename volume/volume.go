package volume

import (
	"cmp"
	"context"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/encfs/encfs/internal/keyslot"
)

const (
	// maxBatch is how many blocks one pass of ReadAt or WriteAt handles: 1 MiB, the largest
	// FUSE request, in one pooled buffer.
	maxBatch = 256
	// reserveStep is how many write counters one header commit reserves ahead (4 GiB of block
	// writes), so that reservations cost one header write in a million block writes.
	reserveStep = 1 << 20
	// nStripes is the number of block locks; block i uses stripe i % nStripes.
	nStripes = 1024
	aadSize  = 16 + 1 + 8
)

// now is the clock of new headers; the vector test fixes it.
var now = time.Now

// storeCtx is the context of the store writes of a write or commit: once started, they run to
// their end or a storage error (a torn shadow slot or commit would fail the volume, see fail),
// whatever happens to the request. A fixed context, not context.WithoutCancel of the request's:
// that allocates on every call, and the write path allocates nothing.
var storeCtx = context.Background()

// presyncBlocks is how many blocks written since the last store flush make Flush flush the
// store before its commit starts (see Flush).
const presyncBlocks = 256

// CreateOptions describe a new volume.
type CreateOptions struct {
	Size  int64  // bytes, a positive multiple of 4096
	Label string // free text for operators, at most 64 bytes of UTF-8, stored unencrypted
	// Preallocate writes the whole store before the header (FileStore.Preallocate); only a
	// local file can be preallocated.
	Preallocate bool
}

// preallocator is a store that can be written whole at creation (FileStore).
type preallocator interface {
	Preallocate(ctx context.Context) error
}

// OpenOptions describe how to open a volume.
type OpenOptions struct {
	ReadOnly bool
	// MinGeneration refuses a volume whose committed generation is older: the one defence
	// against an attacker who serves an older, authentic copy of the whole store.
	MinGeneration uint64
	// Log receives one line per integrity failure and per recovery decision; nil means
	// slog.Default().
	Log *slog.Logger
	// CacheNodes bounds the tree nodes kept in memory (about 4.2 KiB each, one per 512 KiB of
	// data): 0 means DefaultCacheNodes. Nodes changed since the last flush stay regardless.
	CacheNodes int
}

// DefaultCacheNodes keeps the tree nodes of 4 GiB of data, about 34 MiB.
const DefaultCacheNodes = 8192

// Info describes an opened, authenticated volume.
type Info struct {
	UUID       string
	Generation uint64 // raised by every commit; compare with MinGeneration
	Size       int64  // bytes
	BlockSize  int
	Label      string
	Created    time.Time
	Keyslots   []string // fingerprints, in hex
	StoreSize  int64    // bytes of the store the format needs (up to about twice Size; sparse)
}

// Stats are a volume's counters, for metrics.
type Stats struct {
	BlocksRead, BlocksWritten uint64
	Commits                   uint64 // header commits by Flush, Grow and nonce reservations
	// Flushes counts the Flush calls that committed something, FlushTime their total duration
	// (writes wait while a commit runs), FlushFailures those that failed (the volume then
	// refuses writes until it is opened again).
	Flushes, FlushFailures uint64
	FlushTime              time.Duration
	IntegrityFailures      uint64
}

// Volume is an opened volume: a block device of Size bytes whose every block is encrypted and
// authenticated, committed atomically by Flush. It is safe for concurrent use.
type Volume struct {
	s        Store
	readOnly bool
	log      *slog.Logger
	aead     cipher.AEAD
	macKey   []byte
	uuid     [16]byte
	// session is this open's random id, the second half of every nonce it seals with: should
	// an attacker roll the whole store back to an older copy (and so the counters), nonces
	// still differ from those sealed in the discarded history (docs/VOLUME.md, "Nonces").
	session [sessionSize]byte

	// flushMu is held shared by WriteAt and exclusively by Flush, Grow and Close, so a commit
	// sees no write half done. Reads go on during a commit (which changes only the entries of
	// nodes being sealed, never a data block's or a clean node's): readMu, held shared by
	// ReadAt, is taken exclusively only to evict nodes, to grow and to close.
	flushMu sync.RWMutex
	readMu  sync.RWMutex
	stripes [nStripes]sync.RWMutex // per block: a write excludes reads and writes of its block
	closed  atomic.Bool

	// hdrMu serialises header writes and guards hdr, the last committed header, and sealer.
	hdrMu  sync.Mutex
	hdr    header
	sealer *headerSealer
	next   atomic.Uint64 // next write counter
	limit  atomic.Uint64 // counters below limit are reserved by a durable header
	size   atomic.Int64

	// metaMu guards the tree nodes in memory, root and rootChanged. geo changes only in Grow,
	// under flushMu and readMu held exclusively.
	metaMu     sync.Mutex
	geo        geometry
	nodes      map[nodeKey]*node
	dirty      map[nodeKey]*node // nodes changed since the last commit
	cacheNodes int               // bound on len(nodes) past which reads do not cache
	spareNodes []*node           // evicted nodes, reused by loadNode (not a sync.Pool: see getScratch)
	// todo and sealed are commit's lists, kept so that a commit allocates nothing once they
	// have grown (flushMu held exclusively guards them).
	todo, sealed []*node
	// unsynced counts blocks written since the last store flush began (see Flush).
	unsynced    atomic.Uint64
	root        entry // the root node's current entry (committed one in hdr)
	rootChanged bool

	failed atomic.Pointer[error]

	// reported holds the units whose integrity failure was logged, so each is logged once.
	reportedMu   sync.Mutex
	reported     map[reportedUnit]struct{}
	reportedFull bool

	blocksRead, blocksWritten, commits, integrityFailures atomic.Uint64
	flushes, flushFailures, flushNanos                    atomic.Uint64
	scratch                                               chan *scratch // free list, see getScratch
}

type nodeKey struct {
	level int
	index uint64
}

// node is a tree node in memory: the entries of its 128 children and which of them changed
// since the last commit (a changed child is in its shadow slot, so it is not moved again).
type node struct {
	key     nodeKey
	e       [fanout]entry
	changed [fanout / 64]uint64
}

func (n *node) isChanged(i uint64) bool { return n.changed[i/64]&(1<<(i%64)) != 0 }
func (n *node) setChanged(i uint64)     { n.changed[i/64] |= 1 << (i % 64) }

// scratch is the per-call working memory, pooled so that the I/O path does not allocate.
type scratch struct {
	buf   []byte // maxBatch blocks of ciphertext, plus room for one tag
	unit  []byte // one ciphertext block and its tag
	edge  []byte // plaintext of the two partial blocks of a write
	plain []byte // one plaintext tree node
	ents  [maxBatch]entry
	slots [maxBatch]uint8
	nonce [nonceSize]byte
	aad   [aadSize]byte
}

// maxSpareScratch is how many scratch buffers (1 MiB each) a volume keeps for reuse: more than
// the concurrent requests FUSE sends, so the write path does not allocate in steady state.
// A sync.Pool would not do: it empties at every garbage collection, and allocating under
// memory pressure is what deadlocks a loop device over FUSE (the kernel may need this very
// daemon's writes to free memory).
const maxSpareScratch = 16

func (v *Volume) getScratch() *scratch {
	select {
	case sc := <-v.scratch:
		return sc
	default:
	}
	return &scratch{buf: make([]byte, maxBatch*BlockSize+tagSize), unit: make([]byte, BlockSize+tagSize),
		edge: make([]byte, 2*BlockSize), plain: make([]byte, BlockSize)}
}

func (v *Volume) putScratch(sc *scratch) {
	select {
	case v.scratch <- sc:
	default:
	}
}

// Create writes a new, empty volume of o.Size bytes into s, with one keyslot for releaseKey.
// Only the header is written: unwritten blocks read as zeros. s is resized to the size the
// format needs (see Info.StoreSize); it is not closed.
func Create(ctx context.Context, s Store, releaseKey []byte, o CreateOptions) (*Info, error) {
	if len(releaseKey) != keyslot.ReleaseKeySize {
		return nil, fmt.Errorf("release key is %d bytes, want %d", len(releaseKey), keyslot.ReleaseKeySize)
	}
	if o.Size <= 0 || o.Size%BlockSize != 0 || o.Size/BlockSize > MaxBlocks {
		return nil, fmt.Errorf("volume size %d: want a positive multiple of %d up to %d bytes", o.Size, BlockSize, int64(MaxBlocks)*BlockSize)
	}
	if len(o.Label) > MaxLabel || !utf8.ValidString(o.Label) || containsNUL(o.Label) {
		return nil, fmt.Errorf("label: want at most %d bytes of UTF-8 without NUL", MaxLabel)
	}
	pre, canPreallocate := s.(preallocator)
	if o.Preallocate && !canPreallocate {
		return nil, fmt.Errorf("%s: only a volume in a local file can be preallocated", s)
	}
	for c := int64(0); c < 2 && s.Size() >= (c+1)*headerCopySize; c++ {
		b := make([]byte, PageSize)
		if err := s.ReadAt(ctx, b, c*headerCopySize); err != nil {
			return nil, fmt.Errorf("read %s: %w", s, err)
		}
		if string(b[:len(Magic)]) == Magic {
			return nil, fmt.Errorf("%s already holds an encfs volume: refusing to overwrite it", s)
		}
	}
	blocks := uint64(o.Size / BlockSize)
	h := &header{Generation: 1, Created: now().Unix(), Blocks: blocks, ExtentBlocks: extentFor(blocks), CounterLimit: 1, Label: o.Label}
	master := make([]byte, keyslot.MasterKeySize)
	defer clear(master)
	randomBytes(master)
	randomBytes(h.Salt[:])
	randomBytes(h.UUID[:])
	h.UUID[6] = h.UUID[6]&0x0f | 0x40 // RFC 4122 version 4
	h.UUID[8] = h.UUID[8]&0x3f | 0x80
	h.Keyslots = []keyslot.Slot{wrapMasterKey(h, releaseKey, master)}
	k := deriveKeys(master, h.Salt[:])
	geo := newGeometry(blocks, h.ExtentBlocks)
	if s.Size() < geo.storeSize() {
		if err := s.Resize(ctx, geo.storeSize()); err != nil {
			return nil, fmt.Errorf("resize %s to %d bytes: %w", s, geo.storeSize(), err)
		}
	}
	if o.Preallocate {
		if err := pre.Preallocate(ctx); err != nil {
			return nil, err
		}
	}
	// Copy 0 is cleared so that no older bytes there pass for a header.
	if err := s.WriteAt(ctx, make([]byte, headerCopySize), 0); err != nil {
		return nil, fmt.Errorf("write header: %w", err)
	}
	if err := s.WriteAt(ctx, h.seal(k.macKey), headerCopySize); err != nil {
		return nil, fmt.Errorf("write header: %w", err)
	}
	if err := s.Flush(ctx); err != nil {
		return nil, fmt.Errorf("flush header: %w", err)
	}
	info := infoOf(h)
	return &info, nil
}

func containsNUL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return true
		}
	}
	return false
}

func infoOf(h *header) Info {
	return Info{UUID: uuidString(h.UUID), Generation: h.Generation, Size: int64(h.Blocks) * BlockSize, BlockSize: BlockSize,
		Label: h.Label, Created: time.Unix(h.Created, 0).UTC(), Keyslots: keyslot.Fingerprints(h.Keyslots),
		StoreSize: newGeometry(h.Blocks, h.ExtentBlocks).storeSize()}
}

func uuidString(u [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// readHeader reads both header copies and returns the newest one that authenticates with one
// of releaseKeys, with the master key (the caller clears it) and working keys. A newer copy
// that does not authenticate is a commit torn by a crash (or tampering): it is logged and
// skipped.
func readHeader(ctx context.Context, s Store, releaseKeys [][]byte, log *slog.Logger) (*header, []byte, *volumeKeys, error) {
	if s.Size() < headerArea {
		return nil, nil, nil, formatErr(ErrNotVolume, "%s is %d bytes, smaller than a volume header", s, s.Size())
	}
	b := make([]byte, headerArea)
	if err := s.ReadAt(ctx, b, 0); err != nil {
		return nil, nil, nil, fmt.Errorf("read header of %s: %w", s, err)
	}
	cands, perr := parseCopies(b)
	if len(cands) == 0 {
		return nil, nil, nil, perr
	}
	var firstErr error
	for i, h := range cands {
		master, k, err := authenticate(h, releaseKeys)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if i > 0 {
			log.Warn("volume header copy did not authenticate; using the previous commit", "volume", uuidString(h.UUID),
				"skipped_generation", cands[0].Generation, "generation", h.Generation, "reason", firstErr.Error())
		}
		return h, master, k, nil
	}
	return nil, nil, nil, firstErr
}

// parseCopies decodes both header copies and returns the well-formed ones, newest first. A copy
// must sit at the offset its generation's parity names. With none, the error says why for each.
func parseCopies(b []byte) ([]*header, error) {
	var cands []*header
	var errs [2]error
	for c := range 2 {
		h, err := parseHeader(b[c*headerCopySize : (c+1)*headerCopySize])
		if err == nil && h.Generation%2 != uint64(c) {
			err = formatErr(ErrCorrupt, "generation %d in header copy %d (odd generations go to copy 1)", h.Generation, c)
		}
		if err != nil {
			errs[c] = err
			continue
		}
		cands = append(cands, h)
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].Generation > cands[j].Generation })
	if len(cands) > 0 {
		return cands, nil
	}
	kind := ErrCorrupt
	if errors.Is(errs[0], ErrNotVolume) && errors.Is(errs[1], ErrNotVolume) {
		kind = ErrNotVolume
	}
	return nil, formatErr(kind, "no usable header copy: copy 0: %v; copy 1: %v", errs[0], errs[1])
}

// Open authenticates the volume in s with the first of releaseKeys that opens a keyslot. A
// read-write open commits a header at once that reserves write counters (see docs/VOLUME.md,
// "Nonces"), so it raises the generation. The volume owns s from then on and closes it in Close.
func Open(ctx context.Context, s Store, releaseKeys [][]byte, o OpenOptions) (*Volume, error) {
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	h, master, k, err := readHeader(ctx, s, releaseKeys, log)
	if err != nil {
		return nil, err
	}
	clear(master)
	if h.Generation < o.MinGeneration {
		return nil, fmt.Errorf("%w: %s has generation %d, but at least %d is required (an older copy of the volume is being served)",
			ErrTooOld, s, h.Generation, o.MinGeneration)
	}
	geo := newGeometry(h.Blocks, h.ExtentBlocks)
	if s.Size() < geo.storeSize() {
		return nil, formatErr(ErrCorrupt, "%s is %d bytes, but a volume of %d blocks needs %d (truncated?)", s, s.Size(), h.Blocks, geo.storeSize())
	}
	v := &Volume{s: s, readOnly: o.ReadOnly, log: log, aead: k.aead, macKey: k.macKey, uuid: h.UUID, hdr: *h,
		geo: geo, nodes: make(map[nodeKey]*node), dirty: make(map[nodeKey]*node), root: h.Root, cacheNodes: o.CacheNodes,
		scratch: make(chan *scratch, maxSpareScratch), reported: make(map[reportedUnit]struct{}), sealer: newHeaderSealer(k.macKey)}
	if v.cacheNodes <= 0 {
		v.cacheNodes = DefaultCacheNodes
	}
	v.size.Store(int64(h.Blocks) * BlockSize)
	v.next.Store(h.CounterLimit)
	v.limit.Store(h.CounterLimit)
	if !o.ReadOnly {
		randomBytes(v.session[:])
		// Counters below the committed limit may have been used by a session that crashed:
		// start above it, and reserve durably before the first seal.
		if err := v.reserve(ctx, h.CounterLimit+1); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// Size is the volume size in bytes.
func (v *Volume) Size() int64 { return v.size.Load() }

// Info describes the volume as last committed.
func (v *Volume) Info() Info {
	v.hdrMu.Lock()
	defer v.hdrMu.Unlock()
	return infoOf(&v.hdr)
}

// Stats returns a snapshot of the counters.
func (v *Volume) Stats() Stats {
	return Stats{BlocksRead: v.blocksRead.Load(), BlocksWritten: v.blocksWritten.Load(), Commits: v.commits.Load(),
		Flushes: v.flushes.Load(), FlushFailures: v.flushFailures.Load(), FlushTime: time.Duration(v.flushNanos.Load()),
		IntegrityFailures: v.integrityFailures.Load()}
}

// fail marks the volume failed after a storage error in a write or commit: what is on storage
// is still a committed state, but this session can no longer tell which, so every later call
// fails until the volume is opened again.
func (v *Volume) fail(what string, err error) error {
	e := fmt.Errorf("%w: %s: %w; writes since the last successful flush may be lost: close the volume and open it again", ErrFailed, what, err)
	v.failed.CompareAndSwap(nil, &e)
	return *v.failed.Load()
}

func (v *Volume) usable() error {
	if v.closed.Load() {
		return fmt.Errorf("%w: the volume is closed", ErrFailed)
	}
	if e := v.failed.Load(); e != nil {
		return *e
	}
	return nil
}

func (v *Volume) checkRange(off int64, n int) error {
	if off < 0 || off > v.Size() || int64(n) > v.Size()-off {
		return fmt.Errorf("range %d+%d is outside the volume (%d bytes)", off, n, v.Size())
	}
	return nil
}

func (v *Volume) lockRange(b0, n uint64, write bool) {
	v.eachStripe(b0, n, func(m *sync.RWMutex) {
		if write {
			m.Lock()
		} else {
			m.RLock()
		}
	})
}

func (v *Volume) unlockRange(b0, n uint64, write bool) {
	v.eachStripe(b0, n, func(m *sync.RWMutex) {
		if write {
			m.Unlock()
		} else {
			m.RUnlock()
		}
	})
}

// eachStripe visits the stripes of blocks b0..b0+n-1 once each, in ascending stripe order, so
// that calls locking overlapping ranges cannot deadlock.
func (v *Volume) eachStripe(b0, n uint64, f func(*sync.RWMutex)) {
	if n >= nStripes {
		for i := range v.stripes {
			f(&v.stripes[i])
		}
		return
	}
	s0, end := b0%nStripes, b0%nStripes+n
	if end > nStripes {
		for i := uint64(0); i < end-nStripes; i++ {
			f(&v.stripes[i])
		}
		end = nStripes
	}
	for i := s0; i < end; i++ {
		f(&v.stripes[i])
	}
}

// ReadAt fills p with the volume's bytes from off. A block that does not verify fails the whole
// call with an *IntegrityError; nothing of it reaches p.
func (v *Volume) ReadAt(ctx context.Context, p []byte, off int64) error {
	if err := v.checkRange(off, len(p)); err != nil {
		return err
	}
	v.readMu.RLock()
	defer v.readMu.RUnlock()
	if err := v.usable(); err != nil {
		return err
	}
	sc := v.getScratch()
	defer v.putScratch(sc)
	if err := v.eachBatch(ctx, sc, p, off, false, v.readBlocks); err != nil {
		clear(p)
		return err
	}
	return nil
}

// eachBatch splits p, the bytes at off, into runs of at most maxBatch blocks and calls do for
// each, with the run's stripes locked (exclusively when write). It stops at the first error.
func (v *Volume) eachBatch(ctx context.Context, sc *scratch, p []byte, off int64, write bool,
	do func(ctx context.Context, sc *scratch, b0, n uint64, p []byte, skip int) error) error {
	for len(p) > 0 {
		b0, skip := uint64(off/BlockSize), int(off%BlockSize)
		n := min(maxBatch, uint64(skip+len(p)+BlockSize-1)/BlockSize)
		take := min(len(p), int(n)*BlockSize-skip)
		v.lockRange(b0, n, write)
		err := do(ctx, sc, b0, n, p[:take], skip)
		v.unlockRange(b0, n, write)
		if err != nil {
			return err
		}
		p, off = p[take:], off+int64(take)
	}
	return nil
}

// readBlocks decrypts blocks b0..b0+n-1 into p, which starts skip bytes into block b0 and may
// end inside the last block. The caller holds the blocks' stripes.
func (v *Volume) readBlocks(ctx context.Context, sc *scratch, b0, n uint64, p []byte, skip int) error {
	if err := v.entries(ctx, b0, n, sc.ents[:n], nil, nil); err != nil {
		return err
	}
	for k := uint64(0); k < n; {
		e := &sc.ents[k]
		if e.counter == 0 {
			v.deliver(p, skip, k, nil)
			k++
			continue
		}
		start := v.geo.dataOffset(b0+k, e.slot)
		j := k + 1
		for j < n && sc.ents[j].counter != 0 && v.geo.dataOffset(b0+j, sc.ents[j].slot) == start+int64(j-k)*BlockSize {
			j++
		}
		if err := v.s.ReadAt(ctx, sc.buf[:(j-k)*BlockSize], start); err != nil {
			return fmt.Errorf("read data blocks %d..%d from %s: %w", b0+k, b0+j-1, v.s, err)
		}
		for m := k; m < j; m++ {
			ct := sc.buf[(m-k)*BlockSize : (m-k+1)*BlockSize]
			out, direct := v.target(p, skip, m, sc)
			if err := v.openUnit(sc, out, ct, 0, b0+m, &sc.ents[m], v.geo.dataOffset(b0+m, sc.ents[m].slot)); err != nil {
				return err
			}
			if !direct {
				v.deliver(p, skip, m, sc.edge[:BlockSize])
			}
		}
		v.blocksRead.Add(j - k)
		k = j
	}
	return nil
}

// target is where block k of a read decrypts to: straight into p when p holds all of it, else
// into sc.edge (then deliver copies the part p wants).
func (v *Volume) target(p []byte, skip int, k uint64, sc *scratch) (out []byte, direct bool) {
	lo := int(k)*BlockSize - skip
	if lo >= 0 && lo+BlockSize <= len(p) {
		return p[lo : lo+BlockSize], true
	}
	return sc.edge[:BlockSize], false
}

// deliver copies the part of block k's plaintext (nil: zeros) that p wants.
func (v *Volume) deliver(p []byte, skip int, k uint64, plain []byte) {
	lo, hi := int(k)*BlockSize-skip, int(k+1)*BlockSize-skip
	src := 0
	if lo < 0 {
		src, lo = -lo, 0
	}
	hi = min(hi, len(p))
	if plain == nil {
		clear(p[lo:hi])
		return
	}
	copy(p[lo:hi], plain[src:])
}

// setNonceAAD prepares the nonce (counter ‖ session id) and associated data (UUID ‖ level ‖
// index) of the unit e seals or opens.
func (v *Volume) setNonceAAD(sc *scratch, e *entry, level int, index uint64) {
	binary.LittleEndian.PutUint64(sc.nonce[:8], e.counter)
	copy(sc.nonce[8:], e.session[:])
	copy(sc.aad[:16], v.uuid[:])
	sc.aad[16] = byte(level)
	binary.LittleEndian.PutUint64(sc.aad[17:], index)
}

// openUnit authenticates and decrypts one sealed unit ct (BlockSize bytes) whose entry is e
// into out (BlockSize bytes). Failure is an *IntegrityError, logged and counted, and out is
// cleared.
func (v *Volume) openUnit(sc *scratch, out, ct []byte, level int, index uint64, e *entry, off int64) error {
	copy(sc.unit, ct)
	copy(sc.unit[BlockSize:], e.tag[:])
	v.setNonceAAD(sc, e, level, index)
	if _, err := v.aead.Open(out[:0], sc.nonce[:], sc.unit, sc.aad[:]); err != nil {
		clear(out)
		return v.integrityFailure(&IntegrityError{Level: level, Index: index, Offset: off,
			Detail: "authentication failed: the block was modified, moved, replaced by an older version, or comes from another volume"}, e.counter)
	}
	return nil
}

// integrityFailure counts a unit that failed to authenticate and logs it the first time: the
// kernel reads a bad block several times (readahead, then page by page, then the
// filesystem's retries), and each read fails with EIO, but the log gets one line per unit
// (per sealed version of it: a unit written again and failing again is logged again). The set
// of reported units is bounded; past it, one line says that further units are not logged.
func (v *Volume) integrityFailure(e *IntegrityError, counter uint64) error {
	v.integrityFailures.Add(1)
	e.logged = true
	key := reportedUnit{level: e.Level, index: e.Index, counter: counter}
	v.reportedMu.Lock()
	_, seen := v.reported[key]
	full := !seen && len(v.reported) >= maxReported
	if !seen && !full {
		v.reported[key] = struct{}{}
	}
	first := full && !v.reportedFull
	v.reportedFull = v.reportedFull || full
	v.reportedMu.Unlock()
	switch {
	case !seen && !full:
		v.log.Error("volume integrity check failed", "volume", uuidString(v.uuid), "error", e.Error())
	case first:
		v.log.Error("volume integrity check failed in more units than are logged; the metrics count every failure",
			"volume", uuidString(v.uuid), "logged_units", maxReported, "error", e.Error())
	}
	return e
}

// maxReported bounds the units whose integrity failure has been logged (about 40 bytes each);
// a variable so that a test can lower it.
var maxReported = 4096

// reportedUnit names one sealed version of a unit: its level, index and write counter.
type reportedUnit struct {
	level   int
	index   uint64
	counter uint64
}

// sealUnit encrypts plain (BlockSize bytes) into dst[:BlockSize+tagSize] with a fresh counter
// and this session's id, and returns the unit's entry.
func (v *Volume) sealUnit(sc *scratch, dst, plain []byte, counter uint64, slot uint8, level int, index uint64) entry {
	e := entry{counter: counter, slot: slot, session: v.session}
	v.setNonceAAD(sc, &e, level, index)
	v.aead.Seal(dst[:0], sc.nonce[:], plain, sc.aad[:])
	copy(e.tag[:], dst[BlockSize:BlockSize+tagSize])
	return e
}

// batchLeaves are the leaves of one batch of blocks, the first at index 0.
type batchLeaves [maxBatch/fanout + 2]*node

// entries copies the entries of blocks b0..b0+n-1 into ents, loading their leaves. For a write
// (slots non-nil) it keeps the leaves in the cache, returns them in leaves and fills in the
// slot each block's next write goes to: the shadow of its committed slot (the same slot again
// if it was already written since the last commit).
func (v *Volume) entries(ctx context.Context, b0, n uint64, ents []entry, slots []uint8, leaves *batchLeaves) error {
	var local batchLeaves
	if leaves == nil {
		leaves = &local
	}
	first := b0 / fanout
	for l := first; l <= (b0+n-1)/fanout; l++ {
		nd, err := v.node(ctx, 1, l, slots != nil)
		if err != nil {
			return err
		}
		leaves[l-first] = nd
	}
	v.metaMu.Lock()
	defer v.metaMu.Unlock()
	for k := uint64(0); k < n; k++ {
		b := b0 + k
		nd, i := leaves[b/fanout-first], b%fanout
		ents[k] = nd.e[i]
		if slots != nil {
			slots[k] = shadowSlot(nd, i)
		}
	}
	return nil
}

// shadowSlot is the slot the next seal of child i of nd goes to.
func shadowSlot(nd *node, i uint64) uint8 {
	if nd.isChanged(i) {
		return nd.e[i].slot
	}
	return 1 - nd.e[i].slot
}

// node returns tree node (level, index), loading it and its ancestors as needed. A node about
// to change (keep) is always cached, so that every change goes to the one copy in memory;
// others are cached while the cache has room. Clean nodes leave the cache only in evict, when
// no read or write is in progress.
func (v *Volume) node(ctx context.Context, level int, index uint64, keep bool) (*node, error) {
	key := nodeKey{level, index}
	v.metaMu.Lock()
	if nd := v.nodes[key]; nd != nil {
		v.metaMu.Unlock()
		return nd, nil
	}
	var e entry
	if level == v.geo.levels {
		e = v.root
		v.metaMu.Unlock()
	} else {
		v.metaMu.Unlock()
		parent, err := v.node(ctx, level+1, index/fanout, false)
		if err != nil {
			return nil, err
		}
		v.metaMu.Lock()
		e = parent.e[index%fanout]
		v.metaMu.Unlock()
	}
	nd, err := v.loadNode(ctx, key, &e)
	if err != nil {
		return nil, err
	}
	v.metaMu.Lock()
	defer v.metaMu.Unlock()
	if other := v.nodes[key]; other != nil {
		return other, nil // loaded meanwhile by another call
	}
	if keep || len(v.nodes) < v.cacheNodes {
		v.nodes[key] = nd
	}
	return nd, nil
}

// loadNode reads and opens the node that e locates (a zero node when e was never written).
func (v *Volume) loadNode(ctx context.Context, key nodeKey, e *entry) (*node, error) {
	var nd *node
	v.metaMu.Lock()
	if n := len(v.spareNodes); n > 0 {
		nd, v.spareNodes = v.spareNodes[n-1], v.spareNodes[:n-1]
	}
	v.metaMu.Unlock()
	if nd == nil {
		nd = new(node)
	}
	*nd = node{key: key}
	if e.counter == 0 {
		return nd, nil
	}
	sc := v.getScratch()
	defer v.putScratch(sc)
	off := v.geo.nodeOffset(key.level, key.index, e.slot)
	ct := sc.buf[:BlockSize]
	if err := v.s.ReadAt(ctx, ct, off); err != nil {
		return nil, fmt.Errorf("read tree node level %d index %d from %s: %w", key.level, key.index, v.s, err)
	}
	if err := v.openUnit(sc, sc.plain, ct, key.level, key.index, e, off); err != nil {
		return nil, err
	}
	if err := parseNode(nd, sc.plain); err != nil {
		return nil, v.integrityFailure(&IntegrityError{Level: key.level, Index: key.index, Offset: off,
			Detail: "authenticated but malformed (written by a holder of the key, not by encfs): " + err.Error()}, e.counter)
	}
	return nd, nil
}

// parseNode decodes the entries of a node's plaintext.
func parseNode(nd *node, plain []byte) error {
	for i := range fanout {
		e, err := parseEntry(plain[i*entrySize:])
		if err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
		nd.e[i] = e
	}
	return nil
}

func marshalNode(nd *node, plain []byte) {
	for i := range fanout {
		nd.e[i].put(plain[i*entrySize:])
	}
}

// counters reserves n consecutive write counters and returns the first. Counters come from
// the range a durable header reserved; past it, one more header commit extends it first.
func (v *Volume) counters(ctx context.Context, n uint64) (uint64, error) {
	c := v.next.Add(n) - n
	if c+n >= MaxCounter-2*reserveStep {
		return 0, fmt.Errorf("the volume has used its 2^56 write counters: copy its contents to a new volume")
	}
	if c+n > v.limit.Load() {
		if err := v.reserve(ctx, c+n); err != nil {
			return 0, err
		}
	}
	return c, nil
}

// reserve commits a header that reserves counters up to at least need (plus reserveStep): the
// last committed state, with a larger limit and the next generation.
func (v *Volume) reserve(ctx context.Context, need uint64) error {
	v.hdrMu.Lock()
	defer v.hdrMu.Unlock()
	if need <= v.limit.Load() {
		return nil
	}
	h := v.hdr
	h.Generation++
	h.CounterLimit = need + reserveStep
	if err := v.writeHeader(ctx, &h); err != nil {
		// The committed copy is untouched (the other offset); nothing to undo.
		return fmt.Errorf("reserve write counters: %w", err)
	}
	v.hdr = h
	v.limit.Store(h.CounterLimit)
	return nil
}

// writeHeader writes h (sealed) into the copy its generation names and makes it durable.
// The caller holds hdrMu.
func (v *Volume) writeHeader(ctx context.Context, h *header) error {
	if err := v.s.WriteAt(ctx, v.sealer.seal(h), int64(h.Generation%2)*headerCopySize); err != nil {
		return fmt.Errorf("write header copy %d to %s: %w", h.Generation%2, v.s, err)
	}
	if err := v.s.Flush(ctx); err != nil {
		return fmt.Errorf("flush header to %s: %w", v.s, err)
	}
	v.commits.Add(1)
	return nil
}

// WriteAt writes p at off. The write reaches storage before WriteAt returns but is part of the
// volume only after the next Flush; a crash before it leaves the block as last committed.
func (v *Volume) WriteAt(ctx context.Context, p []byte, off int64) error {
	if v.readOnly {
		return ErrReadOnly
	}
	if err := v.checkRange(off, len(p)); err != nil {
		return err
	}
	v.flushMu.RLock()
	defer v.flushMu.RUnlock()
	if err := v.usable(); err != nil {
		return err
	}
	sc := v.getScratch()
	defer v.putScratch(sc)
	return v.eachBatch(ctx, sc, p, off, true, v.writeBlocks)
}

// writeBlocks seals blocks b0..b0+n-1 from p (starting skip bytes into b0, perhaps ending
// inside the last block) into their shadow slots and records their new entries. The caller
// holds the blocks' stripes for writing.
func (v *Volume) writeBlocks(ctx context.Context, sc *scratch, b0, n uint64, p []byte, skip int) error {
	// Partial blocks keep the rest of their old content.
	headPartial := skip > 0 || len(p) < BlockSize
	tailPartial := n > 1 && (skip+len(p))%BlockSize != 0
	if headPartial {
		if err := v.readBlocks(ctx, sc, b0, 1, sc.edge[:BlockSize], 0); err != nil {
			return err
		}
		copy(sc.edge[skip:BlockSize], p)
	}
	if tailPartial {
		if err := v.readBlocks(ctx, sc, b0+n-1, 1, sc.edge[BlockSize:], 0); err != nil {
			return err
		}
		copy(sc.edge[BlockSize:], p[int(n-1)*BlockSize-skip:])
	}
	var leaves batchLeaves
	if err := v.entries(ctx, b0, n, sc.ents[:n], sc.slots[:n], &leaves); err != nil {
		return err
	}
	c0, err := v.counters(ctx, n)
	if err != nil {
		return err
	}
	for k := uint64(0); k < n; k++ {
		var plain []byte
		switch {
		case k == 0 && headPartial:
			plain = sc.edge[:BlockSize]
		case k == n-1 && tailPartial:
			plain = sc.edge[BlockSize:]
		default:
			lo := int(k)*BlockSize - skip
			plain = p[lo : lo+BlockSize]
		}
		sc.ents[k] = v.sealUnit(sc, sc.buf[k*BlockSize:], plain, c0+k, sc.slots[k], 0, b0+k)
	}
	for k := uint64(0); k < n; {
		start := v.geo.dataOffset(b0+k, sc.slots[k])
		j := k + 1
		for j < n && v.geo.dataOffset(b0+j, sc.slots[j]) == start+int64(j-k)*BlockSize {
			j++
		}
		// Not cancelled half way: a torn shadow slot would fail the volume (see fail).
		if err := v.s.WriteAt(storeCtx, sc.buf[k*BlockSize:j*BlockSize], start); err != nil {
			return v.fail(fmt.Sprintf("write data blocks %d..%d to %s", b0+k, b0+j-1, v.s), err)
		}
		k = j
	}
	v.metaMu.Lock()
	for k := uint64(0); k < n; k++ {
		b := b0 + k
		nd := leaves[b/fanout-b0/fanout]
		nd.e[b%fanout] = sc.ents[k]
		nd.setChanged(b % fanout)
		v.dirty[nd.key] = nd
	}
	v.metaMu.Unlock()
	v.blocksWritten.Add(n)
	v.unsynced.Add(n)
	return nil
}

// Flush commits every write that completed before the call: it seals the changed tree nodes
// into their shadow slots, makes them durable, then writes the header copy of the next
// generation and makes it durable. A Flush with nothing written since the last one does
// nothing.
func (v *Volume) Flush(ctx context.Context) error {
	if v.readOnly {
		return nil
	}
	// Writes wait while a commit runs, and most of a commit's time is the store flush that
	// makes the blocks written since the last commit durable. When there are many, the store
	// is flushed first, while writes go on, so that the commit's own flush has little left.
	var presyncErr error
	if v.unsynced.Load() >= presyncBlocks && v.usable() == nil {
		v.unsynced.Store(0)
		presyncErr = v.s.Flush(storeCtx)
	}
	v.flushMu.Lock()
	defer v.flushMu.Unlock()
	if err := v.usable(); err != nil {
		return err
	}
	if presyncErr != nil {
		// Written blocks may be lost (a file's failed fdatasync may drop its dirty pages), and
		// a later store flush that succeeds would not say so: no commit may reference them.
		v.flushes.Add(1)
		v.flushFailures.Add(1)
		return v.fail("flush "+v.s.String(), presyncErr)
	}
	if len(v.dirty) == 0 && !v.rootChanged {
		return nil
	}
	start := time.Now()
	err := v.commit(ctx)
	v.flushNanos.Add(uint64(time.Since(start)))
	v.flushes.Add(1)
	if err != nil {
		v.flushFailures.Add(1)
	}
	return err
}

// commit is Flush's work; the caller holds flushMu exclusively. Any storage error fails the
// volume: the header on storage is then the last committed one or this one, and nothing
// else may be written over the slots either references.
func (v *Volume) commit(ctx context.Context) error {
	// A commit, once started, runs to its end or to a storage error: a cancelled FUSE request
	// must not fail the volume.
	ctx = storeCtx
	v.unsynced.Store(0)
	sc := v.getScratch()
	defer v.putScratch(sc)
	sealed := v.sealed[:0]
	defer func() {
		clear(sealed) // hold no node past the commit
		clear(v.todo[:cap(v.todo)])
		v.sealed = sealed[:0]
	}()
	for level := 1; level <= v.geo.levels; level++ {
		todo := v.todo[:0]
		for key, nd := range v.dirty {
			if key.level == level {
				todo = append(todo, nd)
			}
		}
		slices.SortFunc(todo, func(a, b *node) int { return cmp.Compare(a.key.index, b.key.index) })
		v.todo = todo[:0] // reused by the next level; todo stays valid until then
		if len(todo) == 0 {
			continue
		}
		c0, err := v.counters(ctx, uint64(len(todo)))
		if err != nil {
			return v.fail("commit", err)
		}
		for i, nd := range todo {
			var parent *node
			var slot uint8
			if level == v.geo.levels {
				slot = 1 - v.root.slot
				if v.rootChanged {
					slot = v.root.slot
				}
			} else {
				if parent, err = v.node(ctx, level+1, nd.key.index/fanout, true); err != nil {
					return v.fail("commit", err)
				}
				slot = shadowSlot(parent, nd.key.index%fanout)
			}
			marshalNode(nd, sc.plain)
			e := v.sealUnit(sc, sc.buf, sc.plain, c0+uint64(i), slot, level, nd.key.index)
			if err := v.s.WriteAt(ctx, sc.buf[:BlockSize], v.geo.nodeOffset(level, nd.key.index, slot)); err != nil {
				return v.fail(fmt.Sprintf("commit: write tree node level %d index %d to %s", level, nd.key.index, v.s), err)
			}
			v.metaMu.Lock()
			if parent == nil {
				v.root, v.rootChanged = e, true
			} else {
				parent.e[nd.key.index%fanout] = e
				parent.setChanged(nd.key.index % fanout)
				v.dirty[parent.key] = parent
			}
			v.metaMu.Unlock()
			sealed = append(sealed, nd)
		}
	}
	// Every sealed unit is durable before the header that references them.
	if err := v.s.Flush(ctx); err != nil {
		return v.fail("commit: flush "+v.s.String(), err)
	}
	v.hdrMu.Lock()
	h := v.hdr
	h.Generation++
	h.Root = v.root
	h.Blocks = v.geo.blocks
	if next := v.next.Load(); v.limit.Load()-min(next, v.limit.Load()) < reserveStep/2 {
		h.CounterLimit = max(h.CounterLimit, next+reserveStep)
	}
	err := v.writeHeader(ctx, &h)
	if err == nil {
		v.hdr = h
		v.limit.Store(h.CounterLimit)
	}
	v.hdrMu.Unlock()
	if err != nil {
		return v.fail("commit", err)
	}
	v.metaMu.Lock()
	for _, nd := range sealed {
		nd.changed = [fanout / 64]uint64{}
		delete(v.dirty, nd.key)
	}
	v.rootChanged = false
	v.metaMu.Unlock()
	v.evict()
	return nil
}

// evict shrinks the node cache to half its bound when it is over, leaves first. The caller
// holds flushMu exclusively and evict takes readMu, so no read or write holds a node; nodes
// changed since the last commit stay.
func (v *Volume) evict() {
	v.metaMu.Lock()
	over := len(v.nodes) > v.cacheNodes
	v.metaMu.Unlock()
	if !over {
		return
	}
	v.readMu.Lock()
	defer v.readMu.Unlock()
	v.metaMu.Lock()
	defer v.metaMu.Unlock()
	for level := 1; level <= v.geo.levels && len(v.nodes) > v.cacheNodes/2; level++ {
		for key, nd := range v.nodes {
			if len(v.nodes) <= v.cacheNodes/2 {
				break
			}
			if _, dirty := v.dirty[key]; key.level == level && !dirty {
				v.spareNodes = append(v.spareNodes, nd)
				delete(v.nodes, key)
			}
		}
	}
}

// Close commits what was written (unless read-only) and closes the store.
func (v *Volume) Close(ctx context.Context) error {
	var err error
	if !v.readOnly {
		err = v.Flush(ctx)
	}
	v.flushMu.Lock()
	v.readMu.Lock()
	already := v.closed.Swap(true)
	v.readMu.Unlock()
	v.flushMu.Unlock()
	if already {
		return err
	}
	if cerr := v.s.Close(); err == nil {
		err = cerr
	}
	return err
}

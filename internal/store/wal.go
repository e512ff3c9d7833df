// Package store keeps the embedded registry durable.
//
// Why a write-ahead log and not bbolt: the registry already holds its whole
// state in memory (every read is served from there), so the disk only has to
// answer "what was acknowledged" after a crash. An append-only log does that
// with sequential writes and group commit: every writer that arrives while
// an fsync is in flight shares the next one, so throughput grows with
// concurrency instead of paying one B+tree transaction and fsync per write.
// A periodic snapshot bounds replay time and disk use. Records are framed
// with a length and a CRC-32C, so a write torn by kill -9 or power loss is
// detected and cut off at the tail on the next start.
//
// Layout of a data directory:
//
//	wal-0000000000000001.log   segments, appended in order
//	snap-0000000000000002.dat  state as of the start of segment 2
//
// Replay reads the newest snapshot, then every segment with a sequence number
// at or above it.
package store

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

const (
	frameHeader  = 8
	maxFrameSize = 64 << 20
)

// ErrFailed is returned once a write or fsync has failed: the log can no
// longer promise durability, so it accepts nothing more.
var ErrFailed = errors.New("store: write-ahead log failed")

// WAL is a segmented write-ahead log with group commit. It is safe for
// concurrent use; Append calls are recorded in the order they are made.
type WAL struct {
	dir string

	mu      sync.Mutex
	cond    *sync.Cond
	queue   []entry
	cur     *Batch // batch the next Append joins
	seq     uint64 // segment being appended to (as seen by Append)
	err     error
	closed  bool
	written int64 // bytes appended since the last snapshot

	file    *os.File // owned by the flusher
	flushed chan struct{}
	epoch   string
}

type entry struct {
	data   []byte
	after  func()
	rotate uint64 // if non-zero: switch to this segment before later entries
	batch  *Batch
}

// Batch is a group of appends made durable by one fsync.
type Batch struct {
	done chan struct{}
	err  error
}

// Wait blocks until the batch is durable and returns the write error, if any.
func (b *Batch) Wait() error {
	<-b.done
	return b.err
}

// Open opens (creating if needed) the log in dir. Call Replay before Append.
func Open(dir string) (*WAL, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	w := &WAL{dir: dir, flushed: make(chan struct{})}
	w.cond = sync.NewCond(&w.mu)
	epoch, err := loadEpoch(dir)
	if err != nil {
		return nil, err
	}
	w.epoch = epoch
	return w, nil
}

// Epoch names this data directory's history: it is made once, when the
// directory is first used, and never changes. Revisions compare only
// within one epoch.
func (w *WAL) Epoch() string { return w.epoch }

func loadEpoch(dir string) (string, error) {
	path := filepath.Join(dir, "epoch")
	b, err := os.ReadFile(path)
	if err == nil && len(bytes.TrimSpace(b)) > 0 {
		return string(bytes.TrimSpace(b)), nil
	}
	if err != nil && !os.IsNotExist(err) {
		return "", fmt.Errorf("store: %w", err)
	}
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", fmt.Errorf("store: %w", err)
	}
	epoch := hex.EncodeToString(r[:])
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(epoch+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("store: %w", err)
	}
	f, err := os.Open(tmp)
	if err == nil {
		err = f.Sync()
		f.Close()
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return "", fmt.Errorf("store: writing epoch: %w", err)
	}
	return epoch, nil
}

func segName(seq uint64) string  { return fmt.Sprintf("wal-%016d.log", seq) }
func snapName(seq uint64) string { return fmt.Sprintf("snap-%016d.dat", seq) }

func (w *WAL) list(prefix, suffix string) ([]uint64, error) {
	ents, err := os.ReadDir(w.dir)
	if err != nil {
		return nil, err
	}
	var out []uint64
	for _, e := range ents {
		n := e.Name()
		if !strings.HasPrefix(n, prefix) || !strings.HasSuffix(n, suffix) {
			continue
		}
		var seq uint64
		if _, err := fmt.Sscanf(strings.TrimSuffix(strings.TrimPrefix(n, prefix), suffix), "%d", &seq); err == nil && seq > 0 {
			out = append(out, seq)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// Replay feeds the newest snapshot (if any) to snap and then every record
// after it, in order, to rec. A torn record at the end of the last segment
// is cut off. After Replay the log appends to a fresh segment.
func (w *WAL) Replay(snap func(io.Reader) error, rec func([]byte) error) error {
	snaps, err := w.list("snap-", ".dat")
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	var from uint64
	if len(snaps) > 0 {
		from = snaps[len(snaps)-1]
		f, err := os.Open(filepath.Join(w.dir, snapName(from)))
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		err = snap(bufio.NewReaderSize(f, 1<<20))
		f.Close()
		if err != nil {
			return fmt.Errorf("store: snapshot %s: %w", snapName(from), err)
		}
	}
	segs, err := w.list("wal-", ".log")
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	last := from
	for i, seq := range segs {
		if seq > last {
			last = seq
		}
		if seq < from {
			continue
		}
		if err := w.replaySegment(seq, i == len(segs)-1, rec); err != nil {
			return err
		}
	}
	return w.startSegment(last + 1)
}

func (w *WAL) replaySegment(seq uint64, isLast bool, rec func([]byte) error) error {
	path := filepath.Join(w.dir, segName(seq))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	var off int64
	var hdr [frameHeader]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if err == io.EOF {
				return nil
			}
			return w.torn(f, path, off, isLast, err)
		}
		n := binary.LittleEndian.Uint32(hdr[0:4])
		sum := binary.LittleEndian.Uint32(hdr[4:8])
		if n > maxFrameSize {
			return w.torn(f, path, off, isLast, fmt.Errorf("frame of %d bytes", n))
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(r, data); err != nil {
			return w.torn(f, path, off, isLast, err)
		}
		if crc32.Checksum(data, crcTable) != sum {
			return w.torn(f, path, off, isLast, errors.New("checksum mismatch"))
		}
		if err := rec(data); err != nil {
			return fmt.Errorf("store: %s at offset %d: %w", segName(seq), off, err)
		}
		off += frameHeader + int64(n)
	}
}

// torn handles a bad frame: at the tail of the newest segment it is the
// unacknowledged write a crash interrupted, and is cut off; anywhere else it
// is corruption, and replay stops with an error rather than drop data.
func (w *WAL) torn(f *os.File, path string, off int64, isLast bool, cause error) error {
	if !isLast {
		return fmt.Errorf("store: %s corrupt at offset %d: %v", filepath.Base(path), off, cause)
	}
	if err := f.Truncate(off); err != nil {
		return fmt.Errorf("store: truncating torn tail of %s: %w", filepath.Base(path), err)
	}
	return f.Sync()
}

func (w *WAL) startSegment(seq uint64) error {
	f, err := os.OpenFile(filepath.Join(w.dir, segName(seq)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if err := syncDir(w.dir); err != nil {
		f.Close()
		return err
	}
	w.mu.Lock()
	w.file = f
	w.seq = seq
	w.mu.Unlock()
	go w.flusher()
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("store: fsync %s: %w", dir, err)
	}
	return nil
}

// Append queues data to be written. after (may be nil) runs on the flusher
// goroutine once the record is durable, in append order, before the
// returned batch is released. Append never waits for the disk.
func (w *WAL) Append(data []byte, after func()) *Batch {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil || w.closed {
		b := &Batch{done: make(chan struct{}), err: w.err}
		if w.closed {
			b.err = ErrFailed
		}
		close(b.done)
		return b
	}
	if w.cur == nil {
		w.cur = &Batch{done: make(chan struct{})}
	}
	w.queue = append(w.queue, entry{data: data, after: after, batch: w.cur})
	w.written += int64(len(data)) + frameHeader
	w.cond.Signal()
	return w.cur
}

// Written returns the bytes appended since the last Rotate.
func (w *WAL) Written() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.written
}

// Rotate makes later appends go to a new segment and returns its number.
// The caller must hold whatever lock orders its appends, so that the state
// it snapshots next is exactly the state before the new segment.
func (w *WAL) Rotate() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seq++
	if w.cur == nil {
		w.cur = &Batch{done: make(chan struct{})}
	}
	w.queue = append(w.queue, entry{rotate: w.seq, batch: w.cur})
	w.written = 0
	w.cond.Signal()
	return w.seq
}

// WriteSnapshot stores the state as of the start of segment seq (see
// Rotate) and removes the segments and snapshots it makes redundant.
func (w *WAL) WriteSnapshot(seq uint64, write func(io.Writer) error) error {
	tmp := filepath.Join(w.dir, snapName(seq)+".tmp")
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(w.dir, snapName(seq)))
	}
	if err == nil {
		err = syncDir(w.dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("store: snapshot: %w", err)
	}
	segs, _ := w.list("wal-", ".log")
	for _, s := range segs {
		if s < seq {
			os.Remove(filepath.Join(w.dir, segName(s)))
		}
	}
	snaps, _ := w.list("snap-", ".dat")
	for _, s := range snaps {
		if s < seq {
			os.Remove(filepath.Join(w.dir, snapName(s)))
		}
	}
	return nil
}

func (w *WAL) flusher() {
	defer close(w.flushed)
	var buf []byte
	var spare []entry
	for {
		w.mu.Lock()
		for len(w.queue) == 0 && !w.closed {
			w.cond.Wait()
		}
		if len(w.queue) == 0 && w.closed {
			w.mu.Unlock()
			w.file.Close()
			return
		}
		q := w.queue
		w.queue = spare[:0]
		w.cur = nil
		w.mu.Unlock()

		err := w.writeBatch(q, &buf)
		if err != nil {
			w.mu.Lock()
			if w.err == nil {
				w.err = fmt.Errorf("%w: %v", ErrFailed, err)
			}
			err = w.err
			w.mu.Unlock()
		}
		if err == nil {
			for i := range q {
				if q[i].after != nil {
					q[i].after()
				}
			}
		}
		var last *Batch
		for i := range q {
			if b := q[i].batch; b != last {
				b.err = err
				close(b.done)
				last = b
			}
			q[i] = entry{}
		}
		spare = q
	}
}

// writeBatch writes entries with one write and one fsync per segment touched.
func (w *WAL) writeBatch(q []entry, buf *[]byte) error {
	b := (*buf)[:0]
	defer func() { *buf = b[:0] }()
	flush := func() error {
		if len(b) == 0 {
			return nil
		}
		if _, err := w.file.Write(b); err != nil {
			return err
		}
		b = b[:0]
		return syscall.Fdatasync(int(w.file.Fd()))
	}
	for _, e := range q {
		if e.rotate != 0 {
			if err := flush(); err != nil {
				return err
			}
			if err := w.file.Close(); err != nil {
				return err
			}
			f, err := os.OpenFile(filepath.Join(w.dir, segName(e.rotate)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			if err != nil {
				return err
			}
			w.file = f
			if err := syncDir(w.dir); err != nil {
				return err
			}
			continue
		}
		var hdr [frameHeader]byte
		binary.LittleEndian.PutUint32(hdr[0:4], uint32(len(e.data)))
		binary.LittleEndian.PutUint32(hdr[4:8], crc32.Checksum(e.data, crcTable))
		b = append(b, hdr[:]...)
		b = append(b, e.data...)
	}
	return flush()
}

// Close flushes what was appended and stops the log.
func (w *WAL) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	started := w.file != nil
	w.cond.Broadcast()
	err := w.err
	w.mu.Unlock()
	if started {
		<-w.flushed
	}
	return err
}

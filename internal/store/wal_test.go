package store

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func replayAll(t *testing.T, w *WAL) (snap string, recs []string) {
	t.Helper()
	err := w.Replay(func(r io.Reader) error {
		b, err := io.ReadAll(r)
		snap = string(b)
		return err
	}, func(b []byte) error {
		recs = append(recs, string(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap, recs
}

func TestAppendReplay(t *testing.T) {
	dir := t.TempDir()
	w, _ := Open(dir)
	replayAll(t, w)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var order []int
	for i := 0; i < 200; i++ {
		b := w.Append([]byte(fmt.Sprintf("rec-%03d", i)), func() {
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
		})
		wg.Add(1)
		go func() { defer wg.Done(); b.Wait() }()
	}
	wg.Wait()
	for i, v := range order {
		if v != i {
			t.Fatalf("after-callbacks out of order at %d: %d", i, v)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w2, _ := Open(dir)
	_, recs := replayAll(t, w2)
	defer w2.Close()
	if len(recs) != 200 || recs[0] != "rec-000" || recs[199] != "rec-199" {
		t.Fatalf("replayed %d records", len(recs))
	}
}

func TestTornTailIsCutOff(t *testing.T) {
	dir := t.TempDir()
	w, _ := Open(dir)
	replayAll(t, w)
	for i := 0; i < 3; i++ {
		w.Append([]byte(fmt.Sprintf("r%d", i)), nil).Wait()
	}
	w.Close()
	// Simulate a crash in the middle of writing a fourth record.
	segs, _ := filepath.Glob(filepath.Join(dir, "wal-*.log"))
	last := segs[len(segs)-1]
	f, _ := os.OpenFile(last, os.O_APPEND|os.O_WRONLY, 0)
	f.Write([]byte{10, 0, 0, 0, 1, 2, 3, 4, 'p', 'a'})
	f.Close()

	w2, _ := Open(dir)
	_, recs := replayAll(t, w2)
	if strings.Join(recs, ",") != "r0,r1,r2" {
		t.Fatalf("replayed %v", recs)
	}
	w2.Append([]byte("r3"), nil).Wait()
	w2.Close()
	w3, _ := Open(dir)
	_, recs = replayAll(t, w3)
	w3.Close()
	if strings.Join(recs, ",") != "r0,r1,r2,r3" {
		t.Fatalf("after truncation and a new write: %v", recs)
	}
}

func TestCorruptionBeforeTailFails(t *testing.T) {
	dir := t.TempDir()
	w, _ := Open(dir)
	replayAll(t, w)
	w.Append([]byte("first"), nil).Wait()
	w.Close()
	w2, _ := Open(dir)
	replayAll(t, w2)
	w2.Append([]byte("second"), nil).Wait()
	w2.Close()
	// Damage the older segment: it is not the tail, so this is corruption.
	segs, _ := filepath.Glob(filepath.Join(dir, "wal-*.log"))
	b, _ := os.ReadFile(segs[0])
	b[len(b)-1] ^= 0xff
	os.WriteFile(segs[0], b, 0o644)
	w3, _ := Open(dir)
	err := w3.Replay(func(io.Reader) error { return nil }, func([]byte) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("corruption in an older segment: err = %v", err)
	}
}

func TestSnapshotDropsOldSegments(t *testing.T) {
	dir := t.TempDir()
	w, _ := Open(dir)
	replayAll(t, w)
	w.Append([]byte("a"), nil).Wait()
	seq := w.Rotate()
	w.Append([]byte("b"), nil).Wait()
	if err := w.WriteSnapshot(seq, func(wr io.Writer) error { _, err := io.WriteString(wr, "STATE(a)"); return err }); err != nil {
		t.Fatal(err)
	}
	w.Close()
	w2, _ := Open(dir)
	snap, recs := replayAll(t, w2)
	w2.Close()
	if snap != "STATE(a)" || strings.Join(recs, ",") != "b" {
		t.Fatalf("snap %q recs %v", snap, recs)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "wal-*.log"))
	for _, s := range segs {
		if strings.HasSuffix(s, fmt.Sprintf("%016d.log", seq-1)) {
			t.Fatalf("segment before the snapshot kept: %s", s)
		}
	}
}

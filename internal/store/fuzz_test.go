package store

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzReplay: whatever bytes a crash or a disk leaves in the newest
// segment, replay neither panics nor hands out a record whose checksum did
// not match; it cuts the damaged tail and the log accepts writes again.
func FuzzReplay(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{5, 0, 0, 0, 0, 0, 0, 0, 'h', 'e'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, segName(1)), data, 0o644); err != nil {
			t.Fatal(err)
		}
		w, _ := Open(dir)
		err := w.Replay(func(io.Reader) error { return nil }, func(b []byte) error { return nil })
		if err != nil {
			return
		}
		if err := w.Append([]byte("after"), nil).Wait(); err != nil {
			t.Fatalf("append after replay: %v", err)
		}
		w.Close()
	})
}

package eureka

import (
	"bytes"
	"compress/gzip"
	"io"
	"math/rand/v2"
	"testing"
)

// TestComposedGzip: pieces compressed apart and stored blocks stitch into
// one gzip member that decodes to the plain document.
func TestComposedGzip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var d deflater
	for round := 0; round < 50; round++ {
		var c composed
		for i := rng.IntN(8); i >= 0; i-- {
			n := rng.IntN(3 * 65536 / (1 + rng.IntN(64)))
			b := make([]byte, n)
			for j := range b {
				b[j] = "abc{}\",:<>xyz0123"[rng.IntN(17)] // compressible, with markup
			}
			if rng.IntN(2) == 0 {
				c.add(b, nil) // stored blocks, some over 64 KiB
			} else {
				c.add(b, &encoded{plain: b})
			}
		}
		gz := c.gzipParts(func(e *encoded) []byte { return d.segment(e.plain) })
		zr, err := gzip.NewReader(bytes.NewReader(gz.bytes()))
		if err != nil {
			t.Fatal(err)
		}
		zr.Multistream(false)
		got, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if want := c.plainParts().bytes(); !bytes.Equal(got, want) || gz.size != len(gz.bytes()) {
			t.Fatalf("round %d: %d bytes decoded, want %d", round, len(got), len(want))
		}
	}
}

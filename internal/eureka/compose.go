package eureka

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"hash/crc32"
)

// A document is written as a list of pieces rather than one buffer: the
// encoding of each application is made once per change of that application
// and shared by every document that holds it, so a new registry revision
// costs the changed application's encoding, not the whole registry's.
//
// The gzip form is stitched the same way. Each application's piece carries
// its own raw DEFLATE segment (compressed on its own and ended with a sync
// flush, so it starts and ends on a byte boundary and refers to nothing
// before it); small pieces go in stored blocks. The segments, one final
// empty block, and gzip's header and trailer (CRC-32 and size of the whole
// plain text) make one ordinary single-member gzip stream that any decoder
// reads.
type piece struct {
	plain []byte
	enc   *encoded // the encoding plain belongs to, whose segment to use; nil: a stored block
}

type composed struct {
	pieces []piece
	size   int
}

func (c *composed) add(plain []byte, enc *encoded) {
	c.pieces = append(c.pieces, piece{plain, enc})
	c.size += len(plain)
}

// plainParts returns the document's bytes, in order.
func (c *composed) plainParts() parts {
	p := parts{bufs: make([][]byte, len(c.pieces)), size: c.size}
	for i, pc := range c.pieces {
		p.bufs[i] = pc.plain
	}
	return p
}

// gzipParts returns the document as one gzip stream, in parts; segOf
// gives an encoding's DEFLATE segment.
func (c *composed) gzipParts(segOf func(*encoded) []byte) parts {
	crc := uint32(0)
	for _, pc := range c.pieces {
		crc = crc32.Update(crc, crc32.IEEETable, pc.plain)
	}
	var p parts
	p.add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}) // gzip header: deflate, no name, no mtime, unknown OS
	for _, pc := range c.pieces {
		if pc.enc != nil {
			p.add(segOf(pc.enc))
		} else if len(pc.plain) > 0 {
			p.add(storedBlocks(pc.plain))
		}
	}
	trailer := make([]byte, 10)
	trailer[0], trailer[1] = 0x03, 0x00 // final, empty block with fixed codes
	binary.LittleEndian.PutUint32(trailer[2:], crc)
	binary.LittleEndian.PutUint32(trailer[6:], uint32(c.size))
	p.add(trailer)
	return p
}

// storedBlocks encodes b as non-final stored DEFLATE blocks.
func storedBlocks(b []byte) []byte {
	out := make([]byte, 0, len(b)+5*(len(b)/65535+1))
	for {
		n := min(len(b), 65535)
		out = append(out, 0, byte(n), byte(n>>8), ^byte(n), ^byte(n>>8))
		out = append(out, b[:n]...)
		b = b[n:]
		if len(b) == 0 {
			return out
		}
	}
}

// deflater makes raw DEFLATE segments, reusing one compressor (its tables
// are large). Not safe for concurrent use: the view's lock guards it.
type deflater struct {
	w   *flate.Writer
	buf bytes.Buffer
}

func (d *deflater) segment(b []byte) []byte {
	d.buf.Reset()
	if d.w == nil {
		d.w, _ = flate.NewWriter(&d.buf, flate.BestSpeed)
	} else {
		d.w.Reset(&d.buf)
	}
	_, _ = d.w.Write(b)
	_ = d.w.Flush() // sync flush: ends on a byte boundary, not final
	return bytes.Clone(d.buf.Bytes())
}

// parts is a response body in pieces.
type parts struct {
	bufs [][]byte
	size int
}

func (p *parts) add(b []byte) {
	p.bufs = append(p.bufs, b)
	p.size += len(b)
}

// bytes joins the parts (tests, and small documents).
func (p parts) bytes() []byte {
	return bytes.Join(p.bufs, nil)
}

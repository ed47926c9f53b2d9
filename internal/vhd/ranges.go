package vhd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Range is a byte range [Offset, Offset+Length).
type Range struct{ Offset, Length int64 }

// DataRanges scans r (of size bytes) in chunks of chunkSize bytes and
// returns the ranges that contain any non-zero byte, in ascending order,
// with adjacent data chunks merged into ranges of at most maxRange bytes.
// All-zero chunks are skipped: a fixed VHD is mostly zeros, and Azure page
// blobs read unwritten pages as zeros, so the upload need not send them.
//
// chunkSize must be a positive multiple of 512 (page blob writes are
// 512-aligned and at most 4 MiB, so 4 MiB is the natural choice) and
// maxRange at least chunkSize. Every range starts on a chunk boundary; its
// length is a multiple of chunkSize except where it ends at size.
//
// When r is an *os.File on Linux, holes of a sparse file are found with
// lseek(SEEK_DATA/SEEK_HOLE) and never read, which is what makes scanning
// a mostly empty 64 GiB image fast; this moves the file's seek offset,
// which ReadAt-based callers do not use. Elsewhere, or when the file
// system does not support it, every chunk is read.
func DataRanges(r io.ReaderAt, size int64, chunkSize, maxRange int64) ([]Range, error) {
	if chunkSize <= 0 || chunkSize%512 != 0 {
		return nil, fmt.Errorf("vhd: chunk size %d is not a positive multiple of 512", chunkSize)
	}
	if maxRange < chunkSize {
		return nil, fmt.Errorf("vhd: maximum range %d is smaller than the chunk size %d", maxRange, chunkSize)
	}
	if size < 0 {
		return nil, fmt.Errorf("vhd: negative size %d", size)
	}
	extents, ok := dataExtents(r, size)
	if !ok {
		extents = []Range{{0, size}}
	}
	// One buffer for the data and one of zeros to compare against:
	// bytes.Equal uses the runtime's vectorised memequal, far faster than a
	// byte loop, and stops at the first difference.
	buf := make([]byte, chunkSize)
	zero := make([]byte, chunkSize)
	var out []Range
	next := int64(0) // first chunk index not yet scanned
	for _, e := range extents {
		if e.Length <= 0 {
			continue
		}
		first := max(e.Offset/chunkSize, next)
		last := (e.Offset + e.Length - 1) / chunkSize
		for c := first; c <= last; c++ {
			off := c * chunkSize
			n := min(chunkSize, size-off)
			m, err := r.ReadAt(buf[:n], off)
			if int64(m) < n {
				if err == nil || errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				return nil, fmt.Errorf("vhd: read %d bytes at offset %d: %w", n, off, err)
			}
			if bytes.Equal(buf[:n], zero[:n]) {
				continue
			}
			if k := len(out) - 1; k >= 0 && out[k].Offset+out[k].Length == off && out[k].Length+n <= maxRange {
				out[k].Length += n
			} else {
				out = append(out, Range{Offset: off, Length: n})
			}
		}
		next = max(next, last+1)
	}
	return out, nil
}

//go:build linux

package vhd

import (
	"errors"
	"io"
	"os"
	"syscall"
)

// Linux lseek whence values for sparse files (see lseek(2)); the syscall
// package does not name them and golang.org/x/sys is not a direct
// dependency of this module.
const (
	seekData = 3
	seekHole = 4
)

// dataExtents lists the regions of r that are not holes, using
// lseek(SEEK_DATA/SEEK_HOLE), so that holes need not be read. ok is false
// when r is not a file or the file system cannot answer, and the caller
// must then treat the whole file as data.
func dataExtents(r io.ReaderAt, size int64) (extents []Range, ok bool) {
	f, isFile := r.(*os.File)
	if !isFile {
		return nil, false
	}
	off := int64(0)
	for off < size {
		d, err := f.Seek(off, seekData)
		if errors.Is(err, syscall.ENXIO) {
			break // no data after off: the rest is a hole
		}
		if err != nil {
			return nil, false
		}
		if d >= size {
			break
		}
		h, err := f.Seek(d, seekHole)
		if err != nil || h <= d {
			return nil, false
		}
		h = min(h, size)
		extents = append(extents, Range{Offset: d, Length: h - d})
		off = h
	}
	return extents, true
}

//go:build !linux

package vhd

import "io"

// dataExtents reports that holes cannot be found on this platform, so the
// caller reads every chunk.
func dataExtents(io.ReaderAt, int64) ([]Range, bool) { return nil, false }

package vhd

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// WriteFixed turns the raw disk image at path into a fixed VHD in place by
// appending the footer, which is all a fixed VHD is: the raw bytes followed
// by 512 bytes of metadata. Appending avoids copying a multi-GiB disk. The
// raw size must be a whole number of MiB (Azure's rule), and a file that
// already ends with a valid footer is refused so that running twice cannot
// produce a disk with a stray footer inside it.
//
// The file is not fsynced. The disk it is given is scratch, to be
// uploaded or stored right away by the same process, which reads it
// through the page cache; if the machine goes down first the build is
// lost anyway. A caller that keeps the file as the product must sync it
// itself (LocalStore does before publishing it under its final name).
func WriteFixed(path string, uniqueID [16]byte, created time.Time) (err error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("vhd: open raw disk: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("vhd: close %s: %w", path, cerr)
		}
	}()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("vhd: stat raw disk: %w", err)
	}
	size := fi.Size()
	if size >= FooterSize {
		tail := make([]byte, FooterSize)
		if _, err := f.ReadAt(tail, size-FooterSize); err != nil {
			return fmt.Errorf("vhd: read end of %s: %w", path, err)
		}
		if _, perr := ParseFooter(tail); perr == nil {
			return fmt.Errorf("vhd: %s already ends with a VHD footer; refusing to append another", path)
		}
	}
	footer, err := NewFixedFooter(size, uniqueID, created)
	if err != nil {
		return fmt.Errorf("vhd: %s: %w", path, err)
	}
	b, err := footer.MarshalBinary()
	if err != nil {
		return fmt.Errorf("vhd: encode footer: %w", err)
	}
	if _, err := f.WriteAt(b, size); err != nil {
		return fmt.Errorf("vhd: append footer to %s: %w", path, err)
	}
	return nil
}

// ReadFixed opens the VHD file at path, validates its footer against the
// file size, and returns the footer and the virtual size (the file size
// less the footer). It is the read-back check after WriteFixed and the
// gate before an upload, so it also enforces Azure's whole-MiB rule.
func ReadFixed(path string) (*Footer, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("vhd: open: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, fmt.Errorf("vhd: stat: %w", err)
	}
	size := fi.Size()
	if size < FooterSize {
		return nil, 0, fmt.Errorf("vhd: %s is %d bytes, shorter than a VHD footer", path, size)
	}
	tail := make([]byte, FooterSize)
	if _, err := f.ReadAt(tail, size-FooterSize); err != nil && !errors.Is(err, io.EOF) {
		return nil, 0, fmt.Errorf("vhd: read footer of %s: %w", path, err)
	}
	footer, err := ParseFooter(tail)
	if err != nil {
		return nil, 0, fmt.Errorf("vhd: %s: %w", path, err)
	}
	virtual := size - FooterSize
	if footer.CurrentSize != uint64(virtual) {
		return nil, 0, fmt.Errorf("vhd: %s: footer says the disk is %d bytes but the file holds %d bytes before the footer", path, footer.CurrentSize, virtual)
	}
	if virtual%MiB != 0 {
		return nil, 0, fmt.Errorf("vhd: %s: virtual size %d bytes is not a whole number of MiB, which Azure requires for VHDs", path, virtual)
	}
	return footer, virtual, nil
}

package diskimage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// FormatNTFS creates volumePath as a sparse file of p.Size bytes and
// formats it NTFS with mkntfs, ready for ApplyImage and PutFile.
//
// The volume is built as its own file rather than inside the disk because
// neither mkntfs nor ntfscp/ntfscat/ntfsls take an offset into a larger
// file, and loop devices need root. SpliceVolume copies the finished
// volume into the disk. mkntfs is told the partition's start sector
// (--partition-start) so that the boot sector's "hidden sectors" field is
// right for the partition the volume will end up in: Windows' NTFS boot
// code reads it to find the volume, and will not boot without it.
//
// volumePath must not exist; on error or cancellation it is removed.
func FormatNTFS(ctx context.Context, volumePath string, p Partition, label string) (err error) {
	mkntfs, err := lookTool("mkntfs", "ntfs-3g")
	if err != nil {
		return err
	}
	if p.Size <= 0 || p.Size%SectorSize != 0 || p.Start%SectorSize != 0 {
		return fmt.Errorf("formatting NTFS volume %s: partition start %d and size %d must be positive multiples of %d bytes", volumePath, p.Start, p.Size, SectorSize)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("formatting NTFS volume %s: %w", volumePath, err)
	}
	f, err := os.OpenFile(volumePath, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("creating NTFS volume file: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(volumePath)
		}
	}()
	terr := f.Truncate(p.Size)
	if cerr := f.Close(); terr == nil {
		terr = cerr
	}
	if terr != nil {
		return fmt.Errorf("sizing NTFS volume file %s to %d bytes: %w", volumePath, p.Size, terr)
	}
	args := []string{
		"--force", // the target is a regular file, not a block device
		"--fast",  // the file is sparse and new: zeroing it would only fill it
		"--quiet",
		"--label", label,
		"--sector-size", strconv.Itoa(SectorSize),
		"--cluster-size", "4096", // what Windows Setup uses for the system volume
		"--partition-start", strconv.FormatInt(p.StartSector(), 10),
		// The geometry Windows reports for fixed VHDs and most disks; BIOS
		// boot code of old reads it, and mkntfs cannot query a file for it.
		"--heads", "255",
		"--sectors-per-track", "63",
		volumePath,
		strconv.FormatInt(p.Size/SectorSize, 10),
	}
	if out, err := run(ctx, mkntfs, args...); err != nil {
		return toolError(ctx, "mkntfs", "formatting NTFS volume "+volumePath, out, err,
			"check that ntfs-3g is installed and there is free space for the volume file")
	}
	return nil
}

// SpliceVolume copies the NTFS volume file into the disk at the start of
// partition p, skipping holes and all-zero blocks so that the disk stays
// sparse. The disk must already have its full size (Layout gives it that);
// SpliceVolume never extends it, and refuses a volume that does not have
// exactly the partition's size.
func SpliceVolume(ctx context.Context, volumePath, diskPath string, p Partition) error {
	src, err := os.Open(volumePath)
	if err != nil {
		return fmt.Errorf("splicing NTFS volume into disk: %w", err)
	}
	defer src.Close()
	dst, err := os.OpenFile(diskPath, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("splicing NTFS volume into disk: %w", err)
	}
	if err := copySparse(ctx, src, dst, p); err != nil {
		_ = dst.Close()
		return fmt.Errorf("splicing NTFS volume %s into disk %s at byte %d: %w", volumePath, diskPath, p.Start, err)
	}
	if err := dst.Sync(); err != nil {
		_ = dst.Close()
		return fmt.Errorf("syncing disk %s: %w", diskPath, err)
	}
	if err := dst.Close(); err != nil {
		return fmt.Errorf("closing disk %s: %w", diskPath, err)
	}
	return nil
}

func copySparse(ctx context.Context, src, dst *os.File, p Partition) error {
	vi, err := src.Stat()
	if err != nil {
		return err
	}
	di, err := dst.Stat()
	if err != nil {
		return err
	}
	if vi.Size() != p.Size {
		return fmt.Errorf("volume is %d bytes but the partition is %d bytes", vi.Size(), p.Size)
	}
	if p.Start+p.Size > di.Size() {
		return fmt.Errorf("partition ends at byte %d, past the end of the %d-byte disk", p.Start+p.Size, di.Size())
	}
	// Clear the partition first, so that skipped zero blocks and holes read
	// as zero even if the region held something. Punching a hole keeps the
	// disk sparse; where the file system cannot, zero blocks are written.
	writeZeros := unix.Fallocate(int(dst.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, p.Start, p.Size) != nil
	if writeZeros {
		if err := zeroRange(ctx, dst, p.Start, p.Size); err != nil {
			return err
		}
	}
	const block = 1 << 20
	buf := make([]byte, block)
	zero := make([]byte, block) // bytes.Equal is vectorised; isZero is not
	fd := int(src.Fd())
	for off := int64(0); off < p.Size; {
		if err := ctx.Err(); err != nil {
			return err
		}
		// Jump over holes: an applied Windows volume is mostly unwritten
		// and reading its holes would cost as much as reading data.
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			return nil // no data after off
		}
		if err != nil {
			return fmt.Errorf("finding data in volume: %w", err)
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return fmt.Errorf("finding holes in volume: %w", err)
		}
		for off = data; off < hole; off += block {
			if err := ctx.Err(); err != nil {
				return err
			}
			n := int(min(block, hole-off))
			if _, err := src.ReadAt(buf[:n], off); err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			if bytes.Equal(buf[:n], zero[:n]) {
				continue // the region was cleared above
			}
			if _, err := dst.WriteAt(buf[:n], p.Start+off); err != nil {
				return err
			}
		}
		off = hole
	}
	return nil
}

// zeroRange writes zeros over [off, off+n) of f.
func zeroRange(ctx context.Context, f *os.File, off, n int64) error {
	zeros := make([]byte, 1<<20)
	for end := off + n; off < end; off += int64(len(zeros)) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := f.WriteAt(zeros[:min(int64(len(zeros)), end-off)], off); err != nil {
			return err
		}
	}
	return nil
}

func isZero(b []byte) bool {
	return len(bytes.TrimLeft(b, "\x00")) == 0
}

// outputTail returns the last n non-empty lines of a tool's output: the
// error is nearly always at the end, after progress lines.
func outputTail(out []byte, n int) string {
	var lines []string
	for l := range strings.Lines(string(out)) {
		l = strings.TrimRight(l, "\r\n")
		// Progress meters redraw with \r: keep only the last state.
		if i := strings.LastIndexByte(l, '\r'); i >= 0 {
			l = l[i+1:]
		}
		if strings.TrimSpace(l) != "" {
			lines = append(lines, "  "+l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

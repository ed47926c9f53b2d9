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
// file, and loop devices need root. MoveVolumeIntoDisk (or SpliceVolume)
// puts the finished volume into the disk. mkntfs is told the partition's start sector
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
// exactly the partition's size. The volume file is left as it was.
//
// The disk is not fsynced: it is a scratch file that the VHD step turns
// into the image and the store then copies or moves, and a crash loses the
// whole work directory anyway. Durability is the store's business.
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
	if err := dst.Close(); err != nil {
		return fmt.Errorf("closing disk %s: %w", diskPath, err)
	}
	return nil
}

// insertRangeDisabled makes MoveVolumeIntoDisk take the copying path, so
// that tests exercise it on file systems where the fast path would run.
var insertRangeDisabled = false

// MoveVolumeIntoDisk makes diskPath the finished disk: the layout already
// written to diskPath (partition tables, boot code, ESP, backup GPT) with
// the NTFS volume file at the start of partition p. It consumes the
// volume: on success volumePath no longer exists.
//
// Copying a volume of many GiB into the disk costs as much I/O as the
// image itself, so where the file system can, the disk is built around
// the volume instead: fallocate(FALLOC_FL_INSERT_RANGE) shifts the
// volume's extents up by p.Start bytes without moving any data (ext4 and
// XFS do this when p.Start is a multiple of their block size, which the
// 1 MiB partition alignment is), the few data blocks of the disk outside
// the partition are copied into the gap and after the end, and the
// result is renamed over diskPath. Where INSERT_RANGE is not supported
// (tmpfs, other file systems, an unaligned start) the volume is copied
// into the disk with SpliceVolume and then removed. Either way the disk
// stays sparse, and diskPath holds the old layout until the final rename,
// so it never holds a half-built disk.
//
// Like SpliceVolume, nothing is fsynced (the disk is scratch). On error
// the volume file may already have been shifted and is then removed;
// diskPath is left as it was on the fast path, and partly written on the
// copying one. Either way the caller must discard both.
func MoveVolumeIntoDisk(ctx context.Context, volumePath, diskPath string, p Partition) error {
	_, err := moveVolumeIntoDisk(ctx, volumePath, diskPath, p)
	return err
}

// moveVolumeIntoDisk is MoveVolumeIntoDisk, also reporting whether the
// INSERT_RANGE path ran (for tests, which log it).
func moveVolumeIntoDisk(ctx context.Context, volumePath, diskPath string, p Partition) (inserted bool, err error) {
	fail := func(err error) error {
		return fmt.Errorf("splicing NTFS volume %s into disk %s at byte %d: %w", volumePath, diskPath, p.Start, err)
	}
	if err := ctx.Err(); err != nil {
		return false, fail(err)
	}
	vol, err := os.OpenFile(volumePath, os.O_RDWR, 0)
	if err != nil {
		return false, fail(err)
	}
	disk, err := os.Open(diskPath)
	if err != nil {
		_ = vol.Close()
		return false, fail(err)
	}
	closeBoth := func() error {
		derr := disk.Close()
		if verr := vol.Close(); verr != nil {
			return verr
		}
		return derr
	}
	vi, err := vol.Stat()
	if err != nil {
		_ = closeBoth()
		return false, fail(err)
	}
	di, err := disk.Stat()
	if err != nil {
		_ = closeBoth()
		return false, fail(err)
	}
	if vi.Size() != p.Size {
		_ = closeBoth()
		return false, fail(fmt.Errorf("volume is %d bytes but the partition is %d bytes", vi.Size(), p.Size))
	}
	if p.Start < 0 || p.Start+p.Size > di.Size() {
		_ = closeBoth()
		return false, fail(fmt.Errorf("partition ends at byte %d, past the end of the %d-byte disk", p.Start+p.Size, di.Size()))
	}
	ierr := error(unix.ENOTSUP)
	if !insertRangeDisabled && p.Start > 0 {
		ierr = unix.Fallocate(int(vol.Fd()), unix.FALLOC_FL_INSERT_RANGE, 0, p.Start)
	}
	if ierr != nil {
		if err := closeBoth(); err != nil {
			return false, fail(err)
		}
		// EOPNOTSUPP (== ENOTSUP on Linux): the file system cannot;
		// EINVAL: p.Start is not a multiple of its block size; ENOSYS:
		// no fallocate at all. Anything else is a real error.
		if !errors.Is(ierr, unix.ENOTSUP) && !errors.Is(ierr, unix.EOPNOTSUPP) && !errors.Is(ierr, unix.EINVAL) && !errors.Is(ierr, unix.ENOSYS) {
			return false, fail(fmt.Errorf("inserting %d bytes before the volume: %w", p.Start, ierr))
		}
		if err := SpliceVolume(ctx, volumePath, diskPath, p); err != nil {
			return false, err
		}
		if err := os.Remove(volumePath); err != nil {
			return false, fail(err)
		}
		return false, nil
	}
	// From here on the volume file is the disk under construction.
	err = func() error {
		if err := copyData(ctx, disk, vol, 0, p.Start); err != nil {
			return fmt.Errorf("copying the disk's first %d bytes: %w", p.Start, err)
		}
		if err := vol.Truncate(di.Size()); err != nil {
			return err
		}
		end := p.Start + p.Size
		if err := copyData(ctx, disk, vol, end, di.Size()-end); err != nil {
			return fmt.Errorf("copying the disk's last %d bytes: %w", di.Size()-end, err)
		}
		return nil
	}()
	if cerr := closeBoth(); err == nil {
		err = cerr
	}
	if err == nil {
		err = ctx.Err()
	}
	if err == nil {
		err = os.Rename(volumePath, diskPath)
	}
	if err != nil {
		_ = os.Remove(volumePath)
		return true, fail(err)
	}
	return true, nil
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
	return copySection(ctx, src, dst, 0, p.Start, p.Size)
}

// copyData copies [off, off+n) of src to the same offsets of dst, whose
// range must read as zeros (a hole) already.
func copyData(ctx context.Context, src, dst *os.File, off, n int64) error {
	return copySection(ctx, src, dst, off, off, n)
}

// copySection copies [srcOff, srcOff+n) of src to dst at dstOff, jumping
// over holes (lseek SEEK_DATA/SEEK_HOLE) and skipping all-zero blocks, so
// the destination range must already read as zeros.
func copySection(ctx context.Context, src, dst *os.File, srcOff, dstOff, n int64) error {
	const block = 1 << 20
	buf := make([]byte, block)
	zero := make([]byte, block) // bytes.Equal is vectorised; isZero is not
	fd := int(src.Fd())
	end := srcOff + n
	for off := srcOff; off < end; {
		if err := ctx.Err(); err != nil {
			return err
		}
		// Jump over holes: an applied Windows volume is mostly unwritten
		// and reading its holes would cost as much as reading data.
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) || (err == nil && data >= end) {
			return nil // no data after off
		}
		if err != nil {
			return fmt.Errorf("finding data: %w", err)
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return fmt.Errorf("finding holes: %w", err)
		}
		hole = min(hole, end)
		for off = data; off < hole; off += block {
			if err := ctx.Err(); err != nil {
				return err
			}
			n := int(min(block, hole-off))
			if _, err := src.ReadAt(buf[:n], off); err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			if bytes.Equal(buf[:n], zero[:n]) {
				continue // the destination reads as zero already
			}
			if _, err := dst.WriteAt(buf[:n], dstOff+off-srcOff); err != nil {
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

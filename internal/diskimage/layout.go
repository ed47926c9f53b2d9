package diskimage

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/diskfs/go-diskfs/partition/mbr"
	"github.com/google/uuid"
)

// SectorSize is the logical sector size of every disk cib builds. Azure and
// Hyper-V fixed VHDs present 512-byte sectors, and the NTFS and FAT boot
// sectors, the MBR and the GPT all count in it.
const SectorSize = 512

// Partition styles accepted by Layout: StyleMBR for Generation 1 (BIOS)
// machines, StyleGPT for Generation 2 (UEFI) machines.
const (
	StyleMBR = "mbr"
	StyleGPT = "gpt"
)

// Partition type strings recorded in Partition.Type: the MBR system ID in
// hex for MBR disks, the type GUID for GPT disks.
const (
	TypeMBRNTFS      = "0x07"
	TypeGPTESP       = string(gpt.EFISystemPartition)
	TypeGPTMSR       = string(gpt.MicrosoftReserved)
	TypeGPTBasicData = string(gpt.MicrosoftBasicData)
)

const (
	gib = int64(1) << 30
	mib = int64(1) << 20
	// partitionAlign is where the first partition starts and what every
	// partition start is a multiple of: 1 MiB, as Windows Setup and diskpart
	// align, so clusters line up with any underlying 4 KiB or 1 MiB unit.
	partitionAlign = mib
	espSize        = 100 * mib // the size Windows Setup gives the ESP
	msrSize        = 16 * mib  // the MSR size Windows 10 and later use
	// mbrSignatureOffset is where the 32-bit disk signature lives in the
	// MBR. Windows identifies MBR disks by it (the BCD's device elements
	// for an MBR disk name the signature and partition offset).
	mbrSignatureOffset = 440
)

// Partition is one partition of a laid-out disk.
type Partition struct {
	Number int    // 1-based, as in the partition table
	Start  int64  // bytes from the start of the disk
	Size   int64  // bytes
	Type   string // TypeMBRNTFS, or a GPT type GUID (TypeGPT*)
	GUID   string // GPT unique partition GUID; empty on MBR disks
}

// StartSector is the partition's first sector: what the NTFS and FAT boot
// sectors must record as "hidden sectors" for Windows to boot from them.
func (p Partition) StartSector() int64 { return p.Start / SectorSize }

// Disk describes a raw disk file written by Layout. The BCD step needs
// Signature (MBR) or DiskGUID and Windows.GUID (GPT) to point the boot
// loader at the Windows partition.
type Disk struct {
	Path       string
	Size       int64  // bytes, a whole number of GiB
	Style      string // StyleMBR or StyleGPT
	Signature  uint32 // MBR disk signature (bytes 440..443); 0 for GPT
	DiskGUID   string // GPT disk GUID; empty for MBR
	Partitions []Partition
	Windows    Partition  // the NTFS partition the image is applied to
	ESP        *Partition // the EFI system partition; nil for MBR
}

// Layout creates path as a sparse raw disk of size bytes and writes an
// empty partition table to it:
//
//   - StyleMBR: the seed's layout, one active NTFS partition (type 0x07)
//     from 1 MiB to the end of the disk, and a random disk signature;
//   - StyleGPT: a 100 MiB EFI system partition formatted FAT32 (mkfs.fat,
//     from dosfstools), a 16 MiB Microsoft reserved partition, then the
//     Windows basic data partition to the end of the usable area.
//
// The Windows partition is left unformatted: FormatNTFS builds its volume
// separately and MoveVolumeIntoDisk builds the disk around it. size must be a whole number of
// GiB and at least 1 GiB, because the VHD step turns it into a fixed VHD
// whose size Azure requires to be whole MiB. path must not exist; on error
// or cancellation it is removed.
func Layout(ctx context.Context, path string, size int64, style string) (d Disk, err error) {
	if size < gib || size%gib != 0 {
		return Disk{}, fmt.Errorf("disk size %d bytes: must be a whole number of GiB and at least 1 GiB", size)
	}
	if style != StyleMBR && style != StyleGPT {
		return Disk{}, fmt.Errorf("partition style %q: must be %q (Generation 1) or %q (Generation 2)", style, StyleMBR, StyleGPT)
	}
	if err := ctx.Err(); err != nil {
		return Disk{}, fmt.Errorf("laying out disk %s: %w", path, err)
	}
	// O_EXCL: never truncate, and never later delete, a file we did not make.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return Disk{}, fmt.Errorf("creating disk file: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("closing disk file %s: %w", path, cerr)
		}
		if err != nil {
			_ = os.Remove(path)
			d = Disk{}
		}
	}()
	// Truncate leaves a hole: a 127 GiB disk costs no space until written.
	if err := f.Truncate(size); err != nil {
		return Disk{}, fmt.Errorf("sizing disk file %s to %d bytes: %w", path, size, err)
	}

	d = Disk{Path: path, Size: size, Style: style}
	if style == StyleMBR {
		err = layoutMBR(f, &d)
	} else {
		err = layoutGPT(ctx, f, &d)
	}
	if err != nil {
		return Disk{}, err
	}
	if err := f.Sync(); err != nil {
		return Disk{}, fmt.Errorf("syncing disk file %s: %w", path, err)
	}
	if err := ctx.Err(); err != nil {
		return Disk{}, fmt.Errorf("laying out disk %s: %w", path, err)
	}
	return d, nil
}

func layoutMBR(f *os.File, d *Disk) error {
	start := partitionAlign / SectorSize
	sectors := d.Size/SectorSize - start
	if sectors > 0xFFFFFFFF {
		// MBR entries hold 32-bit sector counts: 2 TiB is the limit.
		return fmt.Errorf("disk size %d bytes is too large for an MBR disk (at most 2 TiB): use GPT (Generation 2)", d.Size)
	}
	table := &mbr.Table{
		LogicalSectorSize:  SectorSize,
		PhysicalSectorSize: SectorSize,
		Partitions: []*mbr.Partition{{
			Bootable: true, // the MBR boot code chains to the active partition
			Type:     mbr.NTFS,
			Start:    uint32(start),
			Size:     uint32(sectors),
		}},
	}
	if err := table.Write(f, d.Size); err != nil {
		return fmt.Errorf("writing MBR partition table to %s: %w", d.Path, err)
	}
	// go-diskfs writes only from byte 446 (the partition entries and 0x55AA)
	// and has no setter for the disk signature, so write it ourselves.
	var sig [4]byte
	for binary.LittleEndian.Uint32(sig[:]) == 0 { // 0 means "no signature" to Windows
		if _, err := rand.Read(sig[:]); err != nil {
			return fmt.Errorf("generating MBR disk signature: %w", err)
		}
	}
	if _, err := f.WriteAt(sig[:], mbrSignatureOffset); err != nil {
		return fmt.Errorf("writing MBR disk signature to %s: %w", d.Path, err)
	}
	d.Signature = binary.LittleEndian.Uint32(sig[:])
	d.Windows = Partition{Number: 1, Start: start * SectorSize, Size: sectors * SectorSize, Type: TypeMBRNTFS}
	d.Partitions = []Partition{d.Windows}
	return nil
}

func layoutGPT(ctx context.Context, f *os.File, d *Disk) error {
	// The usable area ends before the backup partition array (32 sectors
	// for 128 entries of 128 bytes) and the backup header (1 sector).
	lastUsable := d.Size/SectorSize - 34
	espStart := partitionAlign
	msrStart := espStart + espSize
	winStart := msrStart + msrSize
	winEnd := lastUsable // inclusive sector
	winSize := (winEnd+1)*SectorSize - winStart

	d.DiskGUID = uuid.NewString()
	d.Partitions = []Partition{
		{Number: 1, Start: espStart, Size: espSize, Type: TypeGPTESP, GUID: uuid.NewString()},
		{Number: 2, Start: msrStart, Size: msrSize, Type: TypeGPTMSR, GUID: uuid.NewString()},
		{Number: 3, Start: winStart, Size: winSize, Type: TypeGPTBasicData, GUID: uuid.NewString()},
	}
	names := []string{"EFI system partition", "Microsoft reserved partition", "Basic data partition"}
	table := &gpt.Table{
		LogicalSectorSize:  SectorSize,
		PhysicalSectorSize: SectorSize,
		GUID:               d.DiskGUID,
		ProtectiveMBR:      true,
	}
	for i, p := range d.Partitions {
		table.Partitions = append(table.Partitions, &gpt.Partition{
			Index: p.Number,
			Start: uint64(p.Start / SectorSize),
			End:   uint64((p.Start+p.Size)/SectorSize - 1),
			Size:  uint64(p.Size),
			Type:  gpt.Type(p.Type),
			Name:  names[i],
			GUID:  p.GUID,
		})
	}
	if err := table.Write(f, d.Size); err != nil {
		return fmt.Errorf("writing GPT partition table to %s: %w", d.Path, err)
	}
	d.Windows = d.Partitions[2]
	esp := d.Partitions[0]
	d.ESP = &esp
	return formatESP(ctx, d.Path, esp)
}

// formatESP formats the EFI system partition FAT32 in place with mkfs.fat,
// whose --offset writes inside the disk file, so no separate volume or
// loop device is needed. go-diskfs's fat32 was not used because it formats
// through its own disk abstraction, which would reopen and re-read the
// table we just wrote; mkfs.fat is the reference implementation UEFI
// firmware is tested against.
func formatESP(ctx context.Context, diskPath string, esp Partition) error {
	mkfs, err := lookTool("mkfs.fat", "dosfstools")
	if err != nil {
		return err
	}
	args := []string{
		"-F", "32", // UEFI requires FAT32 for the ESP on fixed disks
		"-S", strconv.Itoa(SectorSize),
		// 1-sector clusters keep a 100 MiB volume above FAT32's minimum
		// cluster count (65525), as Windows formats its own 100 MiB ESP.
		"-s", "1",
		"-n", "SYSTEM",
		"-h", strconv.FormatInt(esp.StartSector(), 10),
		"--offset", strconv.FormatInt(esp.StartSector(), 10),
		diskPath,
		strconv.FormatInt(esp.Size/1024, 10), // block count in KiB
	}
	if out, err := run(ctx, mkfs, args...); err != nil {
		return toolError(ctx, "mkfs.fat", "formatting the EFI system partition of "+diskPath, out, err,
			"check that dosfstools is installed and the disk's directory is writable")
	}
	return nil
}

// lookTool finds an ntfs-3g or dosfstools program on PATH, naming the
// Debian package when it is missing.
func lookTool(name, debPackage string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found on PATH: install the Debian package %s", name, debPackage)
	}
	return p, nil
}

// toolError describes a failed tool run: which tool, what it was doing,
// the tail of its output, and what to do about it. A cancelled context is
// reported as such, since the tool's own message is then just "killed".
func toolError(ctx context.Context, tool, doing string, out []byte, err error, hint string) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%s: %s: %w", doing, tool, ctxErr)
	}
	if !isExitError(err) {
		return fmt.Errorf("%s: running %s: %w", doing, tool, err)
	}
	msg := fmt.Sprintf("%s: %s failed (%v)", doing, tool, err)
	if tail := outputTail(out, 10); tail != "" {
		msg += ":\n" + tail
	}
	if hint != "" {
		msg += "\n" + hint
	}
	return errors.New(msg)
}

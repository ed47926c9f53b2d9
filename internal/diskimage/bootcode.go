package diskimage

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// BIOS boot of an MBR disk goes: firmware → MBR boot code (sector 0) →
// GRUB core image (sectors 1..N, in the gap before the first partition) →
// \bootmgr of the partition holding it. The boot code is GRUB's i386-pc
// platform (Debian package grub-pc-bin) because it is the one free,
// maintained BIOS boot loader that can read NTFS and hand over to bootmgr;
// Windows' own MBR code cannot be had on Linux.
//
// GRUB loads bootmgr directly, through its ntfs module and its ntldr
// command, so the boot code that mkntfs writes into the NTFS volume boot
// record is never run on this path. The volume boot record is still read:
// ntldr copies the root partition's first sector to 0:7C00 before jumping
// to bootmgr (at 2000:0000, as the NTFS boot code would), and bootmgr takes
// the volume's geometry from the BPB there; that is why FormatNTFS must
// still get the partition start right.
//
// The GRUB manual ("BIOS installation", "Images") describes boot.img,
// diskboot.img and core.img; the fields patched below are defined in
// GRUB's include/grub/i386/pc/boot.h and used by grub-core/boot/i386/pc/
// boot.S and diskboot.S, and the patches are those util/setup.c
// (grub-bios-setup, run by grub-install) makes when it embeds core.img
// after the MBR.

// Fields of boot.img (GRUB's MBR boot code, 512 bytes), offsets from its
// start (boot.h GRUB_BOOT_MACHINE_*):
//
//	0x03..0x59  BPB_START..BPB_END: room for a FAT BIOS parameter block
//	            when boot.img goes in a partition boot sector. An MBR has
//	            none; grub-bios-setup copies whatever sector 0 holds there,
//	            which on a disk made by Layout is zeros, as in boot.img.
//	0x5C  8     KERNEL_SECTOR: LBA of core.img's first sector, little-endian.
//	0x64  1     BOOT_DRIVE: BIOS drive to read core.img from; 0xFF means
//	            the drive the BIOS booted from (passed in DL).
//	0x66  2     DRIVE_CHECK: a 2-byte `jmp` over a test that forces DL to
//	            0x80 when a buggy BIOS passes a floppy number; setup.c
//	            replaces it by two NOPs (0x90 0x90) for a hard disk, so
//	            the test runs.
//	0x1B8..     WINDOWS_NT_MAGIC: the disk signature, 2 reserved bytes and
//	            the partition table (to PART_END, 0x1FE), then 0x55AA.
//	            setup.c keeps the disk's own; WriteBIOSBootCode does not
//	            write them at all.
const (
	grubKernelSectorOff = 0x5C
	grubBootDriveOff    = 0x64
	grubDriveCheckOff   = 0x66
	grubBPBStart        = 0x03
	grubBPBEnd          = 0x5A
	// mbrCodeSize is how much of boot.img goes into sector 0: everything
	// before the disk signature.
	mbrCodeSize = mbrSignatureOffset
)

// Fields of core.img's first sector, which grub-mkimage makes from
// diskboot.img: diskboot reads the rest of core.img by the block list at
// the end of the sector (diskboot.S "firstlist"). Each entry is 12 bytes
// (boot.h GRUB_BOOT_MACHINE_LIST_SIZE), the first one at 0x200-12 and any
// further ones below it, and a zero length ends the list:
//
//	+0  8  start: LBA of the first sector to read, little-endian
//	+8  2  len: number of sectors
//	+10 2  segment to load them at: 0x820, just after diskboot itself,
//	       which boot.img loaded to 0x800:0 (GRUB_BOOT_I386_PC_KERNEL_SEG)
//
// grub-mkimage fills len with the size of the rest of core.img and leaves
// start at diskboot.S's default, 2; grub-bios-setup rewrites the list for
// where it embeds the image. WriteBIOSBootCode embeds it at sector 1, so
// one entry describes sectors 2..N; it sets start and len itself rather
// than trusting defaults.
const (
	grubListEntrySize = 12
	grubFirstListOff  = SectorSize - grubListEntrySize
	grubCoreSegment   = 0x820
	// coreStartSector is where core.img goes: right after the MBR, as
	// grub-bios-setup embeds it on an MBR disk.
	coreStartSector = 1
)

// grubModules are the GRUB modules built into core.img: the least that
// reads an MBR disk through the BIOS (biosdisk, part_msdos), finds and
// reads an NTFS file (ntfs, search), starts bootmgr (ntldr), and reports
// a failure (serial, terminal, echo, halt). grub-mkimage adds their
// dependencies (moddep.lst). There is no normal.mod nor any file under
// the prefix: the embedded configuration is all GRUB runs.
var grubModules = []string{
	"biosdisk", "part_msdos", "ntfs", "search", "ntldr",
	"serial", "terminal", "echo", "halt",
}

// grubBootFailure is what GRUB prints, on screen and COM1, when it cannot
// start bootmgr, before it halts. It is kept under 80 characters so that
// GRUB's terminal does not wrap it.
const grubBootFailure = "cib: cannot boot Windows: no partition has a loadable \\bootmgr. Halting."

// grubConfig is the configuration embedded in core.img. GRUB runs an
// embedded configuration with its rescue parser (grub-core/kern/main.c
// grub_load_config, kern/parser.c grub_parser_execute): one command per
// line, no conditionals, a failing command reports its error and the next
// line runs. So on success `boot` never returns, and on any failure the
// lines after it say why and halt, rather than leaving the machine at a
// rescue prompt nobody can see. Output goes to COM1 as well as the screen:
// Azure's serial console and serial log show COM1, the boot diagnostics
// screenshot the screen.
var grubConfig = strings.Join([]string{
	"serial --unit=0 --speed=115200",
	"terminal_output serial console",
	"search --no-floppy --file --set=root /bootmgr",
	"ntldr /bootmgr",
	"boot",
	`echo "` + grubBootFailure + `"`,
	"halt",
}, "\n") + "\n"

// WriteBIOSBootCode makes the MBR disk at diskPath, laid out as d, boot on
// a BIOS machine (Azure Generation 1): it builds a GRUB core image that
// finds the partition holding \bootmgr and starts it, writes the core
// image to sectors 1..N of the disk and GRUB's boot.img code, patched to
// load it, to bytes 0..439 of sector 0. The disk signature, the partition
// table and 0x55AA are kept, and nothing else on the disk is written, so
// it may run before or after the volume is spliced in (and alongside the
// apply): \bootmgr is looked up only at boot.
//
// The core image must end before the first partition; with Layout's 1 MiB
// alignment it has 2047 sectors and uses about 120. Temporary files go to
// a directory from os.MkdirTemp that is always removed. The core image is
// written before the MBR code, so a failure part way leaves sector 0 as it
// was, never pointing at a partial image.
func WriteBIOSBootCode(ctx context.Context, diskPath string, d Disk) (err error) {
	doing := "writing BIOS boot code to disk " + diskPath
	if d.Style != StyleMBR {
		return fmt.Errorf("%s: BIOS boot code goes in an MBR disk; this disk is %q (a GPT disk boots by UEFI, from its EFI system partition)", doing, d.Style)
	}
	if len(d.Partitions) == 0 {
		return fmt.Errorf("%s: the disk has no partitions: lay it out with Layout first", doing)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", doing, err)
	}
	mkimage, err := lookTool("grub-mkimage", "grub-pc-bin")
	if err != nil {
		return fmt.Errorf("%s: %w", doing, err)
	}
	dir, err := grubPCDir(ctx, mkimage)
	if err != nil {
		return fmt.Errorf("%s: %w", doing, err)
	}
	bootImg, err := readBootImg(dir)
	if err != nil {
		return fmt.Errorf("%s: %w", doing, err)
	}

	tmp, err := os.MkdirTemp("", "cib-grub-")
	if err != nil {
		return fmt.Errorf("%s: %w", doing, err)
	}
	defer func() {
		if rerr := os.RemoveAll(tmp); rerr != nil && err == nil {
			err = fmt.Errorf("removing temporary GRUB files: %w", rerr)
		}
	}()
	cfg := filepath.Join(tmp, "embedded.cfg")
	if err := os.WriteFile(cfg, []byte(grubConfig), 0o600); err != nil {
		return fmt.Errorf("%s: %w", doing, err)
	}
	corePath := filepath.Join(tmp, "core.img")
	args := append([]string{
		"--directory", dir, // boot.img and the modules must be the same GRUB build
		"--format", "i386-pc",
		"--prefix", "/boot/grub", // never read: the embedded config boots or halts
		"--config", cfg,
		"--output", corePath,
	}, grubModules...)
	if out, err := run(ctx, mkimage, args...); err != nil {
		return toolError(ctx, "grub-mkimage", doing+": building the GRUB core image", out, err,
			"check that grub-pc-bin is installed completely ("+dir+" must hold the i386-pc modules)")
	}
	core, err := os.ReadFile(corePath)
	if err != nil {
		return fmt.Errorf("%s: reading the GRUB core image: %w", doing, err)
	}
	core, err = patchCoreImage(core)
	if err != nil {
		return fmt.Errorf("%s: %w", doing, err)
	}
	return writeBootCode(ctx, diskPath, d, patchBootImg(bootImg), core)
}

var grubDefaultDir = regexp.MustCompile(`\[default=([^\]\s]+)/<platform>\]`)

// grubPCDir finds the directory of GRUB's i386-pc images and modules: the
// default grub-mkimage itself uses (its --help shows
// "[default=/usr/lib/grub/<platform>]"), so boot.img comes from the same
// GRUB build as the modules.
func grubPCDir(ctx context.Context, mkimage string) (string, error) {
	dir := "/usr/lib/grub/i386-pc"
	if out, err := run(ctx, mkimage, "--help"); err == nil {
		if m := grubDefaultDir.FindSubmatch(out); m != nil {
			dir = filepath.Join(string(m[1]), "i386-pc")
		}
	} else if ctx.Err() != nil {
		return "", ctx.Err()
	}
	for _, f := range []string{"boot.img", "diskboot.img", "moddep.lst", "ntldr.mod"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return "", fmt.Errorf("GRUB i386-pc file %s is missing: install the Debian package grub-pc-bin", filepath.Join(dir, f))
		}
	}
	return dir, nil
}

// readBootImg reads and checks GRUB's boot.img.
func readBootImg(dir string) ([]byte, error) {
	p := filepath.Join(dir, "boot.img")
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("reading GRUB boot sector: %w", err)
	}
	if len(b) != SectorSize || b[510] != 0x55 || b[511] != 0xAA {
		return nil, fmt.Errorf("GRUB boot sector %s is not a 512-byte boot sector ending in 0x55AA: reinstall grub-pc-bin", p)
	}
	return b, nil
}

// patchBootImg returns boot.img set up as grub-bios-setup sets it up for a
// hard disk with core.img at coreStartSector (see the field list above).
func patchBootImg(bootImg []byte) []byte {
	b := bytes.Clone(bootImg)
	clear(b[grubBPBStart:grubBPBEnd]) // an MBR has no BPB
	binary.LittleEndian.PutUint64(b[grubKernelSectorOff:], coreStartSector)
	b[grubBootDriveOff] = 0xFF
	b[grubDriveCheckOff], b[grubDriveCheckOff+1] = 0x90, 0x90
	return b
}

// patchCoreImage pads core.img to whole sectors and sets the block list
// of its first sector (diskboot) to load the rest from the sectors after
// it. It refuses an image whose first sector does not look like diskboot,
// since patching anything else would make an unbootable disk.
func patchCoreImage(core []byte) ([]byte, error) {
	sectors := (len(core) + SectorSize - 1) / SectorSize
	if sectors < 2 || sectors-1 > 0xFFFF {
		return nil, fmt.Errorf("GRUB core image is %d bytes, not an i386-pc core image", len(core))
	}
	padded := make([]byte, sectors*SectorSize)
	copy(padded, core)
	le := binary.LittleEndian
	entry := padded[grubFirstListOff:SectorSize]
	next := padded[grubFirstListOff-grubListEntrySize : grubFirstListOff]
	if le.Uint16(entry[10:]) != grubCoreSegment || !isZero(next) {
		return nil, errors.New("GRUB core image does not start with diskboot.img and its block list; check the grub-pc-bin installation")
	}
	le.PutUint64(entry[0:], coreStartSector+1)
	le.PutUint16(entry[8:], uint16(sectors-1))
	return padded, nil
}

// writeBootCode writes core (whole sectors) at coreStartSector and the
// first mbrCodeSize bytes of bootImg at byte 0 of diskPath, after checking
// that the core image ends before every partition, by d and by the
// partition table on the disk.
func writeBootCode(ctx context.Context, diskPath string, d Disk, bootImg, core []byte) error {
	doing := "writing BIOS boot code to disk " + diskPath
	coreEnd := int64(coreStartSector)*SectorSize + int64(len(core))
	f, err := os.OpenFile(diskPath, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("%s: %w", doing, err)
	}
	defer f.Close()
	mbr := make([]byte, SectorSize)
	if _, err := f.ReadAt(mbr, 0); err != nil {
		return fmt.Errorf("%s: reading the MBR: %w", doing, err)
	}
	if mbr[510] != 0x55 || mbr[511] != 0xAA {
		return fmt.Errorf("%s: sector 0 holds no MBR partition table (no 0x55AA): lay the disk out with Layout first", doing)
	}
	type start struct {
		name string
		at   int64
	}
	var starts []start
	for _, p := range d.Partitions {
		starts = append(starts, start{fmt.Sprintf("partition %d", p.Number), p.Start})
	}
	for i := range 4 {
		e := mbr[446+16*i : 446+16*(i+1)]
		if e[4] != 0 { // a used entry (non-zero type): its first LBA is at +8
			starts = append(starts, start{fmt.Sprintf("entry %d of the partition table on disk", i+1), int64(binary.LittleEndian.Uint32(e[8:])) * SectorSize})
		}
	}
	for _, s := range starts {
		if s.at < coreEnd {
			return fmt.Errorf("%s: the GRUB core image (%d bytes from sector %d) would end at byte %d, past the start of %s at byte %d; the first partition must start at 1 MiB, as Layout places it",
				doing, len(core), coreStartSector, coreEnd, s.name, s.at)
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", doing, err)
	}
	if _, err := f.WriteAt(core, int64(coreStartSector)*SectorSize); err != nil {
		return fmt.Errorf("%s: writing the GRUB core image: %w", doing, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("%s: syncing the GRUB core image: %w", doing, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", doing, err)
	}
	if _, err := f.WriteAt(bootImg[:mbrCodeSize], 0); err != nil {
		return fmt.Errorf("%s: writing the MBR boot code: %w", doing, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("%s: syncing the MBR boot code: %w", doing, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("%s: closing the disk: %w", doing, err)
	}
	return nil
}

package diskimage

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/google/uuid"
)

// The Boot Configuration Data (BCD) store is a registry hive. Its layout,
// as documented by Microsoft's BCD WMI provider reference ("BCD Reference",
// learn.microsoft.com/previous-versions/windows/desktop/bcd/, pages
// BcdElementType, BcdLibraryElementTypes, BcdBootMgrElementTypes,
// BcdOSLoaderElementTypes) and observed in `reg export` dumps of stores:
//
//	Objects\{object GUID}\Description  Type (REG_DWORD): the object type
//	Objects\{object GUID}\Elements\<element type, 8 hex digits>  Element
//
// An element type's bits 24..27 give its format (BcdElementType), which
// fixes how the Element value is stored: 1 device (REG_BINARY, below),
// 2 string (REG_SZ), 3 object (REG_SZ "{guid}"), 4 object list
// (REG_MULTI_SZ of "{guid}"), 5 integer (REG_BINARY, 8 bytes little-endian),
// 6 boolean.
//
// Windows Setup's bcdboot builds a store the same way: it copies
// Windows\System32\config\BCD-Template (which carries the settings objects
// but no boot entries) and adds a boot manager and a loader object. cib
// cannot run bcdboot, so BuildBCDStore does it with hivexregedit.
const (
	bcdTemplatePath = `Windows\System32\config\BCD-Template`

	// bcdBootMgrGUID is the well-known {bootmgr} object.
	bcdBootMgrGUID = "{9dea862c-5cdd-4e70-acc1-f32b344d4795}"

	// Object types (Description\Type): application objects (0x1), image
	// type firmware/boot application, application type boot manager
	// (0x10100002) or OS loader (0x10200003).
	bcdTypeBootMgr  = 0x10100002
	bcdTypeOSLoader = 0x10200003

	// Element types.
	bcdElemDevice       = 0x11000001 // BcdLibraryDevice_ApplicationDevice
	bcdElemPath         = 0x12000002 // BcdLibraryString_ApplicationPath
	bcdElemDescription  = 0x12000004 // BcdLibraryString_Description
	bcdElemOSDevice     = 0x21000001 // BcdOSLoaderDevice_OSDevice
	bcdElemSystemRoot   = 0x22000002 // BcdOSLoaderString_SystemRoot
	bcdElemDefault      = 0x23000003 // BcdBootMgrObject_DefaultObject
	bcdElemDisplayOrder = 0x24000001 // BcdBootMgrObjectList_DisplayOrder
	bcdElemTimeout      = 0x25000004 // BcdBootMgrInteger_Timeout

	// bcdTimeout is the boot menu timeout in seconds, bcdboot's default.
	// With a single entry the menu is not shown, so it costs no boot time.
	bcdTimeout = 30
)

// Where the boot files go. BIOS boot: the MBR and NTFS boot code load
// \bootmgr from the active partition, which reads \Boot\BCD there. UEFI
// boot: the firmware runs \EFI\Boot\bootx64.efi (the removable-media
// default path, used since cib writes no NVRAM boot entry), which is
// bootmgfw.efi and reads \EFI\Microsoft\Boot\BCD from its own partition.
const (
	pcatBootMgrPath = `Windows\Boot\PCAT\bootmgr`
	efiBootMgrPath  = `Windows\Boot\EFI\bootmgfw.efi`
	biosBCDPath     = `Boot\BCD`
	espBootDir      = "/EFI/Microsoft/Boot"
	espFallbackDir  = "/EFI/Boot"
)

// BuildBCDStore writes at out the BCD store that boots the Windows image
// on disk d: for an MBR disk it goes to \Boot\BCD of the Windows volume
// (also the active system partition), for a GPT disk to
// \EFI\Microsoft\Boot\BCD of the ESP (InstallUEFIBoot). uefi must match
// the disk's style (BIOS boots MBR, UEFI GPT). It returns the GUID of the
// Windows Boot Loader object it created, in braces.
//
// The store is the image's own BCD-Template (the file at template, taken
// out of the image, so that the store matches the image's Windows
// version) with a boot manager object and a loader object merged in by
// hivexregedit; the loader's device and osdevice name the Windows
// partition (by disk signature and byte offset on MBR, by disk and
// partition GUID on GPT), and the boot manager's device names the system
// partition. out is written through out + ".part" and a rename.
func BuildBCDStore(ctx context.Context, template, out string, d Disk, uefi bool) (id string, err error) {
	doing := "building the BCD store from " + template
	if err := checkBootStyle(d, uefi); err != nil {
		return "", fmt.Errorf("%s: %w", doing, err)
	}
	sys := d.Windows
	if uefi {
		sys = *d.ESP
	}
	sysDevice, err := partitionDevice(d, sys)
	if err != nil {
		return "", fmt.Errorf("%s: %w", doing, err)
	}
	winDevice, err := partitionDevice(d, d.Windows)
	if err != nil {
		return "", fmt.Errorf("%s: %w", doing, err)
	}
	var t hiveTools
	if err := t.find(); err != nil {
		return "", fmt.Errorf("%s: %w", doing, err)
	}
	store := out + ".part"
	defer func() {
		if err != nil {
			_ = os.Remove(store)
		}
	}()
	if err := copyFile(template, store); err != nil {
		return "", fmt.Errorf("%s: %w", doing, err)
	}

	id = "{" + uuid.NewString() + "}"
	loaderPath, bootMgrPath := `\Windows\system32\winload.exe`, ""
	if uefi {
		loaderPath, bootMgrPath = `\Windows\system32\winload.efi`, `\EFI\Microsoft\Boot\bootmgfw.efi`
	}
	bootMgr := []bcdElement{
		{bcdElemDevice, regBinary(sysDevice)},
		{bcdElemDescription, regString("Windows Boot Manager")},
		{bcdElemDefault, regString(id)},
		{bcdElemDisplayOrder, regMultiString(id)},
		{bcdElemTimeout, regBinary(binary.LittleEndian.AppendUint64(nil, bcdTimeout))},
	}
	if bootMgrPath != "" {
		bootMgr = append(bootMgr, bcdElement{bcdElemPath, regString(bootMgrPath)})
	}
	loader := []bcdElement{
		{bcdElemDevice, regBinary(winDevice)},
		{bcdElemPath, regString(loaderPath)},
		{bcdElemDescription, regString("Windows")},
		{bcdElemOSDevice, regBinary(winDevice)},
		{bcdElemSystemRoot, regString(`\Windows`)},
	}
	const prefix = `HKEY_LOCAL_MACHINE\BCD00000000`
	regFile := store + ".reg"
	content := "Windows Registry Editor Version 5.00\n\n[" + prefix + "\\Objects]\n\n" +
		bcdObjectReg(prefix, bcdBootMgrGUID, bcdTypeBootMgr, bootMgr) +
		bcdObjectReg(prefix, id, bcdTypeOSLoader, loader)
	if err := os.WriteFile(regFile, []byte(content), 0o600); err != nil {
		return "", fmt.Errorf("%s: %w", doing, err)
	}
	defer os.Remove(regFile)
	stderr, err := runIO(ctx, t.hivexregedit, nil, io.Discard, "--merge", "--prefix", prefix, store, regFile)
	if err != nil {
		return "", toolError(ctx, "hivexregedit --merge", doing, stderr, err,
			"check that libwin-hivex-perl is installed and the image's BCD-Template is a registry hive with an Objects key")
	}
	if err := os.Rename(store, out); err != nil {
		return "", fmt.Errorf("%s: %w", doing, err)
	}
	return id, nil
}

// InstallUEFIBoot writes the UEFI boot files into the ESP (d.ESP) of the
// raw disk file d.Path with mtools: the image's boot manager bootmgfw
// (Windows\Boot\EFI\bootmgfw.efi) to \EFI\Microsoft\Boot\bootmgfw.efi and
// to \EFI\Boot\bootx64.efi (the removable-media path the firmware runs,
// since cib writes no NVRAM boot entry), and the store bcd to
// \EFI\Microsoft\Boot\BCD. Directories are created as needed and files
// there replaced, so a re-run is safe.
func InstallUEFIBoot(ctx context.Context, d Disk, bootmgfw, bcd string) error {
	doing := fmt.Sprintf("installing the UEFI boot files in %s", d.Path)
	if err := checkBootStyle(d, true); err != nil {
		return fmt.Errorf("%s: %w", doing, err)
	}
	m, err := findMtools()
	if err != nil {
		return fmt.Errorf("%s: %w", doing, err)
	}
	for _, c := range []struct{ src, dst string }{
		{bootmgfw, espBootDir + "/bootmgfw.efi"},
		{bootmgfw, espFallbackDir + "/bootx64.efi"},
		{bcd, espBootDir + "/BCD"},
	} {
		if err := m.copyIn(ctx, d.Path, *d.ESP, c.src, c.dst); err != nil {
			return fmt.Errorf("%s: %w", doing, err)
		}
	}
	return nil
}

// copyFile copies src to a new file dst.
func copyFile(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = os.Remove(dst)
		}
	}()
	_, err = io.Copy(out, in)
	return err
}

// checkBootStyle rejects a disk whose style does not fit the firmware:
// Generation 1 machines boot BIOS from MBR, Generation 2 UEFI from GPT,
// and the BCD's device elements and store location follow from that.
func checkBootStyle(d Disk, uefi bool) error {
	switch {
	case uefi && (d.Style != StyleGPT || d.ESP == nil):
		return fmt.Errorf("UEFI boot needs a GPT disk with an EFI system partition; disk %s is %q", d.Path, d.Style)
	case !uefi && d.Style != StyleMBR:
		return fmt.Errorf("BIOS boot needs an MBR disk; disk %s is %q", d.Path, d.Style)
	}
	return nil
}

// partitionDevice encodes partition p of disk d as BCD device data, the
// binary Element of device-format elements (0x11000001 device, 0x21000001
// osdevice). Microsoft does not document this structure (BcdElementType
// only says format 1 is "a boot environment device"); the layout below is
// the one bcdedit writes, as reverse-engineered in the BCD-SYS project's
// update_device.sh (github.com/jpz4085/BCD-SYS, which emits the same bytes
// for `reg import` to point 0x11000001/0x21000001 at a partition). All
// integers little-endian; 88 bytes:
//
//	0x00 16  GUID of an additional options object: zero (none)
//	0x10  4  device type: 6 = partition (BOOT_ENVIRONMENT partition_ex)
//	0x14  4  flags: 0
//	0x18  4  size of the device data from 0x10: 0x48
//	0x1C  4  reserved: 0
//	0x20 16  partition: MBR, its byte offset from the start of the disk
//	         (8 bytes, then 8 zero); GPT, its unique partition GUID
//	0x30  4  reserved: 0
//	0x34  4  partition style: 1 = MBR, 0 = GPT
//	0x38 16  disk: MBR, the 32-bit disk signature (then 12 zero); GPT, the
//	         disk GUID
//	0x48 16  zero
//
// GUIDs are in Windows' binary GUID layout (the first three fields
// little-endian), as in the GPT itself.
func partitionDevice(d Disk, p Partition) ([]byte, error) {
	le := binary.LittleEndian
	b := make([]byte, 0x58)
	le.PutUint32(b[0x10:], 6)
	le.PutUint32(b[0x18:], 0x48)
	switch d.Style {
	case StyleMBR:
		if d.Signature == 0 {
			return nil, fmt.Errorf("disk %s has no MBR disk signature", d.Path)
		}
		le.PutUint64(b[0x20:], uint64(p.Start))
		le.PutUint32(b[0x34:], 1)
		le.PutUint32(b[0x38:], d.Signature)
	case StyleGPT:
		part, err := windowsGUID(p.GUID)
		if err != nil {
			return nil, fmt.Errorf("partition %d of disk %s: %w", p.Number, d.Path, err)
		}
		disk, err := windowsGUID(d.DiskGUID)
		if err != nil {
			return nil, fmt.Errorf("disk %s: %w", d.Path, err)
		}
		copy(b[0x20:], part)
		copy(b[0x38:], disk)
	default:
		return nil, fmt.Errorf("disk %s: unknown partition style %q", d.Path, d.Style)
	}
	return b, nil
}

// windowsGUID is s in the Windows GUID binary layout: Data1, Data2 and
// Data3 little-endian, Data4 as is (RFC 4122 bytes are all big-endian).
func windowsGUID(s string) ([]byte, error) {
	u, err := uuid.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("GUID %q: %w", s, err)
	}
	b := u[:]
	return []byte{b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6],
		b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]}, nil
}

// bcdElement is one element of a BCD object: its type and the value, as
// the right-hand side of a .reg line.
type bcdElement struct {
	typ   uint32
	value string
}

// bcdObjectReg renders one BCD object as .reg sections. Every key on the
// way is given its own section, parents first, because hivexregedit
// creates a key only when its parent exists.
func bcdObjectReg(prefix, guid string, typ uint32, elems []bcdElement) string {
	var b strings.Builder
	obj := prefix + `\Objects\` + guid
	fmt.Fprintf(&b, "[%s]\n\n[%s\\Description]\n\"Type\"=dword:%08x\n\n[%s\\Elements]\n\n", obj, obj, typ, obj)
	for _, e := range elems {
		fmt.Fprintf(&b, "[%s\\Elements\\%08x]\n\"Element\"=%s\n\n", obj, e.typ, e.value)
	}
	return b.String()
}

// regBinary, regString and regMultiString render .reg values. Strings are
// written as hex(1)/hex(7) UTF-16LE, NUL-terminated, as Windows stores
// them, rather than quoted, so no backslash escaping is involved.
func regBinary(data []byte) string { return "hex:" + hexList(data) }

func regString(s string) string { return "hex(1):" + hexList(utf16z(s)) }

func regMultiString(ss ...string) string {
	var data []byte
	for _, s := range ss {
		data = append(data, utf16z(s)...)
	}
	return "hex(7):" + hexList(append(data, 0, 0))
}

func utf16z(s string) []byte {
	var b []byte
	for _, u := range utf16.Encode([]rune(s)) {
		b = binary.LittleEndian.AppendUint16(b, u)
	}
	return append(b, 0, 0)
}

func hexList(data []byte) string {
	parts := make([]string, len(data))
	for i, c := range data {
		parts[i] = fmt.Sprintf("%02x", c)
	}
	return strings.Join(parts, ",")
}

// mtools are the programs that write into the FAT32 ESP inside the raw
// disk file without mounting it: mtools addresses a partition of an image
// as FILE@@OFFSET.
type mtools struct{ mmd, mdir, mcopy string }

func findMtools() (mtools, error) {
	var m mtools
	for _, x := range []struct {
		dst  *string
		name string
	}{{&m.mmd, "mmd"}, {&m.mdir, "mdir"}, {&m.mcopy, "mcopy"}} {
		p, err := lookTool(x.name, "mtools")
		if err != nil {
			return mtools{}, err
		}
		*x.dst = p
	}
	return m, nil
}

// run runs an mtools program on the partition esp of diskPath.
// MTOOLS_SKIP_CHECK stops mtools rejecting a FAT whose BIOS geometry
// fields do not match its idea of the "drive" (a partition of a file has
// none).
func (m mtools) run(ctx context.Context, prog, diskPath string, esp Partition, args ...string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	img := diskPath + "@@" + strconv.FormatInt(esp.Start, 10)
	cmd := exec.CommandContext(ctx, prog, append([]string{"-i", img}, args...)...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "MTOOLS_SKIP_CHECK=1")
	cmd.WaitDelay = 5 * time.Second
	return cmd.CombinedOutput()
}

// copyIn copies the local file src to dst (an absolute slash path) in the
// ESP, creating the directories on the way and replacing a file there.
func (m mtools) copyIn(ctx context.Context, diskPath string, esp Partition, src, dst string) error {
	doing := fmt.Sprintf("copying %s to %s in the EFI system partition of %s", src, dst, diskPath)
	parts := strings.Split(strings.Trim(path.Dir(dst), "/"), "/")
	for i := range parts {
		dir := "::/" + strings.Join(parts[:i+1], "/")
		// mmd fails on a directory that exists; that is only an error if
		// mdir cannot list it either.
		out, err := m.run(ctx, m.mmd, diskPath, esp, dir)
		if err != nil {
			if _, lerr := m.run(ctx, m.mdir, diskPath, esp, "-b", dir); lerr != nil {
				return toolError(ctx, "mmd", doing, out, err,
					"check that mtools is installed and the ESP was formatted by Layout")
			}
		}
	}
	if out, err := m.run(ctx, m.mcopy, diskPath, esp, "-o", src, "::"+dst); err != nil {
		return toolError(ctx, "mcopy", doing, out, err, "check that the ESP has free space")
	}
	return nil
}

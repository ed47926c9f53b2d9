package diskimage

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/diskimage/diskimagetest"
)

// bcdFiles makes what BuildBCDStore and InstallUEFIBoot take: a minimal
// BCD-Template (root with an empty Objects key and a Description key named
// as Windows names it), a placeholder UEFI boot manager, and a disk laid
// out in style.
func bcdFiles(t *testing.T, style string) (d Disk, template, bootmgfw string) {
	t.Helper()
	diskimagetest.RequireHiveTools(t)
	diskimagetest.RequireTool(t, "mtools", "mcopy")
	diskimagetest.RequireTool(t, "dosfstools", "mkfs.fat")
	dir := t.TempDir()
	template = filepath.Join(dir, "BCD-Template")
	diskimagetest.WriteHive(t, template, &diskimagetest.RegKey{Name: "ROOT", Subkeys: []*diskimagetest.RegKey{{Name: "Description"}, {Name: "Objects"}}})
	// The regf writer stores only DWORDs; the KeyName string is merged in.
	reg := filepath.Join(dir, "keyname.reg")
	diskimagetest.WriteFile(t, reg, "Windows Registry Editor Version 5.00\n\n[HKEY_LOCAL_MACHINE\\BCD\\Description]\n\"KeyName\"=\"BCD00000001\"\n")
	diskimagetest.MustRun(t, "hivexregedit", "--merge", "--prefix", `HKEY_LOCAL_MACHINE\BCD`, template, reg)
	bootmgfw = filepath.Join(dir, "bootmgfw.efi")
	diskimagetest.WriteFile(t, bootmgfw, "placeholder bootmgfw.efi")
	d, err := Layout(context.Background(), filepath.Join(dir, "disk.raw"), testDiskSize, style)
	require.NoError(t, err)
	return d, template, bootmgfw
}

// regExport reads value name of key in hive through hivexregedit --export
// and decodes its .reg rendering: hex:, hex(N): or dword: data as bytes
// (a dword as 4 little-endian bytes), a quoted string as UTF-16LE with NUL.
func regExport(t *testing.T, hive, key, name string) []byte {
	t.Helper()
	out, err := exec.Command("hivexregedit", "--export", hive, key).Output()
	require.NoError(t, err, "hivexregedit --export %s", key)
	text := strings.ReplaceAll(string(out), "\\\n", "")
	for l := range strings.Lines(text) {
		v, ok := strings.CutPrefix(strings.TrimSpace(l), `"`+name+`"=`)
		if !ok {
			continue
		}
		switch {
		case strings.HasPrefix(v, "dword:"):
			n, err := strconv.ParseUint(v[6:], 16, 32)
			require.NoError(t, err)
			return binary.LittleEndian.AppendUint32(nil, uint32(n))
		case strings.HasPrefix(v, `"`):
			return utf16le(strings.Trim(v, `"`))
		default:
			_, data, _ := strings.Cut(v, ":")
			var b []byte
			for _, h := range strings.Split(strings.ReplaceAll(data, " ", ""), ",") {
				if h == "" {
					continue
				}
				x, err := hex.DecodeString(h)
				require.NoError(t, err)
				b = append(b, x...)
			}
			return b
		}
	}
	t.Fatalf("%s has no value %s:\n%s", key, name, out)
	return nil
}

func utf16le(s string) []byte {
	var b []byte
	for _, u := range utf16.Encode([]rune(s)) {
		b = binary.LittleEndian.AppendUint16(b, u)
	}
	return append(b, 0, 0)
}

// decodedDevice is a partition device element taken apart independently
// of partitionDevice.
type decodedDevice struct {
	typ, size, style uint32
	partition        [16]byte
	disk             [16]byte
}

func decodeDevice(t *testing.T, b []byte) decodedDevice {
	t.Helper()
	require.Len(t, b, 88)
	assert.Equal(t, make([]byte, 16), b[:16], "options GUID")
	var d decodedDevice
	d.typ = binary.LittleEndian.Uint32(b[16:])
	d.size = binary.LittleEndian.Uint32(b[24:])
	d.style = binary.LittleEndian.Uint32(b[52:])
	copy(d.partition[:], b[32:48])
	copy(d.disk[:], b[56:72])
	assert.Equal(t, make([]byte, 16), b[72:], "trailing bytes")
	return d
}

// guidLE is the Windows binary layout of GUID s, built by hand.
func guidLE(t *testing.T, s string) [16]byte {
	t.Helper()
	u := uuid.MustParse(s)
	var g [16]byte
	binary.LittleEndian.PutUint32(g[0:], binary.BigEndian.Uint32(u[0:]))
	binary.LittleEndian.PutUint16(g[4:], binary.BigEndian.Uint16(u[4:]))
	binary.LittleEndian.PutUint16(g[6:], binary.BigEndian.Uint16(u[6:]))
	copy(g[8:], u[8:])
	return g
}

func elemKey(obj string, typ uint32) string {
	return `\Objects\` + obj + `\Elements\` + strings.ToUpper(hex.EncodeToString(binary.BigEndian.AppendUint32(nil, typ)))
}

// checkStore checks the objects BuildBCDStore adds to the store at hive and
// returns the device elements of the boot manager and the loader.
func checkStore(t *testing.T, hive, id string, uefi bool) (bootMgrDev, loaderDev, osDev decodedDevice) {
	t.Helper()
	assert.Equal(t, []byte{0x02, 0x00, 0x10, 0x10}, regExport(t, hive, `\Objects\{9dea862c-5cdd-4e70-acc1-f32b344d4795}\Description`, "Type"))
	assert.Equal(t, []byte{0x03, 0x00, 0x20, 0x10}, regExport(t, hive, `\Objects\`+id+`\Description`, "Type"))
	bm := "{9dea862c-5cdd-4e70-acc1-f32b344d4795}"
	assert.Equal(t, utf16le(id), regExport(t, hive, elemKey(bm, 0x23000003), "Element"), "default")
	assert.Equal(t, append(utf16le(id), 0, 0), regExport(t, hive, elemKey(bm, 0x24000001), "Element"), "displayorder")
	assert.Equal(t, []byte{30, 0, 0, 0, 0, 0, 0, 0}, regExport(t, hive, elemKey(bm, 0x25000004), "Element"), "timeout")
	winload := `\Windows\system32\winload.exe`
	if uefi {
		winload = `\Windows\system32\winload.efi`
		assert.Equal(t, utf16le(`\EFI\Microsoft\Boot\bootmgfw.efi`), regExport(t, hive, elemKey(bm, 0x12000002), "Element"))
	}
	assert.Equal(t, utf16le(winload), regExport(t, hive, elemKey(id, 0x12000002), "Element"), "path")
	assert.Equal(t, utf16le(`\Windows`), regExport(t, hive, elemKey(id, 0x22000002), "Element"), "systemroot")
	assert.Equal(t, utf16le("Windows"), regExport(t, hive, elemKey(id, 0x12000004), "Element"), "description")
	bootMgrDev = decodeDevice(t, regExport(t, hive, elemKey(bm, 0x11000001), "Element"))
	loaderDev = decodeDevice(t, regExport(t, hive, elemKey(id, 0x11000001), "Element"))
	osDev = decodeDevice(t, regExport(t, hive, elemKey(id, 0x21000001), "Element"))
	for _, d := range []decodedDevice{bootMgrDev, loaderDev, osDev} {
		assert.Equal(t, uint32(6), d.typ, "device type partition")
		assert.Equal(t, uint32(0x48), d.size)
	}
	assert.Equal(t, loaderDev, osDev)
	return bootMgrDev, loaderDev, osDev
}

func TestBuildBCDStoreMBR(t *testing.T) {
	d, template, _ := bcdFiles(t, StyleMBR)
	ctx := context.Background()
	store := filepath.Join(t.TempDir(), "BCD")
	first, err := BuildBCDStore(ctx, template, store, d, false)
	require.NoError(t, err)
	// Building again replaces the store, built afresh from the template:
	// the first loader is gone.
	id, err := BuildBCDStore(ctx, template, store, d, false)
	require.NoError(t, err)
	_, err = uuid.Parse(strings.Trim(id, "{}"))
	require.NoError(t, err)
	assertEmpty(t, filepath.Dir(store), "BCD") // no .part or .reg left

	bm, loader, _ := checkStore(t, store, id, false)
	assert.NotEqual(t, first, id)
	assert.NotContains(t, ntfsOutput(t, "hivexregedit", "--export", store, `\Objects`), first)
	for _, dev := range []decodedDevice{bm, loader} {
		assert.Equal(t, uint32(1), dev.style, "MBR style")
		assert.Equal(t, uint64(d.Windows.Start), binary.LittleEndian.Uint64(dev.partition[:8]), "partition offset")
		assert.Equal(t, make([]byte, 8), dev.partition[8:])
		assert.Equal(t, d.Signature, binary.LittleEndian.Uint32(dev.disk[:4]), "disk signature")
		assert.Equal(t, make([]byte, 12), dev.disk[4:])
	}
	assert.Equal(t, uint64(1<<20), binary.LittleEndian.Uint64(loader.partition[:8]))
}

func TestBuildBCDStoreGPT(t *testing.T) {
	d, template, bootmgfw := bcdFiles(t, StyleGPT)
	ctx := context.Background()
	store := filepath.Join(t.TempDir(), "BCD")
	id, err := BuildBCDStore(ctx, template, store, d, true)
	require.NoError(t, err)
	require.NoError(t, InstallUEFIBoot(ctx, d, bootmgfw, store))

	img := d.Path + "@@" + "1048576"
	mtype := func(p string) []byte {
		cmd := exec.Command("mtype", "-i", img, "::"+p)
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
		out, err := cmd.Output()
		require.NoError(t, err, "mtype %s", p)
		return out
	}
	require.Equal(t, int64(1<<20), d.ESP.Start)
	for _, p := range []string{"/EFI/Microsoft/Boot/bootmgfw.efi", "/EFI/Boot/bootx64.efi"} {
		assert.Equal(t, "placeholder bootmgfw.efi", string(mtype(p)), p)
	}
	hive := filepath.Join(t.TempDir(), "BCD")
	require.NoError(t, os.WriteFile(hive, mtype("/EFI/Microsoft/Boot/BCD"), 0o644))
	bm, loader, _ := checkStore(t, hive, id, true)
	disk := guidLE(t, d.DiskGUID)
	for _, dev := range []decodedDevice{bm, loader} {
		assert.Equal(t, uint32(0), dev.style, "GPT style")
		assert.Equal(t, disk, dev.disk, "disk GUID")
	}
	assert.Equal(t, guidLE(t, d.Windows.GUID), loader.partition, "Windows partition GUID")
	assert.Equal(t, guidLE(t, d.ESP.GUID), bm.partition, "ESP partition GUID")

	// Installing again replaces the files (a re-run is safe).
	require.NoError(t, InstallUEFIBoot(ctx, d, bootmgfw, store))
}

func TestBuildBCDStoreFailures(t *testing.T) {
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "BCD")
	_, err := BuildBCDStore(ctx, "/nonexistent", out, Disk{Style: StyleMBR, Signature: 1}, true)
	assert.ErrorContains(t, err, "UEFI boot needs a GPT disk")
	err = InstallUEFIBoot(ctx, Disk{Style: StyleMBR}, "/nonexistent", "/nonexistent")
	assert.ErrorContains(t, err, "UEFI boot needs a GPT disk")

	d, _, _ := bcdFiles(t, StyleMBR)
	notHive := filepath.Join(t.TempDir(), "BCD-Template")
	diskimagetest.WriteFile(t, notHive, "not a registry hive")
	_, err = BuildBCDStore(ctx, notHive, out, d, false)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "hivexregedit --merge")
	assert.Contains(t, err.Error(), "BCD-Template is a registry hive")
	assertEmpty(t, filepath.Dir(out))
}

func TestPartitionDeviceKnownBytes(t *testing.T) {
	// An MBR partition at 1 MiB on disk signature 0x12345678, as bcdedit
	// stores it (see partitionDevice's references).
	b, err := partitionDevice(Disk{Style: StyleMBR, Signature: 0x12345678}, Partition{Start: 1 << 20})
	require.NoError(t, err)
	want := "00000000000000000000000000000000" +
		"06000000" + "00000000" + "48000000" + "00000000" +
		"0000100000000000" + "0000000000000000" +
		"00000000" + "01000000" +
		"78563412" + "000000000000000000000000" +
		"00000000000000000000000000000000"
	assert.Equal(t, want, hex.EncodeToString(b))
}

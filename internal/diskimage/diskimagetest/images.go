package diskimagetest

import (
	"os"
	"path/filepath"
	"testing"
)

// WindowsPlaceholders are the files every test image holds where a real
// Windows image has them (slash-separated path → content); tests that need
// real content overwrite them.
var WindowsPlaceholders = map[string]string{
	"Windows/System32/config/SYSTEM":       "placeholder SYSTEM hive",
	"Windows/System32/config/SOFTWARE":     "placeholder SOFTWARE hive",
	"Windows/System32/config/BCD-Template": "placeholder BCD template",
	"Windows/Boot/PCAT/bootmgr":            "placeholder bootmgr",
	"Users/Default/NTUSER.DAT":             "placeholder default user hive",
}

// Fixture is a small WIM shaped like a Windows install image and ISOs that
// carry it.
type Fixture struct {
	WIM      string // the original install.wim, two images
	ESD      string // the same images exported solid, as install.esd
	ISO9660  string // xorriso: ISO9660 + Joliet, sources/install.wim
	UDF      string // genisoimage -udf: UDF bridge, sources/install.wim
	ESDISO   string // UDF, sources/install.esd only
	NoWIMISO string // ISO9660, a sources/ directory without an install image
}

// BuildFixture makes the Fixture in t.TempDir(). Image 1 is "Windows 10
// Pro" (edition ID Professional), image 2 "Windows 10 Enterprise"
// (Enterprise); both hold WindowsPlaceholders. It needs wimtools, xorriso
// and genisoimage.
func BuildFixture(t testing.TB) Fixture {
	t.Helper()
	wimlib := RequireTool(t, "wimtools", "wimlib-imagex")
	xorriso := RequireTool(t, "xorriso", "xorriso")
	genisoimage := RequireTool(t, "genisoimage", "genisoimage")

	root := t.TempDir()
	win := filepath.Join(root, "image")
	for path, content := range WindowsPlaceholders {
		WriteFile(t, filepath.Join(win, filepath.FromSlash(path)), content)
	}

	f := Fixture{WIM: filepath.Join(root, "install.wim"), ESD: filepath.Join(root, "install.esd")}
	MustRun(t, wimlib, "capture", win, f.WIM, "Windows 10 Pro", "--compress=none")
	MustRun(t, wimlib, "append", win, f.WIM, "Windows 10 Enterprise")
	MustRun(t, wimlib, "info", f.WIM, "1", "--image-property", "WINDOWS/EDITIONID=Professional")
	MustRun(t, wimlib, "info", f.WIM, "2", "--image-property", "WINDOWS/EDITIONID=Enterprise")
	MustRun(t, wimlib, "export", f.WIM, "all", f.ESD, "--solid")

	isoTree := func(name string, files map[string]string) string {
		dir := filepath.Join(root, name)
		WriteFile(t, filepath.Join(dir, "setup.exe"), "placeholder setup")
		for dst, src := range files {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			WriteFile(t, filepath.Join(dir, filepath.FromSlash(dst)), string(b))
		}
		return dir
	}
	wimTree := isoTree("iso-wim", map[string]string{"sources/install.wim": f.WIM})
	esdTree := isoTree("iso-esd", map[string]string{"sources/install.esd": f.ESD})
	noWIMTree := isoTree("iso-nowim", nil)
	WriteFile(t, filepath.Join(noWIMTree, "sources", "boot.wim"), "not the install image")

	f.ISO9660 = filepath.Join(root, "iso9660.iso")
	f.UDF = filepath.Join(root, "udf.iso")
	f.ESDISO = filepath.Join(root, "esd.iso")
	f.NoWIMISO = filepath.Join(root, "nowim.iso")
	MustRun(t, xorriso, "-as", "mkisofs", "-quiet", "-o", f.ISO9660, "-V", "CIB_TEST", "-J", wimTree)
	MustRun(t, genisoimage, "-quiet", "-udf", "-o", f.UDF, wimTree)
	MustRun(t, genisoimage, "-quiet", "-udf", "-o", f.ESDISO, esdTree)
	MustRun(t, xorriso, "-as", "mkisofs", "-quiet", "-o", f.NoWIMISO, "-V", "CIB_TEST", "-J", noWIMTree)
	return f
}

// BuildWindowsWIM captures a one-image WIM ("Windows 10 Pro") shaped like a
// Windows install image, with WindowsPlaceholders and the directories real
// images have and files are put into (Windows\Panther, Windows\Temp), plus
// the files of extra (slash-separated path → content), and returns its
// path. It needs only wimtools.
func BuildWindowsWIM(t testing.TB, extra map[string][]byte) string {
	t.Helper()
	wimlib := RequireTool(t, "wimtools", "wimlib-imagex")
	root := t.TempDir()
	tree := filepath.Join(root, "image")
	for path, content := range WindowsPlaceholders {
		WriteFile(t, filepath.Join(tree, filepath.FromSlash(path)), content)
	}
	for _, d := range []string{"Windows/Panther", "Windows/Temp"} {
		if err := os.MkdirAll(filepath.Join(tree, filepath.FromSlash(d)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for path, content := range extra {
		WriteFile(t, filepath.Join(tree, filepath.FromSlash(path)), string(content))
	}
	wim := filepath.Join(root, "install.wim")
	MustRun(t, wimlib, "capture", tree, wim, "Windows 10 Pro", "--compress=none")
	return wim
}

// PipelineFixture is an installation ISO whose install.wim (one image,
// "Windows 10 Pro") holds the minimum a whole disk image build touches:
// valid SYSTEM, default-user and BCD-Template hives, the boot managers
// (FakeBootmgr as Windows\Boot\PCAT\bootmgr), Windows\Panther and
// Windows\Temp; and an ISO without an install image.
type PipelineFixture struct {
	ISO, NoWIMISO string
}

// BuildPipelineFixture makes the PipelineFixture in t.TempDir(). Since
// the ISO is only useful to a build, it first requires the programs that
// format and fill the volume (ntfs-3g, hivex, mtools, dosfstools), then
// the ones it runs itself (wimtools, xorriso).
func BuildPipelineFixture(t testing.TB) PipelineFixture {
	t.Helper()
	RequireNTFSTools(t)
	RequireHiveTools(t)
	RequireTool(t, "mtools", "mcopy")
	RequireTool(t, "dosfstools", "mkfs.fat")
	xorriso := RequireTool(t, "xorriso", "xorriso")
	dir := t.TempDir()
	read := func(p string) []byte {
		t.Helper()
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	sys, user, tmpl := filepath.Join(dir, "SYSTEM"), filepath.Join(dir, "NTUSER.DAT"), filepath.Join(dir, "BCD-Template")
	WriteHive(t, sys, TestSystemHive())
	WriteHive(t, user, &RegKey{Name: "ROOT"})
	// As diskimage's bcdImage does: the regf writer stores only DWORDs, so
	// the Description\KeyName string is merged in with hivexregedit.
	WriteHive(t, tmpl, &RegKey{Name: "ROOT", Subkeys: []*RegKey{{Name: "Description"}, {Name: "Objects"}}})
	reg := filepath.Join(dir, "keyname.reg")
	WriteFile(t, reg, "Windows Registry Editor Version 5.00\n\n[HKEY_LOCAL_MACHINE\\BCD\\Description]\n\"KeyName\"=\"BCD00000001\"\n")
	MustRun(t, "hivexregedit", "--merge", "--prefix", `HKEY_LOCAL_MACHINE\BCD`, tmpl, reg)
	wim := BuildWindowsWIM(t, map[string][]byte{
		"Windows/System32/config/SYSTEM":       read(sys),
		"Users/Default/NTUSER.DAT":             read(user),
		"Windows/System32/config/BCD-Template": read(tmpl),
		// A real-mode program that says it was loaded, so that a BIOS
		// boot of the built disk shows GRUB found and started it.
		"Windows/Boot/PCAT/bootmgr":     FakeBootmgr(),
		"Windows/Boot/EFI/bootmgfw.efi": []byte("placeholder bootmgfw.efi"),
	})
	withWIM := filepath.Join(dir, "iso-wim")
	WriteFile(t, filepath.Join(withWIM, "setup.exe"), "placeholder setup")
	WriteFile(t, filepath.Join(withWIM, "sources", "install.wim"), string(read(wim)))
	noWIM := filepath.Join(dir, "iso-nowim")
	WriteFile(t, filepath.Join(noWIM, "setup.exe"), "placeholder setup")
	WriteFile(t, filepath.Join(noWIM, "sources", "boot.wim"), "not the install image")
	f := PipelineFixture{ISO: filepath.Join(dir, "win.iso"), NoWIMISO: filepath.Join(dir, "nowim.iso")}
	MustRun(t, xorriso, "-as", "mkisofs", "-quiet", "-o", f.ISO, "-V", "CIB_TEST", "-J", withWIM)
	MustRun(t, xorriso, "-as", "mkisofs", "-quiet", "-o", f.NoWIMISO, "-V", "CIB_TEST", "-J", noWIM)
	return f
}

package diskimage

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// requireTool finds an external program the tests need. A missing tool fails
// the run in CI (where the test script installs it) and skips locally with
// the Debian package to install.
func requireTool(t *testing.T, debPackage string, names ...string) string {
	t.Helper()
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "none of " + strings.Join(names, ", ") + " on PATH: apt-get install -y " + debPackage
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// testTools returns Tools pointing at the programs found on PATH.
func testTools(t *testing.T) Tools {
	t.Helper()
	return Tools{
		SevenZip: requireTool(t, "p7zip-full (or 7zip)", "7z", "7zz"),
		Wimlib:   requireTool(t, "wimtools", "wimlib-imagex"),
	}
}

// fixture is a small WIM shaped like a Windows install image and ISOs that
// carry it.
type fixture struct {
	WIM      string // the original install.wim, two images
	ESD      string // the same images exported solid, as install.esd
	ISO9660  string // xorriso: ISO9660 + Joliet, sources/install.wim
	UDF      string // genisoimage -udf: UDF bridge, sources/install.wim
	ESDISO   string // UDF, sources/install.esd only
	NoWIMISO string // ISO9660, a sources/ directory without an install image
}

func mustRun(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// buildFixture makes the fixture in t.TempDir(). Image 1 is "Windows 10 Pro"
// (edition ID Professional), image 2 "Windows 10 Enterprise" (Enterprise).
// windowsPlaceholders are the files every test image holds where a real
// Windows image has them; tests that need real content overwrite them.
var windowsPlaceholders = map[string]string{
	"Windows/System32/config/SYSTEM":       "placeholder SYSTEM hive",
	"Windows/System32/config/SOFTWARE":     "placeholder SOFTWARE hive",
	"Windows/System32/config/BCD-Template": "placeholder BCD template",
	"Windows/Boot/PCAT/bootmgr":            "placeholder bootmgr",
	"Users/Default/NTUSER.DAT":             "placeholder default user hive",
}

func buildFixture(t *testing.T) fixture {
	t.Helper()
	wimlib := requireTool(t, "wimtools", "wimlib-imagex")
	xorriso := requireTool(t, "xorriso", "xorriso")
	genisoimage := requireTool(t, "genisoimage", "genisoimage")

	root := t.TempDir()
	win := filepath.Join(root, "image")
	for path, content := range windowsPlaceholders {
		writeFile(t, filepath.Join(win, filepath.FromSlash(path)), content)
	}

	f := fixture{WIM: filepath.Join(root, "install.wim"), ESD: filepath.Join(root, "install.esd")}
	mustRun(t, wimlib, "capture", win, f.WIM, "Windows 10 Pro", "--compress=none")
	mustRun(t, wimlib, "append", win, f.WIM, "Windows 10 Enterprise")
	mustRun(t, wimlib, "info", f.WIM, "1", "--image-property", "WINDOWS/EDITIONID=Professional")
	mustRun(t, wimlib, "info", f.WIM, "2", "--image-property", "WINDOWS/EDITIONID=Enterprise")
	mustRun(t, wimlib, "export", f.WIM, "all", f.ESD, "--solid")

	isoTree := func(name string, files map[string]string) string {
		dir := filepath.Join(root, name)
		writeFile(t, filepath.Join(dir, "setup.exe"), "placeholder setup")
		for dst, src := range files {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(dir, filepath.FromSlash(dst)), string(b))
		}
		return dir
	}
	wimTree := isoTree("iso-wim", map[string]string{"sources/install.wim": f.WIM})
	esdTree := isoTree("iso-esd", map[string]string{"sources/install.esd": f.ESD})
	noWIMTree := isoTree("iso-nowim", nil)
	writeFile(t, filepath.Join(noWIMTree, "sources", "boot.wim"), "not the install image")

	f.ISO9660 = filepath.Join(root, "iso9660.iso")
	f.UDF = filepath.Join(root, "udf.iso")
	f.ESDISO = filepath.Join(root, "esd.iso")
	f.NoWIMISO = filepath.Join(root, "nowim.iso")
	mustRun(t, xorriso, "-as", "mkisofs", "-quiet", "-o", f.ISO9660, "-V", "CIB_TEST", "-J", wimTree)
	mustRun(t, genisoimage, "-quiet", "-udf", "-o", f.UDF, wimTree)
	mustRun(t, genisoimage, "-quiet", "-udf", "-o", f.ESDISO, esdTree)
	mustRun(t, xorriso, "-as", "mkisofs", "-quiet", "-o", f.NoWIMISO, "-V", "CIB_TEST", "-J", noWIMTree)
	return f
}

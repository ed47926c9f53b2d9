// Package diskimagetest holds the fixtures the disk image tests share: a
// writer of small registry hives, a stand-in for Windows' bootmgr, install
// images and ISOs shaped like Windows ones, a payload of local packages and
// drivers, and helpers that find the external programs a build needs.
//
// It is imported only by tests (of internal/diskimage and of the packages
// that drive it, such as internal/cli), and it does not import
// internal/diskimage, so that diskimage's own tests can use it.
package diskimagetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// RequireTool finds an external program a test needs, trying names in
// order, and returns its path. A missing tool fails the test under CI=true
// (where the test script installs it, so it must never silently turn a test
// off) and skips it otherwise, naming the Debian package to install.
func RequireTool(t testing.TB, debPackage string, names ...string) string {
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

// RequireNTFSTools skips (or, under CI, fails) when ntfs-3g is missing.
func RequireNTFSTools(t testing.TB) {
	t.Helper()
	for _, name := range []string{"mkntfs", "ntfscp", "ntfsinfo", "ntfsls", "ntfscat"} {
		RequireTool(t, "ntfs-3g", name)
	}
}

// RequireHiveTools skips (or, under CI, fails) when hivex's programs are
// missing.
func RequireHiveTools(t testing.TB) {
	t.Helper()
	RequireTool(t, "libhivex-bin", "hivexget")
	RequireTool(t, "libhivex-bin", "hivexsh")
	RequireTool(t, "libwin-hivex-perl", "hivexregedit")
}

// RequireBuildTools skips (or, under CI, fails) unless every program the
// wimlib builder runs for an MBR or GPT disk is on PATH: 7-Zip, wimlib,
// ntfs-3g, hivex, mtools, dosfstools and GRUB's i386-pc tools.
func RequireBuildTools(t testing.TB) {
	t.Helper()
	RequireTool(t, "p7zip-full (or 7zip)", "7z", "7zz")
	RequireTool(t, "wimtools", "wimlib-imagex")
	RequireNTFSTools(t)
	RequireHiveTools(t)
	RequireTool(t, "mtools", "mcopy")
	RequireTool(t, "dosfstools", "mkfs.fat")
	RequireTool(t, "grub-pc-bin", "grub-mkimage")
}

// MustRun runs a program and fails the test, with its output, when it
// fails.
func MustRun(t testing.TB, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// WriteFile writes content to path, creating the folders it is in.
func WriteFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

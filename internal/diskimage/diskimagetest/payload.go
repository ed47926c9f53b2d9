package diskimagetest

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/cib-project/cib/internal/config"
)

// Payload are packages and drivers whose sources are local files, selected
// by Rule (Windows 10 x86-64 on azure, with or without GPU), and the files
// each puts on the Windows volume.
type Payload struct {
	Packages []config.Package
	Drivers  []config.Driver
	Rule     config.TargetRule
	// Files maps a volume path (slash-separated, from the volume's root)
	// to the content a build must have put there.
	Files map[string]string
}

// MakeZip writes a zip archive of files (name → content) to path and
// returns path.
func MakeZip(t testing.TB, path string, files map[string]string) string {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, content := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// BuildPayload makes the Payload's source files in t.TempDir(): tool.msi
// (a plain file with its sha256, whose first source is an amazon object
// that must not be read), modules.zip (extracted into a folder the image
// does not have) and the driver netdrv (a zip, extracted).
func BuildPayload(t testing.TB) Payload {
	t.Helper()
	dir := t.TempDir()
	rule := config.TargetRule{Cloud: []string{"azure"}, OS: []string{"Windows 10"}, Architecture: []string{"x86-64"}, GPU: []bool{true, false}}
	tool := filepath.Join(dir, "tool.msi")
	WriteFile(t, tool, "an msi package")
	sum := sha256.Sum256([]byte("an msi package"))
	modules := MakeZip(t, filepath.Join(dir, "modules.zip"), map[string]string{
		"cib-test/cib-test.psm1": "function Test-Cib {}",
		"cib-test/cib-test.psd1": "@{ ModuleVersion = '1.0' }",
	})
	driver := MakeZip(t, filepath.Join(dir, "netdrv.zip"), map[string]string{
		"netdrv/x64/netdrv.inf": "[Version]\nSignature=\"$WINDOWS NT$\"",
		"netdrv/x64/netdrv.sys": "driver binary",
	})
	return Payload{
		Packages: []config.Package{
			{Name: "tool.msi", SavePath: `windows\TEMP\tool.msi`, Target: rule,
				Sources: []config.Location{
					{Platform: "amazon", Bucket: "never", Key: "read.msi"},
					{Platform: "local", Path: tool, SHA256: hex.EncodeToString(sum[:])},
				}},
			// Into folders the image does not have.
			{Name: "modules.zip", SavePath: `Windows\System32\WindowsPowerShell\v1.0\Modules`, Extract: true, Target: rule,
				Sources: []config.Location{{Platform: "local", Path: modules}}},
		},
		Drivers: []config.Driver{
			{Name: "netdrv", InfPath: `netdrv\x64`, Extract: true, Target: rule,
				Sources: []config.Location{{Platform: "local", Path: driver}}},
		},
		Rule: rule,
		Files: map[string]string{
			"Windows/Temp/tool.msi": "an msi package",
			"Windows/System32/WindowsPowerShell/v1.0/Modules/cib-test/cib-test.psm1": "function Test-Cib {}",
			"Windows/System32/WindowsPowerShell/v1.0/Modules/cib-test/cib-test.psd1": "@{ ModuleVersion = '1.0' }",
			"Windows/Temp/drivers/netdrv/netdrv/x64/netdrv.inf":                      "[Version]\nSignature=\"$WINDOWS NT$\"",
			"Windows/Temp/drivers/netdrv/netdrv/x64/netdrv.sys":                      "driver binary",
		},
	}
}

// OfflineConfig rewrites the configuration folder dir (a copy of the
// ported config/) so that key win10-64 builds offline and small: its
// shared packages and drivers become the local ones of BuildPayload, its
// disk 1 GiB, and it takes image 1 of the test ISO (named "Windows 10
// Pro"). It returns the payload, whose Files are what the volume must
// hold.
func OfflineConfig(t testing.TB, dir string) Payload {
	t.Helper()
	pl := BuildPayload(t)
	for file, v := range map[string]any{"packages.yaml": pl.Packages, "drivers.yaml": pl.Drivers} {
		data, err := yaml.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		WriteFile(t, filepath.Join(dir, file), "---\n"+string(data))
	}
	key := filepath.Join(dir, "win10-64.yaml")
	data, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for old, new := range map[string]string{"\n    size: 64\n": "\n    size: 1\n", "\n    wimindex: 5\n": "\n    wimindex: 1\n"} {
		if !strings.Contains(s, old) {
			t.Fatalf("%s has no %q to change", key, old)
		}
		s = strings.Replace(s, old, new, 1)
	}
	WriteFile(t, key, s)
	return pl
}

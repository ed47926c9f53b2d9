package diskimage

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/config"
	"github.com/cib-project/cib/internal/diskimage/diskimagetest"
)

func TestChooseSource(t *testing.T) {
	az := config.Location{Platform: "azure", Bucket: "c", Key: "k"}
	url := config.Location{Platform: "url", URL: "https://example.com/x"}
	local := config.Location{Platform: "local", Path: "/x"}
	s3 := config.Location{Platform: "amazon", Bucket: "b", Key: "k"}
	for _, tc := range []struct {
		srcs     []config.Location
		platform string
		want     config.Location
	}{
		{[]config.Location{s3, url, az}, "azure", az},
		{[]config.Location{s3, local, url}, "azure", url},
		{[]config.Location{s3, local}, "azure", local},
		{[]config.Location{s3}, "azure", s3},
		{[]config.Location{az, local}, "local", local},
	} {
		got, err := chooseSource(tc.srcs, tc.platform)
		require.NoError(t, err)
		assert.Equal(t, tc.want, got)
	}
	_, err := chooseSource(nil, "azure")
	assert.ErrorContains(t, err, "no sources")
}

func TestVolumeRel(t *testing.T) {
	for in, want := range map[string]string{
		`Windows\Temp\x.msi`:    "Windows/Temp/x.msi",
		`C:\Windows\Temp\x.msi`: "Windows/Temp/x.msi",
		`\Windows\Temp\`:        "Windows/Temp",
	} {
		got, err := volumeRel(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{`D:\x`, `..\x`, `Windows\..\..\x`, ``, `Windows\a:b`} {
		_, err := volumeRel(bad)
		assert.Error(t, err, bad)
	}
}

func TestStagePayloadRefusesBadEntries(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain.txt")
	diskimagetest.WriteFile(t, plain, "not a zip")
	slip := diskimagetest.MakeZip(t, filepath.Join(dir, "slip.zip"), map[string]string{"../../evil.txt": "x"})
	a := diskimagetest.MakeZip(t, filepath.Join(dir, "a.zip"), map[string]string{"same.txt": "a"})
	local := func(p string) []config.Location { return []config.Location{{Platform: "local", Path: p}} }
	for _, tc := range []struct {
		name string
		sel  config.Selected
		want string
	}{
		{"not a zip", config.Selected{Packages: []config.Package{{Name: "p", SavePath: `Windows\Temp`, Extract: true, Sources: local(plain)}}},
			"package p: extracting " + plain + ` into Windows\Temp: not a zip archive`},
		{"zip slip", config.Selected{Packages: []config.Package{{Name: "p", SavePath: `Windows\Temp`, Extract: true, Sources: local(slip)}}},
			`member "../../evil.txt" would be written outside Windows\Temp`},
		{"two write one file", config.Selected{Packages: []config.Package{
			{Name: "first", SavePath: `Windows\Temp\SAME.txt`, Sources: local(plain)},
			{Name: "second", SavePath: `Windows\Temp`, Extract: true, Sources: local(a)},
		}}, `package second writes Windows\Temp\same.txt, which package first already wrote`},
		{"escaping savepath", config.Selected{Packages: []config.Package{{Name: "p", SavePath: `..\x`, Sources: local(plain)}}},
			`package p: path "..\\x" is not a path inside the Windows volume`},
		{"no sources", config.Selected{Packages: []config.Package{{Name: "p", SavePath: `Windows\Temp\x`}}},
			"package p: no sources"},
		{"driver name", config.Selected{Drivers: []config.Driver{{Name: `a\b`, Sources: local(plain)}}},
			`driver "a\\b": the name cannot be a folder name`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			_, err := StagePayload(context.Background(), &Fetcher{}, tc.sel, "azure", out)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			_, err = os.Stat(filepath.Join(filepath.Dir(out), "evil.txt"))
			assert.True(t, os.IsNotExist(err), "a member escaped")
		})
	}
}

// A driver that is not an archive keeps its file name inside its folder.
func TestStagePayloadPlainDriver(t *testing.T) {
	dir := t.TempDir()
	inf := filepath.Join(dir, "net.inf")
	diskimagetest.WriteFile(t, inf, "[Version]")
	p, err := StagePayload(context.Background(), &Fetcher{}, config.Selected{Drivers: []config.Driver{
		{Name: "net", Sources: []config.Location{{Platform: "local", Path: inf}}},
	}}, "azure", filepath.Join(dir, "out"))
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join(p.Dir, "Windows", "Temp", "drivers", "net", "net.inf"))
	require.NoError(t, err)
	assert.Equal(t, "[Version]", string(b))
	assert.Equal(t, []Placed{{Kind: "driver", Name: "net", Path: `Windows\Temp\drivers\net\net.inf`, Source: inf, Files: 1, Bytes: 9}}, p.Placed)
}

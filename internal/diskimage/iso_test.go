package diskimage

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/diskimage/diskimagetest"
)

// dirNames lists a directory so tests can check that a failed extraction
// left it exactly as it was.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	names := []string{}
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// outDir is a destination directory holding one unrelated file, so tests
// see that ExtractWIM removes only what it created.
func outDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	diskimagetest.WriteFile(t, filepath.Join(dir, "keep.txt"), "not ours")
	return dir
}

func TestExtractWIM(t *testing.T) {
	tools := testTools(t)
	f := diskimagetest.BuildFixture(t)
	want, err := os.ReadFile(f.WIM)
	require.NoError(t, err)

	for name, iso := range map[string]string{"iso9660+joliet": f.ISO9660, "udf": f.UDF} {
		t.Run(name, func(t *testing.T) {
			dir := outDir(t)
			got, err := tools.ExtractWIM(context.Background(), iso, dir)
			require.NoError(t, err)
			assert.Equal(t, filepath.Join(dir, "install.wim"), got)
			b, err := os.ReadFile(got)
			require.NoError(t, err)
			assert.True(t, bytes.Equal(want, b), "extracted WIM differs from the original")
			assert.ElementsMatch(t, []string{"install.wim", "keep.txt"}, dirNames(t, dir), "temporary directory not removed")
		})
	}
}

// TestUDFFixtureOpensAsUDF guards the premise of the UDF test: 7-Zip must
// read the genisoimage -udf image through UDF, not its ISO9660 bridge.
func TestUDFFixtureOpensAsUDF(t *testing.T) {
	tools := testTools(t)
	f := diskimagetest.BuildFixture(t)
	out, err := exec.Command(tools.SevenZip, "l", "-slt", "--", f.UDF).CombinedOutput()
	require.NoError(t, err, string(out))
	typ, paths := parseListing(out)
	assert.Equal(t, "Udf", typ)
	assert.Contains(t, paths, "sources/install.wim")
}

func TestExtractESD(t *testing.T) {
	tools := testTools(t)
	f := diskimagetest.BuildFixture(t)
	want, err := os.ReadFile(f.ESD)
	require.NoError(t, err)

	dir := outDir(t)
	got, err := tools.ExtractWIM(context.Background(), f.ESDISO, dir)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "install.esd"), got)
	b, err := os.ReadFile(got)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(want, b), "extracted ESD differs from the original")

	images, err := tools.Images(context.Background(), got)
	require.NoError(t, err)
	require.Len(t, images, 2)
	assert.Equal(t, "Windows 10 Enterprise", images[1].Name)
}

func TestExtractWIMCorruptISO(t *testing.T) {
	tools := testTools(t)
	iso := filepath.Join(t.TempDir(), "random.iso")
	junk := make([]byte, 256*1024)
	_, _ = rand.Read(junk)
	require.NoError(t, os.WriteFile(iso, junk, 0o644))

	dir := outDir(t)
	_, err := tools.ExtractWIM(context.Background(), iso, dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), iso+" is not a readable ISO image: ")
	assert.NotContains(t, err.Error(), "exit status", "7-Zip's own reason should be given")
	assert.Equal(t, []string{"keep.txt"}, dirNames(t, dir))
}

func TestExtractWIMMissingISO(t *testing.T) {
	tools := testTools(t)
	iso := filepath.Join(t.TempDir(), "absent.iso")
	dir := outDir(t)
	_, err := tools.ExtractWIM(context.Background(), iso, dir)
	require.Error(t, err)
	assert.ErrorIs(t, err, os.ErrNotExist)
	assert.Contains(t, err.Error(), iso)
	assert.Equal(t, []string{"keep.txt"}, dirNames(t, dir))
}

func TestExtractWIMNotWindowsISO(t *testing.T) {
	tools := testTools(t)
	f := diskimagetest.BuildFixture(t)
	dir := outDir(t)
	_, err := tools.ExtractWIM(context.Background(), f.NoWIMISO, dir)
	require.Error(t, err)
	assert.EqualError(t, err, f.NoWIMISO+" has no sources/install.wim or sources/install.esd: is it a Windows installation ISO?")
	assert.Equal(t, []string{"keep.txt"}, dirNames(t, dir))
}

func TestExtractWIMCancelledBeforeStart(t *testing.T) {
	tools := testTools(t)
	f := diskimagetest.BuildFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := outDir(t)
	_, err := tools.ExtractWIM(ctx, f.UDF, dir)
	require.Error(t, err)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, []string{"keep.txt"}, dirNames(t, dir))
}

// TestExtractWIMCancelledDuringExtraction cancels while 7-Zip is writing: a
// wrapper lists with the real 7-Zip but, on extraction, writes a partial
// file and hangs, as a large copy would. The partial file must not survive.
func TestExtractWIMCancelledDuringExtraction(t *testing.T) {
	tools := testTools(t)
	f := diskimagetest.BuildFixture(t)
	wrapper := filepath.Join(t.TempDir(), "slow7z")
	script := `#!/bin/sh
if [ "$1" = x ]; then
  for a in "$@"; do case "$a" in -o*) d="${a#-o}";; esac; done
  mkdir -p "$d/sources" && echo partial > "$d/sources/install.wim"
  exec sleep 60
fi
exec "` + tools.SevenZip + `" "$@"
`
	require.NoError(t, os.WriteFile(wrapper, []byte(script), 0o755))
	tools.SevenZip = wrapper

	dir := outDir(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// Cancel once the partial file exists, so cleanup is really tested.
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if m, _ := filepath.Glob(filepath.Join(dir, "*", "sources", "install.wim")); len(m) > 0 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
	}()
	start := time.Now()
	_, err := tools.ExtractWIM(ctx, f.UDF, dir)
	require.Error(t, err)
	assert.True(t, errors.Is(err, context.Canceled), "got %v", err)
	assert.Less(t, time.Since(start), 30*time.Second, "7-Zip was not killed on cancellation")
	assert.Equal(t, []string{"keep.txt"}, dirNames(t, dir))
}

func TestExtractWIMSevenZipMissing(t *testing.T) {
	dir := outDir(t)
	iso := filepath.Join(dir, "keep.txt")
	_, err := Tools{SevenZip: filepath.Join(t.TempDir(), "no-7z")}.ExtractWIM(context.Background(), iso, dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "reading "+iso+": running 7-Zip: ")
	assert.Equal(t, []string{"keep.txt"}, dirNames(t, dir))
}

package vhd

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sparseRaw creates a sparse raw disk of size bytes with data at offsets.
func sparseRaw(t testing.TB, size int64, data map[int64][]byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk.raw")
	f, err := os.Create(path)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(size))
	for off, b := range data {
		_, err := f.WriteAt(b, off)
		require.NoError(t, err)
	}
	require.NoError(t, f.Close())
	return path
}

func TestWriteFixedAndReadFixed(t *testing.T) {
	const size = 2 << 30
	path := sparseRaw(t, size, map[int64][]byte{
		0:             []byte("boot sector"),
		size / 2:      []byte("middle"),
		size - 4096:   []byte("backup gpt"),
		3*MiB - 3:     []byte("straddle"),
		1<<30 + 12345: []byte("x"),
	})
	created := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	require.NoError(t, WriteFixed(path, testID(), created))

	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, int64(size+FooterSize), fi.Size())

	f, virtual, err := ReadFixed(path)
	require.NoError(t, err)
	assert.Equal(t, int64(size), virtual)
	assert.Equal(t, uint64(size), f.CurrentSize)
	assert.Equal(t, testID(), f.UniqueID)

	// The raw contents are untouched.
	r, err := os.Open(path)
	require.NoError(t, err)
	defer r.Close()
	got := make([]byte, 6)
	_, err = r.ReadAt(got, size/2)
	require.NoError(t, err)
	assert.Equal(t, "middle", string(got))

	err = WriteFixed(path, testID(), created)
	require.Error(t, err, "a second footer must be refused")
	assert.Contains(t, err.Error(), "already ends with a VHD footer")

	qemuCheck(t, path, size)
}

// qemuCheck asks qemu-img, an independent VHD reader, about the file.
// "-f vpc" is needed because qemu only auto-detects VHDs whose first
// sector is a footer copy (dynamic disks), never fixed ones.
func qemuCheck(t *testing.T, path string, size int64) {
	t.Helper()
	qemu, err := exec.LookPath("qemu-img")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("qemu-img not found (install qemu-utils): %v", err)
		}
		t.Skipf("qemu-img not found (install qemu-utils to run this check): %v", err)
	}
	// qemu validates the footer (cookie, checksum) when opening as vpc, and
	// for a "win " creator reports the footer's size: the whole disk.
	out, err := exec.Command(qemu, "info", "-f", "vpc", "--output=json", path).Output()
	require.NoError(t, err, "qemu-img info -f vpc")
	var info struct {
		Format      string `json:"format"`
		VirtualSize int64  `json:"virtual-size"`
	}
	require.NoError(t, json.Unmarshal(out, &info), string(out))
	assert.Equal(t, "vpc", info.Format)
	assert.Equal(t, size, info.VirtualSize)
}

func TestWriteFixedRefusesPartialMiB(t *testing.T) {
	path := sparseRaw(t, 10*MiB+512, nil)
	err := WriteFixed(path, testID(), time.Now())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Azure")
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, int64(10*MiB+512), fi.Size(), "file unchanged")
}

func TestReadFixedErrors(t *testing.T) {
	t.Run("raw file", func(t *testing.T) {
		_, _, err := ReadFixed(sparseRaw(t, MiB, nil))
		require.Error(t, err)
		assert.Contains(t, err.Error(), "cookie")
	})
	t.Run("short", func(t *testing.T) {
		_, _, err := ReadFixed(sparseRaw(t, 100, nil))
		require.Error(t, err)
		assert.Contains(t, err.Error(), "shorter")
	})
	t.Run("size mismatch", func(t *testing.T) {
		f, err := NewFixedFooter(2*MiB, testID(), time.Now())
		require.NoError(t, err)
		b, err := f.MarshalBinary()
		require.NoError(t, err)
		path := sparseRaw(t, MiB+FooterSize, map[int64][]byte{MiB: b})
		_, _, err = ReadFixed(path)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "footer says")
	})
}

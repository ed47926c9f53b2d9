package diskimage

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// requireNTFSTools skips (or, in CI, fails) when ntfs-3g is missing.
func requireNTFSTools(t *testing.T) {
	t.Helper()
	for _, name := range []string{"mkntfs", "ntfscp", "ntfsinfo", "ntfsls", "ntfscat"} {
		requireTool(t, "ntfs-3g", name)
	}
}

// checkNTFSBoot asserts that b (a partition's first sector) is an NTFS boot
// sector whose hidden-sectors field is startSector.
func checkNTFSBoot(t *testing.T, b []byte, startSector int64) {
	t.Helper()
	if string(b[3:11]) != "NTFS    " {
		t.Errorf("no NTFS OEM ID at offset 3: %q", b[3:11])
	}
	if got := binary.LittleEndian.Uint32(b[0x1C:]); int64(got) != startSector {
		t.Errorf("hidden sectors (0x1C) = %d, want the partition start sector %d", got, startSector)
	}
	if got := binary.LittleEndian.Uint16(b[0x0B:]); got != SectorSize {
		t.Errorf("bytes per sector = %d, want %d", got, SectorSize)
	}
}

func readAt(t *testing.T, path string, off int64, n int) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFormatNTFS(t *testing.T) {
	requireNTFSTools(t)
	vol := filepath.Join(t.TempDir(), "windows.ntfs")
	p := Partition{Number: 3, Start: 117 << 20, Size: 64 << 20}
	if err := FormatNTFS(context.Background(), vol, p, "Windows"); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(vol)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != p.Size {
		t.Errorf("volume is %d bytes, want %d", st.Size(), p.Size)
	}
	checkNTFSBoot(t, readAt(t, vol, 0, 512), p.StartSector())
	if a := allocated(t, vol); a > p.Size/2 {
		t.Errorf("volume allocates %d of %d bytes; want it sparse", a, p.Size)
	}
	// A second format must not clobber the volume.
	if err := FormatNTFS(context.Background(), vol, p, "Windows"); err == nil {
		t.Error("FormatNTFS over an existing file succeeded")
	}
	if _, err := os.Stat(vol); err != nil {
		t.Errorf("failed FormatNTFS removed a file it did not create: %v", err)
	}
}

func TestFormatNTFSCancelled(t *testing.T) {
	requireNTFSTools(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := FormatNTFS(ctx, filepath.Join(dir, "v.ntfs"), Partition{Start: 1 << 20, Size: 64 << 20}, "W")
	if err == nil {
		t.Fatal("FormatNTFS with a cancelled context succeeded")
	}
	assertEmpty(t, dir)
}

func TestFormatNTFSFails(t *testing.T) {
	requireNTFSTools(t)
	dir := t.TempDir()
	// Too small for any NTFS volume: mkntfs refuses, and the error says so.
	err := FormatNTFS(context.Background(), filepath.Join(dir, "v.ntfs"), Partition{Start: 1 << 20, Size: 64 << 10}, "W")
	if err == nil || !strings.Contains(err.Error(), "mkntfs failed") {
		t.Fatalf("err = %v, want an mkntfs failure", err)
	}
	assertEmpty(t, dir)
}

func TestSpliceVolumeSparse(t *testing.T) {
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.raw")
	vol := filepath.Join(dir, "vol")
	p := Partition{Start: 1 << 20, Size: 8 << 20}
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, 16<<20); err != nil {
		t.Fatal(err)
	}
	// Stale bytes in the partition region must read as zero afterwards.
	f, err := os.OpenFile(disk, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xEE}, 1<<20), p.Start+4<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	v, err := os.Create(vol)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Truncate(p.Size); err != nil {
		t.Fatal(err)
	}
	if _, err := v.WriteAt([]byte("head"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := v.WriteAt([]byte("tail"), p.Size-4); err != nil {
		t.Fatal(err)
	}
	v.Close()

	if err := SpliceVolume(context.Background(), vol, disk, p); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 16<<20)
	copy(want[p.Start:], "head")
	copy(want[p.Start+p.Size-4:], "tail")
	if !bytes.Equal(got, want) {
		t.Error("disk content after splice differs from the volume at the partition offset")
	}
	if a := allocated(t, disk); a > 4<<20 {
		t.Errorf("disk allocates %d bytes after splice; want it sparse", a)
	}

	if err := SpliceVolume(context.Background(), vol, disk, Partition{Start: 1 << 20, Size: 4 << 20}); err == nil {
		t.Error("splicing a volume into a partition of another size succeeded")
	}
	if err := SpliceVolume(context.Background(), vol, disk, Partition{Start: 12 << 20, Size: 8 << 20}); err == nil {
		t.Error("splicing past the end of the disk succeeded")
	}
}

// assertEmpty fails unless dir holds nothing but the names in keep.
func assertEmpty(t *testing.T, dir string, keep ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		kept := false
		for _, k := range keep {
			kept = kept || e.Name() == k
		}
		if !kept {
			t.Errorf("left behind %s", filepath.Join(dir, e.Name()))
		}
	}
}

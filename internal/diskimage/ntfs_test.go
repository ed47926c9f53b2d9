package diskimage

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cib-project/cib/internal/diskimage/diskimagetest"
)

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
	diskimagetest.RequireNTFSTools(t)
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
	diskimagetest.RequireNTFSTools(t)
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
	diskimagetest.RequireNTFSTools(t)
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

// moveFixture writes, in dir, a 16 MiB sparse disk with data before,
// inside (stale) and after the partition p, and a volume of p.Size bytes
// with data at both ends and a hole between. It returns their paths and
// the bytes the disk must hold after the volume is moved in.
func moveFixture(t *testing.T, dir string, p Partition) (disk, vol string, want []byte) {
	t.Helper()
	const size = 16 << 20
	disk = filepath.Join(dir, "disk.raw")
	vol = filepath.Join(dir, "windows.ntfs")
	want = make([]byte, size)
	write := func(path string, size int64, data map[int64]string) {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		for off, s := range data {
			if _, err := f.WriteAt([]byte(s), off); err != nil {
				t.Fatal(err)
			}
		}
	}
	stale := string(bytes.Repeat([]byte{0xEE}, 1<<20))
	write(disk, size, map[int64]string{
		0:                         "mbr",
		512:                       "primary gpt",
		p.Start - 5:               "gap!!",
		p.Start + 2<<20:           stale, // must read as zero afterwards
		p.Start + p.Size:          "after",
		size - 512:                "backup gpt",
		p.Start + p.Size - 1<<20:  stale, // inside the partition too
		p.Start + p.Size + 1<<20:  "tail data",
		p.Start + p.Size + 2<<20:  "\x00\x00\x00\x00",
		p.Start + p.Size + 3<<20:  "more",
		p.Start + p.Size + 31<<15: "x",
	})
	for off, s := range map[int64]string{0: "mbr", 512: "primary gpt", p.Start - 5: "gap!!", p.Start + p.Size: "after", size - 512: "backup gpt",
		p.Start + p.Size + 1<<20: "tail data", p.Start + p.Size + 3<<20: "more", p.Start + p.Size + 31<<15: "x"} {
		copy(want[off:], s)
	}
	write(vol, p.Size, map[int64]string{0: "NTFS head", 3 << 20: "middle", p.Size - 4: "tail"})
	copy(want[p.Start:], "NTFS head")
	copy(want[p.Start+3<<20:], "middle")
	copy(want[p.Start+p.Size-4:], "tail")
	return disk, vol, want
}

func TestMoveVolumeIntoDisk(t *testing.T) {
	for _, tc := range []struct {
		name     string
		start    int64
		disabled bool
	}{
		{"insert-range", 1 << 20, false},
		{"forced-copy", 1 << 20, true},
		// 1 MiB + 512: no file system block size divides it, so
		// INSERT_RANGE refuses (EINVAL) and the copy runs.
		{"unaligned", 1<<20 + 512, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func(old bool) { insertRangeDisabled = old }(insertRangeDisabled)
			insertRangeDisabled = tc.disabled
			dir := t.TempDir()
			p := Partition{Number: 1, Start: tc.start, Size: 8 << 20}
			disk, vol, want := moveFixture(t, dir, p)
			inserted, err := moveVolumeIntoDisk(context.Background(), vol, disk, p)
			if err != nil {
				t.Fatal(err)
			}
			var st unix.Statfs_t
			_ = unix.Statfs(dir, &st)
			t.Logf("file system type 0x%x, block size %d: INSERT_RANGE path ran: %v", st.Type, st.Bsize, inserted)
			if inserted && (tc.disabled || tc.start%4096 != 0) {
				t.Errorf("INSERT_RANGE path ran with start %d and insertRangeDisabled %v", tc.start, tc.disabled)
			}
			if os.Getenv("CI") == "true" && st.Type == unix.EXT4_SUPER_MAGIC && !tc.disabled && tc.start%4096 == 0 && !inserted {
				t.Error("ext4 supports INSERT_RANGE but the copying path ran")
			}
			got, err := os.ReadFile(disk)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				for i := range got {
					if got[i] != want[i] {
						t.Fatalf("disk differs from the expected one first at byte %d: %q, want %q", i, got[i:min(i+16, len(got))], want[i:min(i+16, len(want))])
					}
				}
				t.Fatalf("disk is %d bytes, want %d", len(got), len(want))
			}
			if a := allocated(t, disk); a > 2<<20 {
				t.Errorf("disk allocates %d bytes; want it sparse", a)
			}
			assertEmpty(t, dir, "disk.raw") // the volume is consumed
		})
	}
}

func TestMoveVolumeIntoDiskRefuses(t *testing.T) {
	dir := t.TempDir()
	p := Partition{Number: 1, Start: 1 << 20, Size: 8 << 20}
	disk, vol, _ := moveFixture(t, dir, p)
	before := func() (d, v []byte) {
		d, err := os.ReadFile(disk)
		if err != nil {
			t.Fatal(err)
		}
		v, err = os.ReadFile(vol)
		if err != nil {
			t.Fatal(err)
		}
		return d, v
	}
	d0, v0 := before()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for name, tc := range map[string]struct {
		ctx context.Context
		p   Partition
	}{
		"wrong size": {context.Background(), Partition{Start: 1 << 20, Size: 4 << 20}},
		"past end":   {context.Background(), Partition{Start: 12 << 20, Size: 8 << 20}},
		"cancelled":  {cancelled, p},
	} {
		err := MoveVolumeIntoDisk(tc.ctx, vol, disk, tc.p)
		if err == nil || !strings.Contains(err.Error(), "splicing NTFS volume") {
			t.Errorf("%s: err = %v, want a splicing error", name, err)
		}
		if d, v := before(); !bytes.Equal(d, d0) || !bytes.Equal(v, v0) {
			t.Errorf("%s: a refused move changed the disk or the volume", name)
		}
	}
	if err := MoveVolumeIntoDisk(context.Background(), filepath.Join(dir, "missing"), disk, p); err == nil {
		t.Error("moving a missing volume succeeded")
	}
	assertEmpty(t, dir, "disk.raw", "windows.ntfs")
}

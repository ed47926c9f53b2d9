package diskimage

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/diskfs/go-diskfs/partition/mbr"

	"github.com/cib-project/cib/internal/diskimage/diskimagetest"
)

const testDiskSize = 2 << 30

// allocated is the number of bytes the file really occupies on disk.
func allocated(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Blocks * 512
}

func TestLayoutMBR(t *testing.T) {
	path := filepath.Join(t.TempDir(), "disk.raw")
	d, err := Layout(context.Background(), path, testDiskSize, StyleMBR)
	if err != nil {
		t.Fatal(err)
	}
	if d.Path != path || d.Size != testDiskSize || d.Style != StyleMBR || d.ESP != nil || d.DiskGUID != "" {
		t.Errorf("disk = %+v", d)
	}
	if d.Signature == 0 {
		t.Error("disk signature is 0")
	}
	want := Partition{Number: 1, Start: 1 << 20, Size: testDiskSize - 1<<20, Type: TypeMBRNTFS}
	if d.Windows != want || len(d.Partitions) != 1 || d.Partitions[0] != want {
		t.Errorf("partitions = %+v, windows = %+v; want one %+v", d.Partitions, d.Windows, want)
	}

	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	table, err := mbr.Read(f, SectorSize, SectorSize)
	if err != nil {
		t.Fatal(err)
	}
	var used []*mbr.Partition
	for _, p := range table.Partitions {
		if p.Type != mbr.Empty {
			used = append(used, p)
		}
	}
	if len(used) != 1 {
		t.Fatalf("read back %d partitions, want 1", len(used))
	}
	p := used[0]
	if p.Type != mbr.NTFS || !p.Bootable || p.Start != 2048 || int64(p.Size) != (testDiskSize-1<<20)/SectorSize {
		t.Errorf("read back partition %+v: want active NTFS (0x07) at sector 2048 to the end", p)
	}
	sig := make([]byte, 4)
	if _, err := f.ReadAt(sig, 440); err != nil {
		t.Fatal(err)
	}
	if got := binary.LittleEndian.Uint32(sig); got != d.Signature {
		t.Errorf("signature on disk %#08x, Disk.Signature %#08x", got, d.Signature)
	}
	if got, want := table.UUID(), fmt.Sprintf("%08x", d.Signature); got != want {
		t.Errorf("go-diskfs reads signature %s, want %s", got, want)
	}
	if a := allocated(t, path); a > 1<<20 {
		t.Errorf("disk allocates %d bytes; want it sparse", a)
	}
}

func TestLayoutGPT(t *testing.T) {
	diskimagetest.RequireTool(t, "dosfstools", "mkfs.fat")
	path := filepath.Join(t.TempDir(), "disk.raw")
	d, err := Layout(context.Background(), path, testDiskSize, StyleGPT)
	if err != nil {
		t.Fatal(err)
	}
	if d.Style != StyleGPT || d.Signature != 0 || d.DiskGUID == "" || d.ESP == nil || len(d.Partitions) != 3 {
		t.Fatalf("disk = %+v", d)
	}
	lastUsable := int64(testDiskSize/SectorSize - 34)
	want := []struct {
		start, size int64
		typ         gpt.Type
	}{
		{1 << 20, 100 << 20, gpt.EFISystemPartition},
		{101 << 20, 16 << 20, gpt.MicrosoftReserved},
		{117 << 20, (lastUsable+1)*SectorSize - 117<<20, gpt.MicrosoftBasicData},
	}
	if *d.ESP != d.Partitions[0] || d.Windows != d.Partitions[2] {
		t.Errorf("ESP %+v / Windows %+v are not partitions 1 / 3", d.ESP, d.Windows)
	}

	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	table, err := gpt.Read(f, SectorSize, SectorSize)
	if err != nil {
		t.Fatal(err)
	}
	if table.RecoveredFromBackup {
		t.Error("primary GPT invalid; read from the backup")
	}
	if !strings.EqualFold(table.GUID, d.DiskGUID) {
		t.Errorf("disk GUID on disk %s, Disk.DiskGUID %s", table.GUID, d.DiskGUID)
	}
	var used []*gpt.Partition
	for _, p := range table.Partitions {
		if p.Type != gpt.Unused {
			used = append(used, p)
		}
	}
	if len(used) != 3 {
		t.Fatalf("read back %d partitions, want 3", len(used))
	}
	for i, p := range used {
		w, dp := want[i], d.Partitions[i]
		if p.Type != w.typ || int64(p.Start)*SectorSize != w.start || int64(p.End-p.Start+1)*SectorSize != w.size {
			t.Errorf("partition %d on disk: type %s, sectors %d..%d; want %s at byte %d, %d bytes", i+1, p.Type, p.Start, p.End, w.typ, w.start, w.size)
		}
		if dp.Number != i+1 || dp.Start != w.start || dp.Size != w.size || dp.Type != string(w.typ) || !strings.EqualFold(dp.GUID, p.GUID) {
			t.Errorf("Disk.Partitions[%d] = %+v, on disk GUID %s", i, dp, p.GUID)
		}
	}
	// The ESP is FAT32: "FAT32   " at offset 82 of its boot sector, and the
	// hidden-sectors field (0x1C) is the partition's start sector.
	boot := make([]byte, 512)
	if _, err := f.ReadAt(boot, d.ESP.Start); err != nil {
		t.Fatal(err)
	}
	if string(boot[82:90]) != "FAT32   " || boot[510] != 0x55 || boot[511] != 0xAA {
		t.Errorf("ESP boot sector is not FAT32: % x", boot[:96])
	}
	if got := binary.LittleEndian.Uint32(boot[0x1C:]); int64(got) != d.ESP.StartSector() {
		t.Errorf("ESP hidden sectors %d, want %d", got, d.ESP.StartSector())
	}
	if a := allocated(t, path); a > 8<<20 {
		t.Errorf("disk allocates %d bytes; want it sparse", a)
	}
}

func TestLayoutRejects(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		size  int64
		style string
		want  string
	}{
		{0, StyleMBR, "at least 1 GiB"},
		{-1 << 30, StyleMBR, "at least 1 GiB"},
		{512 << 20, StyleGPT, "at least 1 GiB"},
		{3<<30 + 512, StyleMBR, "whole number of GiB"},
		{1 << 30, "apm", "partition style"},
	} {
		path := filepath.Join(dir, "disk.raw")
		_, err := Layout(context.Background(), path, tc.size, tc.style)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Layout(%d, %q) = %v, want error containing %q", tc.size, tc.style, err, tc.want)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("Layout(%d, %q) left %s", tc.size, tc.style, path)
		}
	}
}

func TestLayoutCancelledAndExisting(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, style := range []string{StyleMBR, StyleGPT} {
		path := filepath.Join(dir, style+".raw")
		if _, err := Layout(ctx, path, 1<<30, style); err == nil {
			t.Errorf("%s: Layout with a cancelled context succeeded", style)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("%s: Layout with a cancelled context left %s", style, path)
		}
	}
	existing := filepath.Join(dir, "existing.raw")
	diskimagetest.WriteFile(t, existing, "keep me")
	if _, err := Layout(context.Background(), existing, 1<<30, StyleMBR); err == nil {
		t.Error("Layout over an existing file succeeded")
	}
	if b, err := os.ReadFile(existing); err != nil || string(b) != "keep me" {
		t.Errorf("Layout touched an existing file: %q, %v", b, err)
	}
}

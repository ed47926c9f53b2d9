package diskimage

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cib-project/cib/internal/diskimage/diskimagetest"
)

// grubTestDir is where grub-pc-bin installs boot.img and the modules on
// Debian, the tests' platform. WriteBIOSBootCode asks grub-mkimage; the
// tests read the expected boot.img from here independently.
const grubTestDir = "/usr/lib/grub/i386-pc"

// expectedBootImg is boot.img patched as grub-bios-setup patches it for a
// hard disk with core.img at sector 1, computed here from GRUB's boot.h
// offsets independently of bootcode.go.
func expectedBootImg(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(grubTestDir, "boot.img"))
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint64(b[0x5C:], 1) // kernel sector
	b[0x64] = 0xFF                             // boot drive: the one booted from
	b[0x66], b[0x67] = 0x90, 0x90              // drive check jmp → NOPs
	return b
}

func requireGRUB(t *testing.T) {
	t.Helper()
	diskimagetest.RequireTool(t, "grub-pc-bin", "grub-mkimage")
	if _, err := os.Stat(filepath.Join(grubTestDir, "boot.img")); err != nil {
		msg := "no " + grubTestDir + "/boot.img: apt-get install -y grub-pc-bin"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// isolateTemp points TMPDIR at a fresh directory and returns it, so a test
// can check that nothing was left there.
func isolateTemp(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	return dir
}

func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("left behind in the temporary directory: %s", e.Name())
	}
}

// fillHead fills the first n bytes of the disk with random data, except
// the disk signature, partition table and 0x55AA, so that a write to the
// wrong place shows.
func fillHead(t *testing.T, path string, n int) {
	t.Helper()
	b := make([]byte, n)
	_, _ = rand.Read(b)
	copy(b[mbrSignatureOffset:SectorSize], readAt(t, path, mbrSignatureOffset, SectorSize-mbrSignatureOffset))
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, 0); err != nil {
		t.Fatal(err)
	}
}

func TestWriteBIOSBootCode(t *testing.T) {
	requireGRUB(t)
	tmp := isolateTemp(t)
	ctx := context.Background()
	disk := filepath.Join(t.TempDir(), "disk.raw")
	d, err := Layout(ctx, disk, gib, StyleMBR)
	if err != nil {
		t.Fatal(err)
	}
	// The first 2 MiB: the MBR, the gap and the partition's first MiB.
	const head = 2 << 20
	fillHead(t, disk, head)
	before := readAt(t, disk, 0, head)

	if err := WriteBIOSBootCode(ctx, disk, d); err != nil {
		t.Fatal(err)
	}
	assertEmptyDir(t, tmp)
	after := readAt(t, disk, 0, head)

	// Sector 0: the code is boot.img's, the rest is the disk's own.
	if want := expectedBootImg(t); !bytes.Equal(after[:440], want[:440]) {
		t.Errorf("MBR bytes 0..439 are not the patched boot.img:\n got % x\nwant % x", after[:440], want[:440])
	}
	if !bytes.Equal(after[440:512], before[440:512]) {
		t.Errorf("MBR bytes 440..511 (signature, partition table, 0x55AA) changed:\n got % x\nwant % x", after[440:512], before[440:512])
	}
	if got := binary.LittleEndian.Uint32(after[440:]); got != d.Signature {
		t.Errorf("disk signature = %#x, want %#x", got, d.Signature)
	}
	if after[510] != 0x55 || after[511] != 0xAA {
		t.Errorf("boot signature = % x, want 55 aa", after[510:512])
	}
	if got := binary.LittleEndian.Uint64(after[0x5C:]); got != 1 {
		t.Errorf("boot.img kernel sector (0x5C) = %d, want 1", got)
	}

	// Sector 1: diskboot.img, whose block list loads sectors 2..N at 0x820:0.
	diskboot, err := os.ReadFile(filepath.Join(grubTestDir, "diskboot.img"))
	if err != nil {
		t.Fatal(err)
	}
	sec1 := after[512:1024]
	if !bytes.Equal(sec1[:500], diskboot[:500]) {
		t.Error("sector 1 does not hold diskboot.img (the first sector of core.img)")
	}
	start := binary.LittleEndian.Uint64(sec1[500:])
	n := int(binary.LittleEndian.Uint16(sec1[508:]))
	seg := binary.LittleEndian.Uint16(sec1[510:])
	if start != 2 || seg != 0x820 || n == 0 {
		t.Errorf("diskboot block list = start %d, %d sectors, segment %#x; want start 2, segment 0x820", start, n, seg)
	}
	if !isZero(sec1[488:500]) {
		t.Error("diskboot block list has a second entry; want one")
	}
	coreEnd := (2 + n) * SectorSize // sectors 1..N+1 hold core.img
	t.Logf("core.img: %d sectors (%d bytes) at sectors 1..%d; the gap has %d", n+1, (n+1)*SectorSize, n+1, d.Windows.StartSector()-1)
	if int64(coreEnd) > d.Windows.Start {
		t.Fatalf("core.img ends at byte %d, inside the partition at %d", coreEnd, d.Windows.Start)
	}
	if isZero(after[coreEnd-SectorSize : coreEnd]) {
		t.Error("the last sector of core.img is all zero")
	}
	// Nothing else in the first 2 MiB changed, and nothing after it was
	// written (the disk was sparse there and still is).
	if !bytes.Equal(after[coreEnd:], before[coreEnd:]) {
		t.Errorf("bytes from %d (after core.img) to %d changed", coreEnd, head)
	}
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if off, err := unix.Seek(int(f.Fd()), head, unix.SEEK_DATA); !errors.Is(err, unix.ENXIO) {
		t.Errorf("data found at byte %d, past the region WriteBIOSBootCode may write (err %v)", off, err)
	}
	if st, err := f.Stat(); err != nil || st.Size() != gib {
		t.Errorf("disk size changed: %v %v", st.Size(), err)
	}

	// A re-run gives the same bytes.
	if err := WriteBIOSBootCode(ctx, disk, d); err != nil {
		t.Fatal(err)
	}
	if again := readAt(t, disk, 0, head); !bytes.Equal(again, after) {
		t.Error("a second WriteBIOSBootCode changed the disk")
	}
}

func TestWriteBIOSBootCodeRejects(t *testing.T) {
	requireGRUB(t)
	ctx := context.Background()
	disk := filepath.Join(t.TempDir(), "disk.raw")
	d, err := Layout(ctx, disk, gib, StyleMBR)
	if err != nil {
		t.Fatal(err)
	}
	const head = 2 << 20
	fillHead(t, disk, head)
	before := readAt(t, disk, 0, head)

	early := d
	early.Partitions = []Partition{{Number: 1, Start: 64 * SectorSize, Size: d.Windows.Size, Type: TypeMBRNTFS}}
	gpt := d
	gpt.Style = StyleGPT
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		d    Disk
		want string
	}{
		{"gpt", ctx, gpt, "MBR disk"},
		{"partition in the gap", ctx, early, "past the start of partition 1 at byte 32768"},
		{"no partitions", ctx, Disk{Path: disk, Style: StyleMBR}, "no partitions"},
		{"cancelled", cancelled, d, context.Canceled.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := isolateTemp(t)
			err := WriteBIOSBootCode(tc.ctx, disk, tc.d)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
			t.Log(err)
			if !bytes.Equal(readAt(t, disk, 0, head), before) {
				t.Error("a failed WriteBIOSBootCode changed the disk")
			}
			assertEmptyDir(t, tmp)
		})
	}

	// The table on disk is checked too, not only d.
	tampered := readAt(t, disk, 0, SectorSize)
	binary.LittleEndian.PutUint32(tampered[446+8:], 16)
	f, err := os.OpenFile(disk, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(tampered, 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	err = WriteBIOSBootCode(ctx, disk, d)
	if err == nil || !strings.Contains(err.Error(), "entry 1 of the partition table on disk at byte 8192") {
		t.Fatalf("err = %v, want the on-disk partition starting at sector 16 rejected", err)
	}
}

// bootMBRDisk builds an MBR disk of size bytes the way the pipeline does
// (Layout, FormatNTFS, files put on the volume, SpliceVolume,
// WriteBIOSBootCode), with the fake bootmgr at \bootmgr when withBootmgr
// is set.
func bootMBRDisk(t *testing.T, size int64, withBootmgr bool) string {
	t.Helper()
	requireGRUB(t)
	diskimagetest.RequireNTFSTools(t)
	ctx := context.Background()
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.raw")
	d, err := Layout(ctx, disk, size, StyleMBR)
	if err != nil {
		t.Fatal(err)
	}
	vol := filepath.Join(dir, "windows.ntfs")
	if err := FormatNTFS(ctx, vol, d.Windows, "Windows"); err != nil {
		t.Fatal(err)
	}
	if withBootmgr {
		local := filepath.Join(dir, "bootmgr")
		if err := os.WriteFile(local, diskimagetest.FakeBootmgr(), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := PutFile(ctx, vol, local, "bootmgr"); err != nil {
			t.Fatal(err)
		}
		logClusters(t, vol, "/bootmgr", d.Windows)
	}
	if err := SpliceVolume(ctx, vol, disk, d.Windows); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(vol); err != nil {
		t.Fatal(err)
	}
	if err := WriteBIOSBootCode(ctx, disk, d); err != nil {
		t.Fatal(err)
	}
	return disk
}

// logClusters logs where on the disk the data of file p of the volume
// lies, from ntfsinfo's run list, to show which disk regions the boot
// reads.
func logClusters(t *testing.T, vol, p string, part Partition) {
	t.Helper()
	out, err := exec.Command("ntfsinfo", "--verbose", "--file", p, vol).CombinedOutput()
	if err != nil {
		t.Fatalf("ntfsinfo %s: %v\n%s", p, err, out)
	}
	lines := strings.Split(string(out), "\n")
	for i, l := range lines {
		if strings.Contains(l, "Runlist:") && i+1 < len(lines) {
			var vcn, lcn, n int64
			if _, err := fmt.Sscanf(strings.TrimSpace(lines[i+1]), "0x%x 0x%x 0x%x", &vcn, &lcn, &n); err == nil {
				t.Logf("%s: first run at cluster %#x, disk byte %d (%.1f GiB)", p, lcn, part.Start+lcn*4096, float64(part.Start+lcn*4096)/float64(gib))
			}
			return
		}
	}
	t.Logf("%s: resident in the MFT", p)
}

// qemuBoot boots the raw disk in QEMU (TCG, a PC with SeaBIOS) with COM1
// on stdout and returns what was written to COM1. It returns when QEMU
// exits (the fake bootmgr exits through isa-debug-exit, GRUB's halt powers
// the machine off through ACPI) or, failing that, after timeout, when QEMU
// is killed; timedOut says which.
func qemuBoot(t *testing.T, disk string, timeout time.Duration) (serial string, exitCode int, timedOut bool) {
	t.Helper()
	qemu := diskimagetest.RequireTool(t, "qemu-system-x86", "qemu-system-i386")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, qemu,
		"-machine", "pc", "-accel", "tcg", "-m", "64",
		"-display", "none", "-monitor", "none", "-parallel", "none", "-nic", "none",
		"-serial", "stdio", "-no-reboot",
		"-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
		"-drive", "file="+disk+",format=raw,if=ide",
	)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	timedOut = ctx.Err() != nil
	t.Logf("qemu ran %v (err %v, timed out %v)", time.Since(start).Round(time.Millisecond), err, timedOut)
	if stderr.Len() > 0 {
		t.Logf("qemu stderr:\n%s", stderr.String())
	}
	return out.String(), cmd.ProcessState.ExitCode(), timedOut
}

// TestBIOSBootQEMU boots disks with the fake bootmgr in QEMU: a 1 GiB one,
// and a 127 GiB one (Azure's usual Windows OS disk size; sparse, so it
// costs little), where ntfscp puts bootmgr about 16 GiB in, past the
// 8 GiB that BIOS CHS addressing reaches, so GRUB must read it by LBA.
func TestBIOSBootQEMU(t *testing.T) {
	for _, size := range []int64{gib, 127 * gib} {
		t.Run(fmt.Sprintf("%dGiB", size/gib), func(t *testing.T) {
			testBIOSBoot(t, size)
		})
	}
}

func testBIOSBoot(t *testing.T, size int64) {
	disk := bootMBRDisk(t, size, true)
	serial, code, timedOut := qemuBoot(t, disk, 60*time.Second)
	t.Logf("COM1:\n%s", serial)
	if !strings.Contains(serial, diskimagetest.BootMarker) {
		t.Fatalf("the fake bootmgr did not run: no %q on COM1", diskimagetest.BootMarker)
	}
	// isa-debug-exit makes QEMU exit with (value<<1)|1: 3 for the 1 the
	// fake bootmgr writes once it has printed the marker.
	if timedOut || code != 3 {
		t.Errorf("QEMU exit status %d (timed out %v), want 3 from the fake bootmgr's isa-debug-exit", code, timedOut)
	}
}

func TestBIOSBootQEMUNoBootmgr(t *testing.T) {
	disk := bootMBRDisk(t, gib, false)
	serial, code, timedOut := qemuBoot(t, disk, 60*time.Second)
	t.Logf("COM1:\n%s", serial)
	if strings.Contains(serial, diskimagetest.BootMarker) {
		t.Fatalf("%q on COM1 from a disk without bootmgr", diskimagetest.BootMarker)
	}
	if !strings.Contains(serial, grubBootFailure) {
		t.Fatalf("no GRUB failure message %q on COM1", grubBootFailure)
	}
	// GRUB's halt powers the machine off through ACPI: QEMU exits 0.
	if timedOut || code != 0 {
		t.Errorf("QEMU exit status %d (timed out %v), want 0: GRUB did not halt (power off) after its failure message", code, timedOut)
	}
}

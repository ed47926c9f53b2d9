package diskimage

import (
	"context"
	"crypto/rand"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cib-project/cib/internal/diskimage/diskimagetest"
)

func ntfsOutput(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return string(out)
}

func TestApplyPutSplice(t *testing.T) {
	diskimagetest.RequireNTFSTools(t)
	tools := testTools(t)
	wim := diskimagetest.BuildWindowsWIM(t, nil)
	for _, style := range []string{StyleMBR, StyleGPT} {
		t.Run(style, func(t *testing.T) {
			if style == StyleGPT {
				diskimagetest.RequireTool(t, "dosfstools", "mkfs.fat")
			}
			ctx := context.Background()
			dir := t.TempDir()
			d, err := Layout(ctx, filepath.Join(dir, "disk.raw"), testDiskSize, style)
			if err != nil {
				t.Fatal(err)
			}
			vol := filepath.Join(dir, "windows.ntfs")
			if err := FormatNTFS(ctx, vol, d.Windows, "Windows"); err != nil {
				t.Fatal(err)
			}
			if err := tools.ApplyImage(ctx, wim, 1, vol); err != nil {
				t.Fatal(err)
			}

			unattend := filepath.Join(dir, "unattend.xml")
			unattendXML := `<?xml version="1.0" encoding="utf-8"?><unattend xmlns="urn:schemas-microsoft-com:unattend"/>`
			diskimagetest.WriteFile(t, unattend, unattendXML)
			pkg := filepath.Join(dir, "x.msi")
			diskimagetest.WriteFile(t, pkg, "placeholder msi")
			for src, dst := range map[string]string{
				unattend: `unattend.xml`,
				pkg:      `C:\Windows\Temp\x.msi`[3:],
			} {
				if err := PutFile(ctx, vol, src, dst); err != nil {
					t.Fatal(err)
				}
			}
			if err := PutFile(ctx, vol, unattend, `\Windows\Panther\unattend.xml`); err != nil {
				t.Fatal(err)
			}
			// Replacing a file works (a re-run puts unattend.xml again).
			if err := PutFile(ctx, vol, unattend, `Windows/Panther/unattend.xml`); err != nil {
				t.Fatal(err)
			}

			listing := ntfsOutput(t, "ntfsls", "-p", "/Windows/System32/config", vol)
			for _, name := range []string{"SYSTEM", "SOFTWARE", "BCD-Template"} {
				if !strings.Contains(listing, name) {
					t.Errorf("ntfsls of Windows/System32/config lacks %s:\n%s", name, listing)
				}
			}
			for _, p := range []string{"/unattend.xml", "/Windows/Panther/unattend.xml"} {
				if got := ntfsOutput(t, "ntfscat", vol, p); got != unattendXML {
					t.Errorf("ntfscat %s = %q, want %q", p, got, unattendXML)
				}
			}
			if got := ntfsOutput(t, "ntfscat", vol, "/Windows/Temp/x.msi"); got != "placeholder msi" {
				t.Errorf("ntfscat Windows/Temp/x.msi = %q", got)
			}

			if err := SpliceVolume(ctx, vol, d.Path, d.Windows); err != nil {
				t.Fatal(err)
			}
			checkNTFSBoot(t, readAt(t, d.Path, d.Windows.Start, 512), d.Windows.StartSector())
			if style == StyleMBR && d.Windows.StartSector() != 2048 {
				t.Errorf("MBR Windows partition starts at sector %d, want 2048", d.Windows.StartSector())
			}
			// The spliced region is the volume, byte for byte, at its start.
			if got, want := readAt(t, d.Path, d.Windows.Start, 1<<20), readAt(t, vol, 0, 1<<20); string(got) != string(want) {
				t.Error("first MiB of the Windows partition differs from the volume")
			}
			if a := allocated(t, d.Path); a > 256<<20 {
				t.Errorf("disk allocates %d bytes after splice; want it sparse", a)
			}
		})
	}
}

func TestPutFileErrors(t *testing.T) {
	diskimagetest.RequireNTFSTools(t)
	tools := testTools(t)
	wim := diskimagetest.BuildWindowsWIM(t, nil)
	ctx := context.Background()
	dir := t.TempDir()
	vol := filepath.Join(dir, "windows.ntfs")
	if err := FormatNTFS(ctx, vol, Partition{Start: 1 << 20, Size: 64 << 20}, "Windows"); err != nil {
		t.Fatal(err)
	}
	if err := tools.ApplyImage(ctx, wim, 1, vol); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "a.txt")
	diskimagetest.WriteFile(t, src, "a")
	for _, tc := range []struct{ src, dst, want string }{
		{src, `Packages\a.txt`, `directory \Packages does not exist`},
		{src, `Windows\Temp`, `is a directory`},
		{src, `\`, `must name a file`},
		{filepath.Join(dir, "missing"), `a.txt`, `no such file`},
	} {
		err := PutFile(ctx, vol, tc.src, tc.dst)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("PutFile(%s) = %v, want error containing %q", tc.dst, err, tc.want)
		}
	}
	if got := ntfsOutput(t, "ntfsls", "-p", "/Windows/Temp", vol); strings.Contains(got, "a.txt") {
		t.Errorf("a failed PutFile copied into Windows/Temp:\n%s", got)
	}
}

func TestApplyImageErrors(t *testing.T) {
	diskimagetest.RequireNTFSTools(t)
	tools := testTools(t)
	big := make([]byte, 40<<20) // random, so nothing can shrink it
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	wim := diskimagetest.BuildWindowsWIM(t, map[string][]byte{"Windows/System32/big.dll": big})
	small := Partition{Start: 1 << 20, Size: 16 << 20}
	roomy := Partition{Start: 1 << 20, Size: 128 << 20}

	t.Run("too small", func(t *testing.T) {
		dir := t.TempDir()
		vol := filepath.Join(dir, "windows.ntfs")
		if err := FormatNTFS(context.Background(), vol, small, "Windows"); err != nil {
			t.Fatal(err)
		}
		err := tools.ApplyImage(context.Background(), wim, 1, vol)
		if err == nil {
			t.Fatal("applying 40 MiB onto a 16 MiB volume succeeded")
		}
		for _, want := range []string{"wimlib-imagex apply failed", "raise image.size"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
		}
		assertEmpty(t, dir)
	})
	t.Run("missing index", func(t *testing.T) {
		dir := t.TempDir()
		vol := filepath.Join(dir, "windows.ntfs")
		if err := FormatNTFS(context.Background(), vol, roomy, "Windows"); err != nil {
			t.Fatal(err)
		}
		err := tools.ApplyImage(context.Background(), wim, 7, vol)
		if err == nil || !strings.Contains(err.Error(), "no image 7") || !strings.Contains(err.Error(), "Windows 10 Pro") {
			t.Fatalf("err = %v, want one naming index 7 and the images there are", err)
		}
		assertEmpty(t, dir)
	})
	t.Run("cancelled", func(t *testing.T) {
		dir := t.TempDir()
		vol := filepath.Join(dir, "windows.ntfs")
		if err := FormatNTFS(context.Background(), vol, roomy, "Windows"); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := tools.ApplyImage(ctx, wim, 1, vol); err == nil {
			t.Fatal("ApplyImage with a cancelled context succeeded")
		}
		assertEmpty(t, dir)
		if err := PutFile(ctx, filepath.Join(dir, "none"), wim, "x"); err == nil {
			t.Error("PutFile with a cancelled context succeeded")
		}
	})
}

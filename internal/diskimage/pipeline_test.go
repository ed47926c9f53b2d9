package diskimage

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/diskfs/go-diskfs/partition/mbr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/config"
	"github.com/cib-project/cib/internal/diskimage/diskimagetest"
	"github.com/cib-project/cib/internal/vhd"
)

// pipelinePassword is a fixed PasswordSource, so runs are reproducible.
type pipelinePassword string

func (p pipelinePassword) Password() (string, error) { return string(p), nil }

// pipelineKey copies the ported win10-64 key with a 1 GiB disk of the given
// partition style and image 1 of the fixture WIM (named "Windows 10 Pro",
// which does not end with the key's edition "Professional"). The shared
// packages and drivers are replaced by the local ones of diskimagetest.BuildPayload,
// since the ported ones live on the internet.
func pipelineKey(t *testing.T, partition string) (*config.Config, *config.Key) {
	t.Helper()
	cfg, err := config.Load("../../config")
	require.NoError(t, err)
	pl := diskimagetest.BuildPayload(t)
	cfg.Shared.Packages, cfg.Shared.Drivers = pl.Packages, pl.Drivers
	orig := cfg.Key("win10-64")
	require.NotNil(t, orig)
	k := *orig
	im := *orig.Image
	im.Size = 1
	im.Partition = partition
	k.Image = &im
	iso := *orig.ISO
	iso.WimIndex = 1
	k.ISO = &iso
	return cfg, &k
}

var pipelineNow = time.Date(2026, 11, 27, 8, 30, 0, 0, time.UTC)

func pipelineInputs(t *testing.T, partition, iso string, store Store) BuildInputs {
	t.Helper()
	cfg, k := pipelineKey(t, partition)
	return BuildInputs{
		Config: cfg, Key: k, Platform: "azure",
		Revision:    "0123456789abcdef0123456789abcdef01234567",
		Fingerprint: "fp-1",
		ISO:         config.Location{Platform: "local", Path: iso},
		WorkDir:     filepath.Join(t.TempDir(), "work"),
		Store:       store,
		Tools:       testTools(t),
		Fetcher:     &Fetcher{Retries: -1},
		Password:    pipelinePassword("Test-Password-123"),
		Now:         func() time.Time { return pipelineNow },
		Log:         t.Logf,
	}
}

var allSteps = []string{StepCheckStore, StepFetchISO, StepExtractWIM, StepChooseImage, StepPayload, StepUnattend,
	StepLayout, StepAddFiles, StepFormatNTFS, StepApplyImage, StepRegistry, StepBoot, StepPutFiles, StepSplice, StepVHD, StepStore}

// concurrent are the steps that run at the same time: the registry and
// boot steps run alongside apply-image.
var concurrent = []string{StepApplyImage, StepRegistry, StepBoot}

func stepNames(steps []StepTiming) []string {
	var names []string
	for _, s := range steps {
		names = append(names, s.Name)
	}
	return names
}

// assertNoFinalName checks that nothing of the image is in the store dir.
func assertNoFinalName(t *testing.T, storeDir, name string) {
	t.Helper()
	for _, suffix := range []string{"", ".part", ".json", ".json.part"} {
		_, err := os.Stat(filepath.Join(storeDir, filepath.FromSlash(name)) + suffix)
		assert.True(t, errors.Is(err, os.ErrNotExist), "%s%s exists in the store (err %v)", name, suffix, err)
	}
}

// windowsVolume copies the Windows partition of a built disk (raw or fixed
// VHD) out to a file, since the ntfs-3g tools take no offset, and returns
// it with the partition table go-diskfs reads.
func windowsVolume(t *testing.T, diskPath, style string) (vol string, start, size int64) {
	t.Helper()
	f, err := os.Open(diskPath)
	require.NoError(t, err)
	defer f.Close()
	if style == StyleMBR {
		table, err := mbr.Read(f, SectorSize, SectorSize)
		require.NoError(t, err)
		p := table.Partitions[0]
		require.Equal(t, mbr.NTFS, p.Type)
		require.True(t, p.Bootable)
		start, size = int64(p.Start)*SectorSize, int64(p.Size)*SectorSize
	} else {
		table, err := gpt.Read(f, SectorSize, SectorSize)
		require.NoError(t, err)
		var types []gpt.Type
		for _, p := range table.Partitions {
			if p.Type != gpt.Unused {
				types = append(types, p.Type)
			}
			if p.Type == gpt.MicrosoftBasicData {
				start, size = int64(p.Start)*SectorSize, int64(p.End-p.Start+1)*SectorSize
			}
		}
		require.Equal(t, []gpt.Type{gpt.EFISystemPartition, gpt.MicrosoftReserved, gpt.MicrosoftBasicData}, types)
	}
	require.NotZero(t, size)
	vol = filepath.Join(t.TempDir(), "windows.ntfs")
	out, err := os.Create(vol)
	require.NoError(t, err)
	defer out.Close()
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(buf)) {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), size-off)], start+off)
		require.NoError(t, err)
		if !isZero(buf[:n]) {
			_, err = out.WriteAt(buf[:n], off)
			require.NoError(t, err)
		}
	}
	require.NoError(t, out.Truncate(size))
	return vol, start, size
}

// checkBuiltDisk looks inside a built disk without mounting it: the files
// the build put on the Windows volume, the registry edits, and the BCD
// store with the boot manager.
func checkBuiltDisk(t *testing.T, in BuildInputs, diskPath string) {
	t.Helper()
	style := strings.ToLower(in.Key.Image.Partition)
	vol, _, _ := windowsVolume(t, diskPath, style)
	cat := func(p string) string { return ntfsOutput(t, "ntfscat", vol, p) }

	doc := cat("/unattend.xml")
	assert.Equal(t, doc, cat("/Windows/Panther/unattend.xml"))
	assert.Contains(t, doc, "<ComputerName>cib-0123456</ComputerName>")
	assert.Contains(t, doc, `<Path>C:\Windows\Temp\drivers\netdrv\netdrv\x64</Path>`)
	assert.NotContains(t, doc, "REDACTED")
	for p, want := range diskimagetest.BuildPayload(t).Files {
		assert.Equal(t, want, cat("/"+p), p)
	}
	// Added into the image's own Windows\Temp, not a second one.
	assert.Equal(t, 1, strings.Count(strings.ToLower(ntfsOutput(t, "ntfsls", "-p", "/Windows", vol)), "temp\n"))

	sys := hiveFromVolume(t, vol, "/Windows/System32/config/SYSTEM")
	got, ok := hiveValue(t, sys, `\ControlSet001\Control\Terminal Server`, "fDenyTSConnections")
	assert.True(t, ok)
	assert.Equal(t, "0", got, "RDP on")
	edits := EditsFor(in.Key, in.Config.Select(in.Key, in.Platform))
	require.NotEmpty(t, edits.DisabledServices)
	for _, svc := range []string{"WinDefend", "Sense"} {
		want, _ := hiveValue(t, sys, `\ControlSet001\Services\`+svc, "Start")
		for _, d := range edits.DisabledServices {
			if strings.EqualFold(d, svc) {
				want = "4"
			}
		}
		got, _ := hiveValue(t, sys, `\ControlSet001\Services\`+svc, "Start")
		assert.Equal(t, want, got, svc)
	}
	user := hiveFromVolume(t, vol, "/Users/Default/NTUSER.DAT")
	got, _ = hiveValue(t, user, `\Software\Policies\Microsoft\Windows\Explorer`, "DisableNotificationCenter")
	assert.Equal(t, "1", got, "notification centre off on Windows 10")

	hive := filepath.Join(t.TempDir(), "BCD")
	uefi := style == StyleGPT
	if uefi {
		cmd := exec.Command("mtype", "-i", diskPath+"@@1048576", "::/EFI/Microsoft/Boot/BCD")
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
		b, err := cmd.Output()
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(hive, b, 0o644))
	} else {
		assert.Equal(t, string(diskimagetest.FakeBootmgr()), cat("/bootmgr"))
		// The whole disk boots as a BIOS boots it: MBR code, GRUB's core
		// image, \bootmgr from the NTFS volume.
		serial, code, timedOut := qemuBoot(t, diskPath, 60*time.Second)
		assert.False(t, timedOut)
		assert.Contains(t, serial, diskimagetest.BootMarker)
		assert.Equal(t, 3, code, "the fake bootmgr exits QEMU with 3")
		require.NoError(t, os.WriteFile(hive, []byte(cat("/Boot/BCD")), 0o644))
	}
	def := regExport(t, hive, elemKey("{9dea862c-5cdd-4e70-acc1-f32b344d4795}", 0x23000003), "Element")
	id := string(utf16.Decode(func() []uint16 {
		u := make([]uint16, len(def)/2)
		for i := range u {
			u[i] = binary.LittleEndian.Uint16(def[2*i:])
		}
		return u
	}()))
	checkStore(t, hive, strings.TrimRight(id, "\x00"), uefi)
}

func TestBuild(t *testing.T) {
	diskimagetest.RequireTool(t, "qemu-utils", "qemu-img")
	f := diskimagetest.BuildPipelineFixture(t)
	for _, partition := range []string{"MBR", "GPT"} {
		t.Run(partition, func(t *testing.T) {
			ctx := context.Background()
			store := LocalStore{Dir: t.TempDir()}
			in := pipelineInputs(t, partition, f.ISO, store)

			res, err := Build(ctx, in)
			require.NoError(t, err)
			assert.False(t, res.Skipped)
			assert.Equal(t, "vhd/2026-11-27/0123456-azure-windows10-professional-en-us-x86-64-fixed.vhd", res.Name)
			assert.Equal(t, allSteps, stepNames(res.Steps))
			assertEmpty(t, in.WorkDir)

			path := filepath.Join(store.Dir, filepath.FromSlash(res.Name))
			_, size, err := vhd.ReadFixed(path)
			require.NoError(t, err)
			assert.Equal(t, int64(1<<30), size)
			assert.Equal(t, int64(1<<30)+vhd.FooterSize, res.Size)
			out, err := exec.Command("qemu-img", "info", "-f", "vpc", "--output", "json", path).Output()
			require.NoError(t, err)
			var info struct {
				VirtualSize int64  `json:"virtual-size"`
				Format      string `json:"format"`
			}
			require.NoError(t, json.Unmarshal(out, &info))
			assert.Equal(t, "vpc", info.Format)
			assert.Equal(t, int64(1<<30), info.VirtualSize)
			checkBuiltDisk(t, in, path)
			assert.Equal(t, []string{"tool.msi", "modules.zip", "netdrv"}, func() (names []string) {
				for _, p := range res.Placed {
					names = append(names, p.Name)
				}
				return names
			}())

			ok, md, err := store.Exists(ctx, res.Name)
			require.NoError(t, err)
			assert.True(t, ok)
			assert.Equal(t, map[string]string{"fingerprint": "fp-1", "revision": in.Revision, "key": "win10-64"}, md)

			m := res.Manifest
			assert.Equal(t, ManifestBuild{Date: "2026-11-27", Time: "08:30:00", Revision: in.Revision}, m.Build)
			assert.Equal(t, ManifestImage{Platform: "azure", Container: store.Dir, Key: res.Name, Size: res.Size, Fingerprint: "fp-1"}, m.Image)
			assert.Equal(t, ManifestSource{Platform: "local", Key: in.ISO.Path}, m.Source)
			js, err := m.JSON()
			require.NoError(t, err)
			assert.Contains(t, string(js), `"key": "`+res.Name+`"`)
			assert.Contains(t, string(res.UnattendRedacted), "REDACTED")
			assert.NotContains(t, string(res.UnattendRedacted), "Test-Password-123")

			// Same fingerprint: skipped before anything touches WorkDir.
			in2 := in
			in2.WorkDir = filepath.Join(t.TempDir(), "never-created")
			res2, err := Build(ctx, in2)
			require.NoError(t, err)
			assert.True(t, res2.Skipped)
			assert.Equal(t, res.Name, res2.Name)
			assert.Equal(t, []string{StepCheckStore}, stepNames(res2.Steps))
			_, err = os.Stat(in2.WorkDir)
			assert.True(t, errors.Is(err, os.ErrNotExist), "skipped build touched WorkDir")

			// Overwrite: rebuilt and replaced.
			before, err := os.Stat(path)
			require.NoError(t, err)
			in3 := in
			in3.Overwrite = true
			res3, err := Build(ctx, in3)
			require.NoError(t, err)
			assert.False(t, res3.Skipped)
			assert.Equal(t, allSteps, stepNames(res3.Steps))
			after, err := os.Stat(path)
			require.NoError(t, err)
			assert.False(t, os.SameFile(before, after), "overwrite did not replace the image")
			assertEmpty(t, in3.WorkDir)
			assertEmpty(t, filepath.Dir(path), filepath.Base(path), filepath.Base(path)+".json")
		})
	}
}

// failingStore is a LocalStore whose Put always fails.
type failingStore struct{ LocalStore }

func (failingStore) Put(context.Context, string, string, map[string]string) error {
	return errors.New("upload refused")
}

func TestBuildFailures(t *testing.T) {
	f := diskimagetest.BuildPipelineFixture(t)
	cases := []struct {
		name  string
		setup func(t *testing.T, in *BuildInputs) (context.Context, context.CancelFunc)
		step  string
		want  string // more of the message, when it matters
	}{
		{"no such wimindex", func(t *testing.T, in *BuildInputs) (context.Context, context.CancelFunc) {
			in.Key.ISO.WimIndex = 5
			return context.WithCancel(context.Background())
		}, StepChooseImage, ""},
		{"ISO without install.wim", func(t *testing.T, in *BuildInputs) (context.Context, context.CancelFunc) {
			in.ISO.Path = f.NoWIMISO
			return context.WithCancel(context.Background())
		}, StepExtractWIM, ""},
		{"store put fails", func(t *testing.T, in *BuildInputs) (context.Context, context.CancelFunc) {
			in.Store = failingStore{in.Store.(LocalStore)}
			return context.WithCancel(context.Background())
		}, StepStore, ""},
		{"package checksum mismatch", func(t *testing.T, in *BuildInputs) (context.Context, context.CancelFunc) {
			in.Config.Shared.Packages[0].Sources[1].SHA256 = strings.Repeat("0", 64)
			return context.WithCancel(context.Background())
		}, StepPayload, ""},
		{"wimlib fails to add the payload", func(t *testing.T, in *BuildInputs) (context.Context, context.CancelFunc) {
			// A wimlib-imagex that fails on update and runs the real one
			// otherwise.
			real := in.Tools.Wimlib
			fake := filepath.Join(t.TempDir(), "wimlib-imagex")
			diskimagetest.WriteFile(t, fake, "#!/bin/sh\nif [ \"$1\" = update ]; then echo 'disk full' >&2; exit 47; fi\nexec "+real+" \"$@\"\n")
			require.NoError(t, os.Chmod(fake, 0o755))
			in.Tools.Wimlib = fake
			return context.WithCancel(context.Background())
		}, StepAddFiles, ""},
		{"disk too small for the image", func(t *testing.T, in *BuildInputs) (context.Context, context.CancelFunc) {
			// A wimlib-imagex that says the image holds 5 GiB of files,
			// more than the 1 GiB disk: refused before anything is applied.
			real := in.Tools.Wimlib
			fake := filepath.Join(t.TempDir(), "wimlib-imagex")
			diskimagetest.WriteFile(t, fake, "#!/bin/sh\n"+
				"if [ \"$1\" = info ]; then "+real+" \"$@\" | sed 's/^Total Bytes:.*/Total Bytes:                5368709120/'; exit 0; fi\n"+
				"exec "+real+" \"$@\"\n")
			require.NoError(t, os.Chmod(fake, 0o755))
			in.Tools.Wimlib = fake
			in.Log = func(format string, args ...any) {
				t.Logf(format, args...)
				if len(args) > 0 && args[0] == StepApplyImage {
					t.Error("the apply ran")
				}
			}
			return context.WithCancel(context.Background())
		}, StepLayout, `image 1: "Windows 10 Pro" holds 5.0 GiB of files, more than the 0.9 GiB Windows partition of a 1 GiB disk: raise image.size in ../../config/win10-64.yaml`},
		{"registry edit fails while the image is applied", func(t *testing.T, in *BuildInputs) (context.Context, context.CancelFunc) {
			// A wimlib-imagex whose extract leaves a SYSTEM that is not a
			// hive, and whose apply takes its time: the registry step
			// fails first and the apply is stopped.
			real := in.Tools.Wimlib
			fake := filepath.Join(t.TempDir(), "wimlib-imagex")
			diskimagetest.WriteFile(t, fake, "#!/bin/sh\n"+
				"if [ \"$1\" = apply ]; then exec sleep 30; fi\n"+
				real+" \"$@\" || exit $?\n"+
				"if [ \"$1\" = extract ]; then for a in \"$@\"; do case $a in --dest-dir=*) echo garbage > \"${a#--dest-dir=}/SYSTEM\";; esac; done; fi\n")
			require.NoError(t, os.Chmod(fake, 0o755))
			in.Tools.Wimlib = fake
			return context.WithCancel(context.Background())
		}, StepRegistry, ""},
	}
	// Cancelled after any step (what a cancelled job does): the error
	// names the step that did not run, or for the steps that run alongside
	// apply-image the one the cancellation stopped; nothing is left.
	for i := 1; i < len(allSteps); i++ {
		after, next := allSteps[i-1], allSteps[i]
		if slices.Contains(concurrent, after) {
			next = "(" + strings.Join(append(slices.Clone(concurrent), StepPutFiles), "|") + ")"
		}
		cases = append(cases, struct {
			name  string
			setup func(t *testing.T, in *BuildInputs) (context.Context, context.CancelFunc)
			step  string
			want  string
		}{"cancelled before " + next, func(t *testing.T, in *BuildInputs) (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			in.Log = func(format string, args ...any) {
				t.Logf(format, args...)
				if strings.HasSuffix(format, " done in %s") && args[0] == after {
					cancel()
				}
			}
			return ctx, cancel
		}, next, ""})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			storeDir := t.TempDir()
			in := pipelineInputs(t, "GPT", f.ISO, LocalStore{Dir: storeDir})
			ctx, cancel := c.setup(t, &in)
			defer cancel()
			res, err := Build(ctx, in)
			require.Error(t, err)
			assert.Regexp(t, "step "+c.step+":", err.Error())
			assert.Contains(t, err.Error(), c.want)
			assert.Equal(t, Manifest{}, res.Manifest, "manifest returned for a failed build")
			assertEmpty(t, in.WorkDir)
			assertNoFinalName(t, storeDir, res.Name)
		})
	}
}

func TestBuildRejectsInputs(t *testing.T) {
	in := pipelineInputs(t, "MBR", "x.iso", LocalStore{Dir: t.TempDir()})
	in.Key.Image.Partition = "APM"
	_, err := Build(context.Background(), in)
	assert.ErrorContains(t, err, `image.partition "APM"`)
	in = pipelineInputs(t, "MBR", "x.iso", LocalStore{Dir: t.TempDir()})
	in.Fingerprint = ""
	_, err = Build(context.Background(), in)
	assert.ErrorContains(t, err, "no fingerprint")
	in = pipelineInputs(t, "MBR", "x.iso", LocalStore{Dir: t.TempDir()})
	in.Builder = "packer"
	_, err = Build(context.Background(), in)
	assert.ErrorContains(t, err, `unknown builder "packer" (use wimlib or dism)`)
	_, err = os.Stat(in.WorkDir)
	assert.True(t, errors.Is(err, os.ErrNotExist))
}

func TestLocalStore(t *testing.T) {
	ctx := context.Background()
	s := LocalStore{Dir: t.TempDir()}
	src := filepath.Join(t.TempDir(), "disk")
	data := make([]byte, 3*localChunk+100)
	copy(data[localChunk+5:], "some data")
	data[len(data)-1] = 7
	require.NoError(t, os.WriteFile(src, data, 0o644))

	ok, _, err := s.Exists(ctx, "vhd/a/b.vhd")
	require.NoError(t, err)
	assert.False(t, ok)

	require.NoError(t, s.Put(ctx, src, "vhd/a/b.vhd", map[string]string{"fingerprint": "x"}))
	got, err := os.ReadFile(filepath.Join(s.Dir, "vhd", "a", "b.vhd"))
	require.NoError(t, err)
	assert.Equal(t, data, got)
	ok, md, err := s.Exists(ctx, "vhd/a/b.vhd")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, map[string]string{"fingerprint": "x"}, md)
	assertEmpty(t, filepath.Join(s.Dir, "vhd", "a"), "b.vhd", "b.vhd.json")

	// An image without its sidecar is there but has no fingerprint.
	require.NoError(t, os.Remove(filepath.Join(s.Dir, "vhd", "a", "b.vhd.json")))
	ok, md, err = s.Exists(ctx, "vhd/a/b.vhd")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Nil(t, md)

	for _, bad := range []string{"../escape.vhd", "/abs.vhd", ""} {
		assert.Error(t, s.Put(ctx, src, bad, nil), bad)
		_, _, err := s.Exists(ctx, bad)
		assert.Error(t, err, bad)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	err = s.Put(cancelled, src, "vhd/c.vhd", nil)
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "vhd/c.vhd"))
	assertNoFinalName(t, s.Dir, "vhd/c.vhd")
}

package diskimage_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/config"
	"github.com/cib-project/cib/internal/diskimage"
	"github.com/cib-project/cib/internal/diskimage/diskimagetest"
	"github.com/cib-project/cib/internal/vhd"
)

// fakePwsh is a stand-in for PowerShell, since no Windows host (and no
// pwsh) is here: a shell script that checks it was called the way the dism
// builder calls PowerShell, with a script that names the VHD, the WIM and a
// payload tree holding unattend.xml and the driver, then does what mode
// says. It appends its arguments to calls, one call a line.
//
// Modes: ok (prints, writes the fixed VHD template to the script's VHD
// path), fail (prints, exits 1), novhd (exits 0 having written nothing),
// small (writes the small VHD template), garbage (writes a file that is no
// VHD), hang (writes its pid to pidFile, says it waits, and sleeps).
const fakePwsh = `#!/bin/sh
set -u
echo "$*" >> '@CALLS@'
fail() { echo "fake pwsh: $*" >&2; exit 99; }
[ "$#" -eq 7 ] || fail "want 7 arguments, got $#: $*"
[ "$1 $2 $3 $4 $5 $6" = "-NoLogo -NoProfile -NonInteractive -ExecutionPolicy Bypass -File" ] || fail "flags: $*"
script=$7
[ -f "$script" ] || fail "no script $script"
case "$script" in
*/cleanup-disk.ps1)
	grep -q "'detach vdisk'" "$script" || fail "the cleanup script does not detach"
	echo "cleaned up"
	exit 0 ;;
esac
head -c 3 "$script" | od -An -tx1 | grep -q 'ef bb bf' || fail "the script has no UTF-8 byte order mark"
value() { sed -n "s/^\\\$$1 = '\\(.*\\)'\$/\\1/p" "$script"; }
vhd=$(value Vhd); wim=$(value Wim); payload=$(value Payload); temp=$(value Temp)
[ -n "$vhd" ] || fail "the script names no VHD"
[ -f "$wim" ] || fail "no WIM at '$wim'"
[ -d "$temp" ] || fail "no scratch folder '$temp'"
for f in unattend.xml Windows/Panther/unattend.xml windows/TEMP/tool.msi; do
	[ -f "$payload/$f" ] || fail "the payload has no $f"
done
[ -d "$payload/Windows/Temp/drivers/netdrv" ] || fail "the payload has no driver folder"
grep -q '& dism.exe /Apply-Image' "$script" || fail "no dism /Apply-Image"
grep -q "Join-Path \"\${W}:\\\\\" 'Windows\\\\Temp\\\\drivers\\\\netdrv'" "$script" || fail "no driver netdrv"
printf 'Deployment Image Servicing and Management tool\r\n'
printf '[====      10.0%%      ]\r[=====     50.0%%      ]\r[==========100.0%%==========]\r\n'
echo "The operation completed successfully."
case '@MODE@' in
ok) cp --sparse=always '@VHD@' "$vhd" ;;
small) cp '@SMALL@' "$vhd" ;;
garbage) echo "not a disk" > "$vhd" ;;
novhd) ;;
fail) echo "Error: 0x80070005 Access is denied." >&2; exit 1 ;;
hang) echo $$ > '@PID@'; echo "waiting for dism"; exec sleep 60 ;;
esac
echo "done"
`

// writeFixedVHD writes a sparse fixed VHD of size bytes at path.
func writeFixedVHD(t *testing.T, path string, size int64) {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(size))
	require.NoError(t, f.Close())
	require.NoError(t, vhd.WriteFixed(path, [16]byte{1, 2, 3}, time.Now()))
}

// dismBuildInputs are the inputs of a dism build of win10-64 (1 GiB, the
// local payload of diskimagetest) whose PowerShell is a fakePwsh in mode.
// calls is the file the fake records its calls in.
func dismBuildInputs(t *testing.T, mode string) (in diskimage.BuildInputs, storeDir, calls, pidFile string) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("the PowerShell stand-in is a shell script")
	}
	diskimagetest.RequireTool(t, "coreutils", "od")
	sevenZip := diskimagetest.RequireTool(t, "p7zip-full (or 7zip)", "7z", "7zz")
	wimlib := diskimagetest.RequireTool(t, "wimtools", "wimlib-imagex")
	dir := t.TempDir()
	fixture := diskimagetest.BuildFixture(t)
	// Fixed VHD templates the fake copies: the right size, and too small.
	template, small := filepath.Join(dir, "template.vhd"), filepath.Join(dir, "small.vhd")
	writeFixedVHD(t, template, 1<<30)
	writeFixedVHD(t, small, 2<<20)

	calls, pidFile = filepath.Join(dir, "calls"), filepath.Join(dir, "pid")
	fake := filepath.Join(dir, "pwsh")
	script := strings.NewReplacer("@CALLS@", calls, "@MODE@", mode, "@VHD@", template, "@SMALL@", small, "@PID@", pidFile).Replace(fakePwsh)
	require.NoError(t, os.WriteFile(fake, []byte(script), 0o755))

	cfg, err := config.Load("../../config")
	require.NoError(t, err)
	pl := diskimagetest.BuildPayload(t)
	cfg.Shared.Packages, cfg.Shared.Drivers = pl.Packages, pl.Drivers
	orig := cfg.Key("win10-64")
	require.NotNil(t, orig)
	k := *orig
	im := *orig.Image
	im.Size = 1
	k.Image = &im
	iso := *orig.ISO
	iso.WimIndex = 1
	k.ISO = &iso
	storeDir = filepath.Join(dir, "store")
	in = diskimage.BuildInputs{
		Config: cfg, Key: &k, Platform: "azure",
		Revision:    "0123456789abcdef0123456789abcdef01234567",
		Fingerprint: "fp-dism",
		ISO:         config.Location{Platform: "local", Path: fixture.ISO9660},
		WorkDir:     filepath.Join(dir, "work"),
		Store:       diskimage.LocalStore{Dir: storeDir},
		Builder:     diskimage.BuilderDism,
		Tools:       diskimage.Tools{SevenZip: sevenZip, Wimlib: wimlib, PowerShell: fake},
		Fetcher:     &diskimage.Fetcher{Retries: -1},
		Password:    dismPassword("Test-Password-123"),
		Now:         func() time.Time { return time.Date(2026, 11, 27, 8, 30, 0, 0, time.UTC) },
		Log:         t.Logf,
	}
	return in, storeDir, calls, pidFile
}

type dismPassword string

func (p dismPassword) Password() (string, error) { return string(p), nil }

var dismSteps = []string{diskimage.StepCheckStore, diskimage.StepFetchISO, diskimage.StepExtractWIM, diskimage.StepChooseImage,
	diskimage.StepPayload, diskimage.StepUnattend, diskimage.StepDismScript, diskimage.StepDismRun, diskimage.StepVHD, diskimage.StepStore}

// logged collects the lines Build logs, and calls each on them.
type logged struct {
	mu    sync.Mutex
	lines []string
}

func (l *logged) logf(t *testing.T, on func(string)) func(string, ...any) {
	return func(format string, args ...any) {
		s := strings.TrimSpace(fmt.Sprintf(format, args...))
		t.Log(s)
		l.mu.Lock()
		l.lines = append(l.lines, s)
		l.mu.Unlock()
		if on != nil {
			on(s)
		}
	}
}

func (l *logged) all() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func assertDirEmpty(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.Empty(t, names, "left in %s", dir)
}

// assertNothingStored checks that the store holds no file at all, under
// the final name or a temporary one.
func assertNothingStored(t *testing.T, storeDir string) {
	t.Helper()
	var files []string
	_ = filepath.WalkDir(storeDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	assert.Empty(t, files, "stored after a failed build")
}

func TestBuildDism(t *testing.T) {
	in, storeDir, calls, _ := dismBuildInputs(t, "ok")
	var log logged
	in.Log = log.logf(t, nil)
	ctx := context.Background()
	res, err := diskimage.Build(ctx, in)
	require.NoError(t, err)
	assert.False(t, res.Skipped)
	var names []string
	for _, s := range res.Steps {
		names = append(names, s.Name)
	}
	assert.Equal(t, dismSteps, names)
	assertDirEmpty(t, in.WorkDir)

	// the script's output is in the log, line by line, the progress bar
	// once it is done
	out := log.all()
	for _, l := range []string{"dism: Deployment Image Servicing and Management tool", "dism: [==========100.0%==========]", "dism: The operation completed successfully.", "dism: done"} {
		assert.Contains(t, out, l+"\n")
	}
	assert.NotContains(t, out, "50.0%")

	b, err := os.ReadFile(calls)
	require.NoError(t, err)
	assert.Equal(t, 1, strings.Count(string(b), "\n"), "PowerShell runs once: %s", b)
	assert.Contains(t, string(b), "-File "+filepath.Join(in.WorkDir))
	assert.Contains(t, string(b), "build-disk.ps1")

	path := filepath.Join(storeDir, filepath.FromSlash(res.Name))
	_, size, err := vhd.ReadFixed(path)
	require.NoError(t, err)
	assert.Equal(t, int64(1<<30), size)
	assert.Equal(t, int64(1<<30)+vhd.FooterSize, res.Size)
	ok, md, err := in.Store.Exists(ctx, res.Name)
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, map[string]string{"fingerprint": "fp-dism", "revision": in.Revision, "key": "win10-64"}, md)
	assert.Equal(t, diskimage.ManifestImage{Platform: "azure", Container: storeDir, Key: res.Name, Size: res.Size, Fingerprint: "fp-dism"}, res.Manifest.Image)
	assert.Equal(t, "2026-11-27", res.Manifest.Build.Date)
	assert.Contains(t, string(res.UnattendRedacted), "REDACTED")
	assert.Len(t, res.Placed, 3)
}

func TestBuildDismFailures(t *testing.T) {
	for _, c := range []struct {
		mode string
		want []string
	}{
		{"fail", []string{"step dism-run:", "exit status 1", "Error: 0x80070005 Access is denied.", "The operation completed successfully.", "administrator"}},
		{"novhd", []string{"step vhd:", "the dism script succeeded but wrote no VHD at "}},
		{"small", []string{"step vhd:", "has a virtual size of 2097152 bytes, want 1073741824 (image.size 1 GiB)"}},
		{"garbage", []string{"step vhd:", "the dism script did not write a fixed VHD: vhd:"}},
	} {
		t.Run(c.mode, func(t *testing.T) {
			in, storeDir, _, _ := dismBuildInputs(t, c.mode)
			res, err := diskimage.Build(context.Background(), in)
			require.Error(t, err)
			for _, w := range c.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.Equal(t, diskimage.Manifest{}, res.Manifest)
			assertDirEmpty(t, in.WorkDir)
			assertNothingStored(t, storeDir)
		})
	}
}

func TestBuildDismNoPowerShell(t *testing.T) {
	in, storeDir, _, _ := dismBuildInputs(t, "ok")
	in.Tools.PowerShell = filepath.Join(t.TempDir(), "no-such-pwsh")
	_, err := diskimage.Build(context.Background(), in)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "step dism-run:")
	assertDirEmpty(t, in.WorkDir)
	assertNothingStored(t, storeDir)
}

func TestBuildDismCancelled(t *testing.T) {
	in, storeDir, calls, pidFile := dismBuildInputs(t, "hang")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var log logged
	in.Log = log.logf(t, func(l string) {
		if l == "dism: waiting for dism" {
			cancel()
		}
	})
	start := time.Now()
	_, err := diskimage.Build(ctx, in)
	require.Error(t, err)
	assert.Less(t, time.Since(start), 30*time.Second, "the script was not killed")
	assert.Contains(t, err.Error(), "step dism-run:")
	assert.True(t, errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "context canceled"), err.Error())
	assertDirEmpty(t, in.WorkDir)
	assertNothingStored(t, storeDir)

	// the fake (exec'd into sleep) is gone
	b, err := os.ReadFile(pidFile)
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	require.NoError(t, err)
	if p, err := os.FindProcess(pid); err == nil {
		assert.Error(t, p.Signal(syscall.Signal(0)), "process %d still runs", pid)
	}

	// and the cleanup script ran after it
	b, err = os.ReadFile(calls)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	require.Len(t, lines, 2)
	assert.Contains(t, lines[0], "build-disk.ps1")
	assert.Contains(t, lines[1], "cleanup-disk.ps1")
	assert.Contains(t, log.all(), "dism: cleaned up")
}

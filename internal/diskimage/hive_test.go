package diskimage

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/config"
	"github.com/cib-project/cib/internal/diskimage/diskimagetest"
)

func TestEditsFor(t *testing.T) {
	sel := config.Selected{DisabledServices: []config.DisabledService{
		{Name: "WinDefend"}, {Name: "Sense"}, {Name: "windefend"},
	}}
	w10 := &config.Key{Image: &config.Image{OS: "Windows 10", RDP: true}}
	assert.Equal(t, RegistryEdits{
		EnableRDP:                 true,
		DisabledServices:          []string{"WinDefend", "Sense"},
		DisableNotificationCenter: true,
	}, EditsFor(w10, sel))

	srv := &config.Key{Image: &config.Image{OS: "Windows Server 2019"}}
	assert.Equal(t, RegistryEdits{}, EditsFor(srv, config.Selected{}))
	assert.Equal(t, RegistryEdits{}, EditsFor(&config.Key{}, sel), "a marketplace key has no image to edit")
}

func TestRegFileContent(t *testing.T) {
	got := string(regFileContent(`HKEY_LOCAL_MACHINE\SYSTEM`, []regSection{
		{key: `ControlSet002\Control\Terminal Server`, dwords: []regValue{{"fDenyTSConnections", 0}}},
		{key: `ControlSet002\Services\Sense`, dwords: []regValue{{"Start", 4}}},
	}))
	want := `Windows Registry Editor Version 5.00

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet002]

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet002\Control]

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet002\Control\Terminal Server]
"fDenyTSConnections"=dword:00000000

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet002\Services]

[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet002\Services\Sense]
"Start"=dword:00000004

`
	assert.Equal(t, want, got)
}

func TestEditHivesRejectsBadName(t *testing.T) {
	_, err := EditHives(context.Background(), HiveFiles{System: "/nonexistent"}, RegistryEdits{DisabledServices: []string{`a]b`}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `service name "a]b"`)
}

func TestEditHivesNothingToDo(t *testing.T) {
	// No edits: no hive is even opened.
	skipped, err := EditHives(context.Background(), HiveFiles{System: "/nonexistent", DefaultUser: "/nonexistent"}, RegistryEdits{})
	require.NoError(t, err)
	assert.Empty(t, skipped)
}

// testHives writes the given SYSTEM hive and an empty default-user hive
// into a fresh directory.
func testHives(t *testing.T, system *diskimagetest.RegKey) HiveFiles {
	t.Helper()
	diskimagetest.RequireHiveTools(t)
	dir := t.TempDir()
	h := HiveFiles{System: filepath.Join(dir, "SYSTEM"), DefaultUser: filepath.Join(dir, "NTUSER.DAT")}
	diskimagetest.WriteHive(t, h.System, system)
	diskimagetest.WriteHive(t, h.DefaultUser, &diskimagetest.RegKey{Name: "ROOT"})
	return h
}

// hiveFromVolume copies a hive out of the volume and returns its local path.
func hiveFromVolume(t *testing.T, vol, ntfsPath string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), filepath.Base(ntfsPath))
	require.NoError(t, os.WriteFile(p, []byte(ntfsOutput(t, "ntfscat", vol, ntfsPath)), 0o644))
	return p
}

// hiveValue is hivexget's rendering of a value; ok is false when the key
// or value does not exist.
func hiveValue(t *testing.T, hive, key, name string) (string, bool) {
	t.Helper()
	out, err := exec.Command("hivexget", hive, key, name).Output()
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(out)), true
}

func TestEditHives(t *testing.T) {
	h := testHives(t, diskimagetest.TestSystemHive())
	skipped, err := EditHives(context.Background(), h, RegistryEdits{
		EnableRDP:                 true,
		DisabledServices:          []string{"WinDefend", "sense", "NoSuchService"},
		DisableNotificationCenter: true,
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"NoSuchService"}, skipped)
	assertEmpty(t, filepath.Dir(h.System), "SYSTEM", "NTUSER.DAT") // no .reg files left

	for _, c := range []struct{ key, name, want string }{
		{`\ControlSet001\Control\Terminal Server`, "fDenyTSConnections", "0"},
		{`\ControlSet001\Services\WinDefend`, "Start", "4"},
		{`\ControlSet001\Services\Sense`, "Start", "4"},
		// Values the edits do not name are kept.
		{`\ControlSet001\Services\WinDefend`, "Type", "16"},
		{`\Select`, "Current", "1"},
	} {
		got, ok := hiveValue(t, h.System, c.key, c.name)
		assert.True(t, ok, "%s %s missing", c.key, c.name)
		assert.Equal(t, c.want, got, "%s %s", c.key, c.name)
	}
	_, ok := hiveValue(t, h.System, `\ControlSet001\Services\NoSuchService`, "Start")
	assert.False(t, ok, "a service the image lacks must not be created")
	services := ntfsOutput(t, "sh", "-c", `printf 'cd \\ControlSet001\\Services\nls\n' | hivexsh "$1"`, "sh", h.System)
	assert.Equal(t, "Sense\nWinDefend\n", services)

	got, ok := hiveValue(t, h.DefaultUser, `\Software\Policies\Microsoft\Windows\Explorer`, "DisableNotificationCenter")
	assert.True(t, ok, "DisableNotificationCenter missing")
	assert.Equal(t, "1", got)
}

// The control set edited is the one Select\Current names, not always
// ControlSet001.
func TestEditHivesCurrentControlSet(t *testing.T) {
	sys := diskimagetest.TestSystemHive()
	sys.Subkeys[0].Values[0].Data = 2 // Select\Current
	sys.Subkeys = append(sys.Subkeys, &diskimagetest.RegKey{Name: "ControlSet002", Subkeys: []*diskimagetest.RegKey{
		{Name: "Services", Subkeys: []*diskimagetest.RegKey{{Name: "Sense", Values: []diskimagetest.RegDword{{Name: "Start", Data: 3}}}}},
	}})
	h := testHives(t, sys)
	skipped, err := EditHives(context.Background(), h, RegistryEdits{
		EnableRDP:        true,
		DisabledServices: []string{"Sense", "WinDefend"},
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"WinDefend"}, skipped, "WinDefend is only in ControlSet001")

	for _, c := range []struct{ key, name, want string }{
		{`\ControlSet002\Control\Terminal Server`, "fDenyTSConnections", "0"},
		{`\ControlSet002\Services\Sense`, "Start", "4"},
		{`\ControlSet001\Control\Terminal Server`, "fDenyTSConnections", "1"},
		{`\ControlSet001\Services\Sense`, "Start", "3"},
		{`\ControlSet001\Services\WinDefend`, "Start", "2"},
	} {
		got, ok := hiveValue(t, h.System, c.key, c.name)
		assert.True(t, ok, "%s %s missing", c.key, c.name)
		assert.Equal(t, c.want, got, "%s %s", c.key, c.name)
	}
	// No notification centre edit: the default user hive is untouched.
	b, err := os.ReadFile(h.DefaultUser)
	require.NoError(t, err)
	assert.Equal(t, diskimagetest.RegfBytes(&diskimagetest.RegKey{Name: "ROOT"}), b)
}

func TestEditHivesNotAHive(t *testing.T) {
	diskimagetest.RequireHiveTools(t)
	sys := filepath.Join(t.TempDir(), "SYSTEM")
	diskimagetest.WriteFile(t, sys, "placeholder text, not a hive")
	_, err := EditHives(context.Background(), HiveFiles{System: sys}, RegistryEdits{EnableRDP: true})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `Windows\System32\config\SYSTEM`)
	assert.Contains(t, err.Error(), "hivexget")
}

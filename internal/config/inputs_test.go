package config_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/config"
)

func diskFingerprints(t *testing.T, cfg *config.Config) map[string]string {
	out := map[string]string{}
	for _, k := range cfg.Keys {
		if !k.Marketplace() {
			out[k.Name] = cfg.DiskInputs(k, "azure").Fingerprint()
		}
	}
	return out
}

func TestDiskFingerprintIsStableAndCanonical(t *testing.T) {
	a := diskFingerprints(t, loadPorted(t))
	b := diskFingerprints(t, loadPorted(t))
	assert.Equal(t, a, b)
	for k, fp := range a {
		assert.Regexp(t, `^sha256:[0-9a-f]{64}$`, fp, k)
	}
	assert.NotEqual(t, a["win10-64"], a["win10-64-occ"], "keys differ in their image section")

	cfg := loadPorted(t)
	in := cfg.DiskInputs(cfg.Key("win10-64"), "azure")
	canon := in.Canonical()
	assert.True(t, strings.HasPrefix(string(canon), `{"disable-windows-service":[`), "keys sorted: %s", canon[:60])
	assert.NotContains(t, string(canon), `\u003e`, "no HTML escaping")
	assert.Contains(t, string(canon), `"size":64`)
	assert.NotContains(t, string(canon), "W269N-WFGWX-YVC9B-4J6C9-T83GX", "a product key is stored only as a digest")
	assert.Regexp(t, `"product-key":"sha256:[0-9a-f]{64}"`, string(canon))
	back, err := config.ParseInputs(canon)
	require.NoError(t, err)
	assert.Equal(t, in.Fingerprint(), back.Fingerprint(), "a record's stored inputs fingerprint the same")
}

func TestDiskFingerprintFollowsTheTargetRule(t *testing.T) {
	base := diskFingerprints(t, loadPorted(t))

	// An amazon-only driver changes nothing built for azure.
	fsys := portedFS(t)
	edit(t, fsys, "drivers.yaml", "key: driver/aws-pv/xenbus.zip", "key: driver/aws-pv/xenbus-9.1.zip")
	cfg, err := config.LoadFS(fsys, "config")
	require.NoError(t, err)
	assert.Equal(t, base, diskFingerprints(t, cfg))

	// A Windows 10-only package changes exactly the Windows 10 keys.
	fsys = portedFS(t)
	edit(t, fsys, "packages.yaml", "        command: msiexec /i C:\\Windows\\Temp\\nxlog-ce.msi /q", "        command: msiexec /i C:\\Windows\\Temp\\nxlog-ce.msi /qn")
	cfg, err = config.LoadFS(fsys, "config")
	require.NoError(t, err)
	got := diskFingerprints(t, cfg)
	for k := range base {
		if strings.HasPrefix(k, "win10-64") {
			assert.NotEqual(t, base[k], got[k], "%s is Windows 10: must change", k)
		} else {
			assert.Equal(t, base[k], got[k], "%s is not Windows 10: must not change", k)
		}
	}
	old := loadPorted(t)
	changes := config.Diff(old.DiskInputs(old.Key("win10-64"), "azure"), cfg.DiskInputs(cfg.Key("win10-64"), "azure"))
	assert.Equal(t, []string{`packages.yaml entry "nxlog-ce.msi" changed (unattend[2].command)`}, config.Explain(changes))
}

func TestExplainImageChanges(t *testing.T) {
	old := loadPorted(t)
	fsys := portedFS(t)
	edit(t, fsys, "win10-64.yaml", "    size: 64\n", "    size: 128\n")
	edit(t, fsys, "win10-64.yaml", "    timezone: UTC\n", "")
	edit(t, fsys, "product-keys.yaml", "W269N-WFGWX-YVC9B-4J6C9-T83GX", "W269N-WFGWX-YVC9B-4J6C9-AAAAA")
	cfg, err := config.LoadFS(fsys, "config")
	require.NoError(t, err)
	got := config.Explain(config.Diff(old.DiskInputs(old.Key("win10-64"), "azure"), cfg.DiskInputs(cfg.Key("win10-64"), "azure")))
	assert.ElementsMatch(t, []string{"image.size changed 64 → 128", "image.timezone removed (was UTC)", "product key changed"}, got)
	for _, s := range got {
		assert.NotContains(t, s, "T83GX", "product keys are never printed")
	}
}

func TestExplainSharedEntryAddedAndTags(t *testing.T) {
	a := config.Inputs{"packages": []any{map[string]any{"name": "a"}, map[string]any{"name": "b", "savepath": "x"}}}
	b := config.Inputs{"packages": []any{map[string]any{"name": "new"}, map[string]any{"name": "a"}, map[string]any{"name": "b", "savepath": "y"}}}
	assert.Equal(t, []string{`packages.yaml entry "new" now applies`, `packages.yaml entry "b" changed (savepath)`}, config.Explain(config.Diff(a, b)))

	ta := config.Inputs{"tag": []any{map[string]any{"name": "deploymentId", "value": "39b8154"}, map[string]any{"name": "old", "value": "1"}}}
	tb := config.Inputs{"tag": []any{map[string]any{"name": "deploymentId", "value": "4a1b2c3"}}}
	assert.Equal(t, []string{"tag deploymentId changed 39b8154 → 4a1b2c3", "tag old removed"}, config.Explain(config.Diff(ta, tb)))
	assert.Empty(t, config.Diff(ta, ta))
}

func TestMachineInputsTakeBootstrapTagsAndBakedSettings(t *testing.T) {
	cfg := loadPorted(t)
	k := cfg.Key("win10-64")
	disk := cfg.DiskInputs(k, "azure").Fingerprint()
	in := cfg.MachineInputs(k, &k.Targets[0], disk)
	assert.Equal(t, disk, in["disk-image"])
	raw, err := json.Marshal(in["machine"])
	require.NoError(t, err)
	assert.JSONEq(t, `{"hyperv":"V1","os-disk":{"os":true,"source":"windows10-professional-en-us-x86-64","variant":"ssd","size":64,"caching":"ReadWrite","create":"FromImage"}}`, string(raw))
	// the VM size is not baked into the image: changing cpu keeps the fingerprint
	t0 := k.Targets[0]
	t0.Machine.CPU = 8
	assert.Equal(t, in.Fingerprint(), cfg.MachineInputs(k, &t0, disk).Fingerprint())
	t0.Tag = append([]config.Tag(nil), t0.Tag...)
	t0.Tag[5].Value = "abcdef0"
	assert.NotEqual(t, in.Fingerprint(), cfg.MachineInputs(k, &t0, disk).Fingerprint())

	m := cfg.Key("win11-64-2009")
	mi := cfg.MachineInputs(m, &m.Targets[0], "ignored")
	assert.NotContains(t, mi, "disk-image")
	assert.Equal(t, map[string]any{"platform": "azure", "publisher": "MicrosoftWindowsDesktop", "offer": "Windows-11", "sku": "win11-22h2-avd"}, mi["source"])
}

package config_test

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/config"
	"github.com/cib-project/cib/internal/config/configtest"
)

const configDir = "../../config"

func portedFS(t testing.TB) fstest.MapFS { return configtest.PortedFS(t, configDir) }

func edit(t testing.TB, fsys fstest.MapFS, file, old, new string) {
	t.Helper()
	configtest.Edit(t, fsys, file, old, new)
}

func loadPorted(t testing.TB) *config.Config {
	t.Helper()
	cfg, err := config.Load(configDir)
	require.NoError(t, err)
	return cfg
}

func TestPortedConfigLoads(t *testing.T) {
	cfg := loadPorted(t)

	var iso, market []string
	for _, k := range cfg.Keys {
		if k.Marketplace() {
			market = append(market, k.Name)
		} else {
			iso = append(iso, k.Name)
		}
	}
	assert.Equal(t, []string{"win10-64", "win10-64-gpu", "win10-64-occ", "win2012", "win2019", "win7-32", "win7-32-gpu"}, iso)
	assert.Len(t, market, 20, "every packer config but the BAK/OLD backups")
	assert.NotContains(t, market, "win2012r2-64-alpha")

	assert.Equal(t, []string{"azure"}, cfg.Settings.Platforms)
	assert.Equal(t, "cib-records", cfg.Settings.Records.Branch)
	require.Len(t, cfg.Settings.Environments, 2)
	assert.Equal(t, "production", cfg.Settings.Environments[0].Name)
	assert.Contains(t, cfg.Settings.Environments[1].Purge.Groups, "rg-taskcluster-worker-manager-staging")
	assert.Equal(t, config.PurgeSettings{MinimumAge: "1h", Retention: 2}, cfg.Settings.Purge)
	assert.Equal(t, "2h", cfg.Settings.Timeouts.Bootstrap)

	w10 := cfg.Key("win10-64")
	require.NotNil(t, w10)
	assert.Equal(t, "Windows 10", w10.Image.OS)
	assert.Equal(t, 5, w10.ISO.WimIndex)
	assert.Equal(t, "0x27", w10.Image.Disks[0].Partitions[0].Type.ID, "the partition type id keeps its literal text")
	require.NotNil(t, w10.Image.Network.DNS.Devolution)
	assert.False(t, *w10.Image.Network.DNS.Devolution, "devolution: false stays false, not unset")
	assert.Nil(t, w10.Image.Network.Interfaces[0].DNS.Domain, "domain: null stays unset")
	require.Len(t, w10.Targets, 6)
	// aliases (&rules / *rules) resolve to the anchor's content
	east := w10.Targets[1]
	assert.Equal(t, "rg-east-us-gecko-t", east.Group)
	require.Len(t, east.Network.Flow.Rules, 3)
	assert.Equal(t, config.StringList{"5985", "5986"}, east.Network.Flow.Rules[2].DestinationPortRange)
	assert.Equal(t, config.StringList{"3389"}, east.Network.Flow.Rules[0].DestinationPortRange)
	assert.Equal(t, "disable", east.Machine.Agent)
	assert.Equal(t, "Standard_DS3_v2", east.Machine.VMSize())
	assert.Equal(t, "eastus", east.RegionName())

	w2019 := cfg.Key("win2019")
	assert.Equal(t, "sacentralusrelops", w2019.Targets[0].Storage, "the seed's sourcePortRange: is ported as storage:")

	w7 := cfg.Key("win7-32")
	for _, tg := range w7.Targets {
		assert.Equal(t, "disable", tg.Machine.Agent, tg.Group)
		assert.Equal(t, "enable", tg.Diagnostics, tg.Group)
	}

	w11 := cfg.Key("win11-64-2009-alpha")
	require.NotNil(t, w11.Source)
	assert.Equal(t, config.MarketplaceSource{Platform: "azure", Publisher: "MicrosoftWindowsDesktop", Offer: "Windows-11", SKU: "win11-22h2-avd", Version: "22621.1555.230329"}, *w11.Source)
	require.Len(t, w11.Targets, 1)
	assert.Equal(t, "rg-packer-through-cib", w11.Targets[0].Group)
	assert.Equal(t, "Standard_F8s_v2", w11.Targets[0].Machine.VMSize())
	assert.Equal(t, "eastus", w11.Targets[0].Regions()[0])
	assert.Contains(t, w11.Targets[0].Regions(), "uksouth")
}

func TestPoolTargetsFollowTheGroupSuffixRule(t *testing.T) {
	cfg := loadPorted(t)
	w2012 := cfg.Key("win2012")
	byID := map[string]int{}
	for _, p := range w2012.Pools() {
		byID[p.ID()] = len(w2012.PoolTargets(p))
	}
	assert.Equal(t, map[string]int{
		"gecko-1/win2012-azure": 6, "gecko-3/win2012-azure": 6,
		"mpd001-1/win2012-amazon": 6, "mpd001-3/win2012-amazon": 6,
	}, byID)
	for _, tg := range w2012.PoolTargets(w2012.Pools()[0]) {
		assert.True(t, strings.HasSuffix(tg.Group, "-gecko-1"), tg.Group)
	}
}

func TestTargetRuleWindows7OnAzure(t *testing.T) {
	cfg := loadPorted(t)
	s := cfg.Select(cfg.Key("win7-32"), "azure")
	assert.Len(t, s.UnattendCommands, 11, "win7-32 on azure gets all 11 unattend commands")
	var pkgs []string
	for _, p := range s.Packages {
		pkgs = append(pkgs, p.Name)
	}
	// nxlog (installer and its x86 configuration), papertrail x86,
	// set-regional-fqdn, set-oobe-unattend, OpenCloudConfig, .NET 4.5, WMF
	assert.Equal(t, []string{"nxlog-ce.msi", "papertrail-bundle.pem", "set-regional-fqdn", "set-oobe-unattend", "nxlog.conf", "OpenCloudConfig", "dotNetFx45_Full_setup.exe", "Win7-KB3191566-x86.msu"}, pkgs)
	assert.Empty(t, s.Drivers, "every driver is amazon-only")
	assert.Empty(t, s.DisabledServices, "disabled services are Windows 10 only")
	assert.Equal(t, "FJ82H-XT6CR-J8D7P-XQJJ2-GPDD4", s.ProductKey)

	w10 := cfg.Select(cfg.Key("win10-64"), "azure")
	assert.Len(t, w10.DisabledServices, 8)
	amazon := cfg.Select(cfg.Key("win10-64-gpu"), "amazon")
	assert.NotEmpty(t, amazon.Drivers, "on amazon the pv and gpu drivers apply")
}

func TestBadConfigurationsNameFileLineAndFix(t *testing.T) {
	cases := []struct {
		name       string
		file       string
		old, new   string
		wantAt     string // file:line:col prefix
		wantSubstr string
	}{
		{"unknown field", "win2019.yaml", "      storage: sacentralusrelops\n", "      sourcePortRange: sacentralusrelops\n",
			"win2019.yaml:110:7", `target[0].sourcePortRange: unknown field "sourcePortRange"`},
		{"malformed yaml", "win7-32.yaml", "    os: Windows 7\n", "    os: [Windows 7\n", "win7-32.yaml:", "not valid YAML"},
		{"wrong type", "win10-64.yaml", "    size: 64\n", "    size: big\n", "win10-64.yaml:15:11", `image.size: expected a whole number, found "big"`},
		{"bad os", "win10-64.yaml", "    os: Windows 10\n", "    os: Windows 11\n", "win10-64.yaml:3:9", `"Windows 11" is not allowed`},
		{"vhdx", "win10-64.yaml", "    format: VHD\n", "    format: VHDX\n", "win10-64.yaml:13:13", "Azure does not accept VHDX"},
		{"bad architecture", "win7-32.yaml", "    architecture: x86\n", "    architecture: amd64\n", "win7-32.yaml:6:19", "use one of \"x86\", \"x86-64\""},
		{"builder", "win10-64.yaml", "    partition: MBR\n", "    partition: MBR\n    builder: packer\n", "win10-64.yaml:13:14", `image.builder: "packer" is not allowed; use one of "wimlib", "dism"`},
		{"partition style", "win10-64.yaml", "    partition: MBR\n", "    partition: APM\n", "win10-64.yaml:12:16", `"APM" is not allowed`},
		{"reseal mode", "win10-64.yaml", "        mode: Audit\n", "        mode: Audits\n", "win10-64.yaml:19:15", `(did you mean "Audit"?)`},
		{"vm size without {0}", "win2019.yaml", "          format: Standard_A{0}\n", "          format: Standard_A2\n", "win2019.yaml:", `"Standard_A2" has no {0}`},
		{"unknown region", "win10-64-gpu.yaml", "      region: East US\n", "      region: East Usa\n", "win10-64-gpu.yaml:", `"East Usa" is not an Azure region (did you mean "eastus"?)`},
		{"duplicate group", "win7-32.yaml", "      group: rg-east-us-gecko-t\n", "      group: rg-central-us-gecko-t\n", "win7-32.yaml:", "each target of a key needs its own group"},
		{"pool without targets", "win10-64-gpu.yaml", "        - domain: gecko-t\n", "        - domain: gecko-x\n", "win10-64-gpu.yaml:", "pool gecko-x/win10-64-gpu-azure has no targets"},
		{"missing product key", "product-keys.yaml", "    Professional: W269N-WFGWX-YVC9B-4J6C9-T83GX\n", "", "win10-64.yaml:4:14", "no product key for Windows 10 Professional"},
		{"slug type", "win10-64.yaml", "              type: disk-image-sha\n", "              type: sha\n", "win10-64.yaml:", `"sha" is not allowed`},
		{"lifecycle", "win10-64.yaml", "          lifecycle: spot\n", "          lifecycle: spotty\n", "win10-64.yaml:", `"spotty" is not allowed`},
		{"command pass without a place", "unattend-commands.yaml", "  pass: auditUser\n  synchronicity: asynchronous\n", "  pass: specialize\n  synchronicity: asynchronous\n", "unattend-commands.yaml:", "no place for asynchronous commands in the specialize pass"},
		{"unknown settings field", "settings.yaml", "    branch: cib-records\n", "    branch: cib-records\n    remote: origin\n", "settings.yaml:", `unknown field "remote"`},
		{"unsupported platform", "settings.yaml", "    - azure\n", "    - amazon\n", "settings.yaml:", `"amazon" is not allowed`},
		{"bad duration", "settings.yaml", "    bootstrap: 2h\n", "    bootstrap: two hours\n", "settings.yaml:", `"two hours" is not a duration`},
		{"duplicate environment", "settings.yaml", "    - name: staging\n", "    - name: production\n", "settings.yaml:", `environment "production" is listed twice`},
		{"both iso and marketplace", "win7-32.yaml", "iso:\n", "source:\n    publisher: a\n    offer: b\n    sku: c\niso:\n", "win7-32.yaml:", "not both"},
		{"bootstrap action", "win11-64-2009.yaml", "          executions: []\n", "          executions:\n              - name: x\n                on:\n                    failure: explode\n", "win11-64-2009.yaml:", `"explode": use reboot, retry`},
		{"bad checksum", "packages.yaml", "        key: package/StackdriverLogging-v1-9.exe\n", "        key: package/StackdriverLogging-v1-9.exe\n        sha256: 12ab\n", "packages.yaml:37:17", `sources[0].sha256: sha256 "12ab" is not a SHA-256 in hex`},
		{"duplicate mapping key", "win10-64.yaml", "    size: 64\n", "    size: 64\n    size: 32\n", "win10-64.yaml:16:5", `image.size: "size" is defined twice; keep one`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fsys := portedFS(t)
			edit(t, fsys, tc.file, tc.old, tc.new)
			_, err := config.LoadFS(fsys, "config")
			require.Error(t, err)
			var ps config.Problems
			require.True(t, errors.As(err, &ps))
			found := false
			for _, p := range ps {
				if strings.Contains(p.Error(), tc.wantSubstr) && strings.HasPrefix(p.Error(), "config/"+tc.wantAt) {
					found = true
				}
			}
			assert.True(t, found, "no problem at config/%s mentions %q in:\n%s", tc.wantAt, tc.wantSubstr, err)
		})
	}
}

func TestEveryProblemIsListed(t *testing.T) {
	fsys := portedFS(t)
	edit(t, fsys, "win10-64.yaml", "    size: 64\n", "    size: -1\n")
	edit(t, fsys, "win7-32.yaml", "    architecture: x86\n", "    architecture: arm\n")
	edit(t, fsys, "settings.yaml", "    - azure\n", "    - azure\n    - gcp\n")
	_, err := config.LoadFS(fsys, "config")
	var ps config.Problems
	require.True(t, errors.As(err, &ps))
	require.Len(t, ps, 3, "%s", err)
	// sorted by file
	assert.Contains(t, ps[0].File, "settings.yaml")
	assert.Contains(t, ps[1].File, "win10-64.yaml")
	assert.Contains(t, ps[2].File, "win7-32.yaml")
}

func TestMissingSharedFileIsAProblem(t *testing.T) {
	fsys := portedFS(t)
	delete(fsys, "packages.yaml")
	_, err := config.LoadFS(fsys, "config")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "config/packages.yaml: cannot read")
}

func TestKeyNamesMustBeLowerCase(t *testing.T) {
	fsys := portedFS(t)
	fsys["Win10.yaml"] = fsys["win10-64.yaml"]
	_, err := config.LoadFS(fsys, "config")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `image key "Win10" must be lower-case`)
}

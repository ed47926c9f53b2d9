package plan_test

import (
	"fmt"

	"github.com/cib-project/cib/internal/config"
)

// synthetic makes a configuration of n ISO-based keys with m targets each,
// every target in its own group and region, and one pool per key.
func synthetic(n, m int) *config.Config {
	regions := []string{"centralus", "eastus", "eastus2", "westus", "westus2", "westus3", "northcentralus", "southcentralus", "northeurope", "westeurope", "uksouth", "canadacentral"}
	cfg := &config.Config{
		Settings: config.Settings{
			Platforms:    []string{"azure"},
			Records:      config.RecordSettings{Branch: "cib-records"},
			Environments: []config.Environment{{Name: "production"}, {Name: "staging"}},
		},
		Shared: config.Shared{ProductKeys: map[string]map[string]string{"Windows 10": {"Professional": "W269N-WFGWX-YVC9B-4J6C9-T83GX"}}},
	}
	for i := 0; i < 20; i++ {
		cfg.Shared.Packages = append(cfg.Shared.Packages, config.Package{
			Name: fmt.Sprintf("package-%d", i), SavePath: fmt.Sprintf(`Windows\Temp\p%d.exe`, i),
			Unattend: []config.UnattendItem{{Description: "install", Command: fmt.Sprintf(`C:\Windows\Temp\p%d.exe /S`, i), Pass: "auditUser"}},
			Target:   config.TargetRule{Cloud: []string{"azure"}, OS: []string{"Windows 10"}, Architecture: []string{"x86-64"}, GPU: []bool{true, false}},
		})
	}
	for i := 0; i < n; i++ {
		k := &config.Key{Name: fmt.Sprintf("key-%04d", i)}
		k.Image = &config.Image{OS: "Windows 10", Edition: "Professional", Language: "en-US", Architecture: "x86-64", Partition: "MBR", Format: "VHD", Type: "Fixed", Size: 64 + i%4}
		k.ISO = &config.ISO{Source: config.Location{Platform: "azure", Bucket: "iso", Key: fmt.Sprintf("iso/%d.iso", i)}, WimIndex: 1}
		domain := fmt.Sprintf("d%d", i)
		k.Manager = &config.Manager{Pool: []config.Pool{{Domain: domain, Variant: "win10", Platform: "azure", Capacity: config.Capacity{Maximum: 3}}}}
		for j := 0; j < m; j++ {
			k.Targets = append(k.Targets, config.Target{
				Platform: "azure", Group: fmt.Sprintf("rg-%d-%d-%s", i, j, domain), Region: regions[j%len(regions)],
				Machine: config.Machine{CPU: 2, Format: "Standard_DS{0}_v2", HyperV: "V1"},
				Disk:    []config.Disk{{OS: true, Variant: "ssd", Size: 64}},
				Tag:     []config.Tag{{Name: "deploymentId", Value: fmt.Sprintf("%07x", i*m+j)}},
			})
		}
		cfg.Keys = append(cfg.Keys, k)
	}
	return cfg
}

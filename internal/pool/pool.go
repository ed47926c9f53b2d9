// Package pool generates Taskcluster worker-manager worker-pool definitions
// from the configuration and the newest machine images, and deploys them
// with a small worker-manager client that signs its requests with Hawk.
//
// Generation is pure: Config takes the configuration, the pool and the image
// IDs per target group, and returns the definition the worker manager
// stores, so that golden files pin what every ported pool deploys.
package pool

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/cib-project/cib/internal/config"
)

// WorkerPool is a worker-manager worker pool definition: what
// createWorkerPool and updateWorkerPool take and workerPool returns
// (without the fields the worker manager adds itself, such as created).
type WorkerPool struct {
	// ID is the worker pool ID, "domain/variant"; it is part of the URL,
	// not of the definition.
	ID           string `json:"-" yaml:"-"`
	ProviderID   string `json:"providerId" yaml:"providerId"`
	Description  string `json:"description" yaml:"description"`
	Owner        string `json:"owner" yaml:"owner"`
	EmailOnError bool   `json:"emailOnError" yaml:"emailOnError"`
	// Config is the provider-specific configuration as a JSON tree
	// (map[string]any, []any, float64, string, bool), so that a deployed
	// definition with fields cib does not know still compares and diffs
	// in full.
	Config map[string]any `json:"config" yaml:"config"`
}

// JSON is the definition as the worker manager takes it, indented, with
// object keys sorted.
func (wp WorkerPool) JSON() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(wp); err != nil {
		return nil, fmt.Errorf("encode worker pool %s: %w", wp.ID, err)
	}
	return buf.Bytes(), nil
}

// YAML is the definition as YAML, with object keys sorted.
func (wp WorkerPool) YAML() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(wp); err != nil {
		return nil, fmt.Errorf("encode worker pool %s: %w", wp.ID, err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode worker pool %s: %w", wp.ID, err)
	}
	return buf.Bytes(), nil
}

// The typed shape of an Azure launch configuration; Config turns it into a
// JSON tree.
type (
	poolConfig struct {
		MinCapacity   int            `json:"minCapacity"`
		MaxCapacity   int            `json:"maxCapacity"`
		Lifecycle     lifecycle      `json:"lifecycle"`
		LaunchConfigs []launchConfig `json:"launchConfigs"`
	}
	lifecycle struct {
		RegistrationTimeout   int `json:"registrationTimeout"`
		ReregistrationTimeout int `json:"reregistrationTimeout"`
	}
	launchConfig struct {
		Location            string             `json:"location"`
		CapacityPerInstance int                `json:"capacityPerInstance"`
		SubnetID            string             `json:"subnetId,omitempty"`
		HardwareProfile     hardwareProfile    `json:"hardwareProfile"`
		OSProfile           osProfile          `json:"osProfile"`
		DiagnosticsProfile  diagnosticsProfile `json:"diagnosticsProfile"`
		StorageProfile      storageProfile     `json:"storageProfile"`
		Tags                map[string]string  `json:"tags,omitempty"`
		WorkerConfig        workerConfig       `json:"workerConfig"`
		Priority            string             `json:"priority,omitempty"`
		EvictionPolicy      string             `json:"evictionPolicy,omitempty"`
		BillingProfile      *billingProfile    `json:"billingProfile,omitempty"`
	}
	hardwareProfile struct {
		VMSize string `json:"vmSize"`
	}
	osProfile struct {
		AllowExtensionOperations bool                 `json:"allowExtensionOperations"`
		WindowsConfiguration     windowsConfiguration `json:"windowsConfiguration"`
	}
	windowsConfiguration struct {
		EnableAutomaticUpdates bool   `json:"enableAutomaticUpdates"`
		ProvisionVMAgent       bool   `json:"provisionVMAgent"`
		TimeZone               string `json:"timeZone"`
	}
	diagnosticsProfile struct {
		BootDiagnostics bootDiagnostics `json:"bootDiagnostics"`
	}
	bootDiagnostics struct {
		Enabled bool `json:"enabled"`
	}
	storageProfile struct {
		ImageReference imageReference `json:"imageReference"`
		OSDisk         osDisk         `json:"osDisk"`
		DataDisks      []dataDisk     `json:"dataDisks,omitempty"`
	}
	imageReference struct {
		ID string `json:"id"`
	}
	osDisk struct {
		Caching      string      `json:"caching,omitempty"`
		CreateOption string      `json:"createOption"`
		DiskSizeGB   int         `json:"diskSizeGB,omitempty"`
		ManagedDisk  managedDisk `json:"managedDisk"`
	}
	dataDisk struct {
		Lun          int         `json:"lun"`
		Caching      string      `json:"caching,omitempty"`
		CreateOption string      `json:"createOption"`
		DiskSizeGB   int         `json:"diskSizeGB"`
		ManagedDisk  managedDisk `json:"managedDisk"`
	}
	managedDisk struct {
		StorageAccountType string `json:"storageAccountType"`
	}
	workerConfig struct {
		GenericWorker genericWorker `json:"genericWorker"`
	}
	genericWorker struct {
		Config genericWorkerConfig `json:"config"`
	}
	genericWorkerConfig struct {
		DeploymentID       string                       `json:"deploymentId,omitempty"`
		WorkerTypeMetadata map[string]map[string]string `json:"workerTypeMetadata"`
	}
	billingProfile struct {
		MaxPrice int `json:"maxPrice"`
	}
)

// Config is the worker-manager definition of pool p of key k for
// environment env, launching the machine images in images (target group →
// image resource ID): one launch configuration per target of the pool and
// per region of that target (its build region and the regions its image is
// distributed to) that is also in the pool's locations (all of them when
// the pool names none). Launch configurations are ordered by location,
// then group. A target of the pool without an image is an error: deploying
// the others would silently shrink the pool.
func Config(cfg *config.Config, key *config.Key, p config.Pool, images map[string]string, env string) (WorkerPool, error) {
	id := p.ID()
	wp := WorkerPool{ID: id, ProviderID: p.Provider, Owner: p.Owner, EmailOnError: true}
	platform := p.Platform
	if platform == "" {
		platform = "azure"
	}
	if platform != "azure" {
		return wp, fmt.Errorf("pool %s: platform %s: only azure pools have a worker-manager configuration", id, platform)
	}
	if p.Provider == "" {
		return wp, fmt.Errorf("pool %s: no provider: the worker manager needs a providerId", id)
	}
	allowed := map[string]bool{}
	for _, l := range p.Locations {
		allowed[config.NormalizeRegion(l)] = true
	}
	timeZone := "UTC"
	if key.Image != nil && key.Image.Timezone != "" {
		timeZone = key.Image.Timezone
	}

	type row struct{ group, region, image string }
	var rows []row
	pc := poolConfig{
		MinCapacity: p.Capacity.Minimum, MaxCapacity: p.Capacity.Maximum,
		Lifecycle:     lifecycle{RegistrationTimeout: p.Timeout.Registration, ReregistrationTimeout: p.Timeout.Reregistration},
		LaunchConfigs: []launchConfig{},
	}
	for _, t := range key.PoolTargets(p) {
		if t.Platform != platform {
			continue
		}
		image := images[t.Group]
		if image == "" {
			return wp, fmt.Errorf("pool %s: no machine image for target group %s (key %s, environment %s)", id, t.Group, key.Name, env)
		}
		for _, region := range t.Regions() {
			if len(allowed) > 0 && !allowed[region] {
				continue
			}
			lc, err := launch(key, p, t, region, image, timeZone)
			if err != nil {
				return wp, err
			}
			pc.LaunchConfigs = append(pc.LaunchConfigs, lc)
			rows = append(rows, row{t.Group, region, image})
		}
	}
	sort.SliceStable(pc.LaunchConfigs, func(i, j int) bool {
		a, b := pc.LaunchConfigs[i], pc.LaunchConfigs[j]
		if a.Location != b.Location {
			return a.Location < b.Location
		}
		return a.StorageProfile.ImageReference.ID < b.StorageProfile.ImageReference.ID
	})
	sort.SliceStable(rows, func(i, j int) bool {
		if rows[i].region != rows[j].region {
			return rows[i].region < rows[j].region
		}
		return rows[i].group < rows[j].group
	})

	var d strings.Builder
	fmt.Fprintf(&d, "Worker pool `%s` of the %s environment, deployed by cib from the machine images of image key `%s`.\n", id, env, key.Name)
	if len(rows) > 0 {
		d.WriteString("\n| location | target group | machine image |\n|---|---|---|\n")
		for _, r := range rows {
			fmt.Fprintf(&d, "| %s | %s | `%s` |\n", r.region, r.group, r.image)
		}
	}
	wp.Description = d.String()

	tree, err := jsonTree(pc)
	if err != nil {
		return wp, fmt.Errorf("pool %s: %w", id, err)
	}
	wp.Config = tree
	return wp, nil
}

// launch is the launch configuration of target t in region.
func launch(k *config.Key, p config.Pool, t *config.Target, region, image, timeZone string) (launchConfig, error) {
	lc := launchConfig{
		Location:            region,
		CapacityPerInstance: 1,
		HardwareProfile:     hardwareProfile{VMSize: t.Machine.VMSize()},
		OSProfile: osProfile{AllowExtensionOperations: true, WindowsConfiguration: windowsConfiguration{
			EnableAutomaticUpdates: false, ProvisionVMAgent: true, TimeZone: timeZone}},
		DiagnosticsProfile: diagnosticsProfile{BootDiagnostics: bootDiagnostics{Enabled: strings.EqualFold(t.Diagnostics, "enable")}},
		StorageProfile: storageProfile{
			ImageReference: imageReference{ID: image},
			OSDisk:         osDisk{CreateOption: "FromImage", ManagedDisk: managedDisk{StorageAccountType: diskSKU("")}},
		},
	}
	if t.Network != nil && t.Network.Name != "" && t.Network.Subnet.Name != "" {
		sub, ok := subscription(image)
		if !ok {
			return lc, fmt.Errorf("pool %s: machine image %q of target group %s is not an Azure resource ID (/subscriptions/...), so the subnet's cannot be made", p.ID(), image, t.Group)
		}
		lc.SubnetID = "/subscriptions/" + sub + "/resourceGroups/" + t.Group +
			"/providers/Microsoft.Network/virtualNetworks/" + t.Network.Name + "/subnets/" + t.Network.Subnet.Name
	}
	lun := 0
	for i, d := range t.Disk {
		if i == 0 || d.OS {
			if i == 0 {
				lc.StorageProfile.OSDisk = osDisk{Caching: d.Caching, CreateOption: "FromImage", DiskSizeGB: d.Size,
					ManagedDisk: managedDisk{StorageAccountType: diskSKU(d.Variant)}}
			}
			continue
		}
		lc.StorageProfile.DataDisks = append(lc.StorageProfile.DataDisks, dataDisk{Lun: lun, Caching: d.Caching,
			CreateOption: "Empty", DiskSizeGB: d.Size, ManagedDisk: managedDisk{StorageAccountType: diskSKU(d.Variant)}})
		lun++
	}
	tags := map[string]string{}
	meta := map[string]string{"image-key": k.Name, "target-group": t.Group}
	for _, tg := range t.Tag {
		tags[tg.Name] = tg.Value
		meta[tg.Name] = tg.Value
	}
	if len(tags) > 0 {
		lc.Tags = tags
	}
	lc.WorkerConfig.GenericWorker.Config = genericWorkerConfig{DeploymentID: tags["deploymentId"],
		WorkerTypeMetadata: map[string]map[string]string{"machine-setup": meta}}
	if p.Lifecycle == "spot" {
		lc.Priority, lc.EvictionPolicy, lc.BillingProfile = "Spot", "Delete", &billingProfile{MaxPrice: -1}
	}
	return lc, nil
}

// diskSKU is the managed disk type of a configured disk variant, as the
// machine-image stage creates the build VM's disks.
func diskSKU(variant string) string {
	switch strings.ToLower(variant) {
	case "ssd":
		return "StandardSSD_LRS"
	case "premium":
		return "Premium_LRS"
	}
	return "Standard_LRS"
}

// subscription is the subscription ID of an Azure resource ID.
func subscription(id string) (string, bool) {
	const prefix = "/subscriptions/"
	if len(id) <= len(prefix) || !strings.EqualFold(id[:len(prefix)], prefix) {
		return "", false
	}
	sub, _, ok := strings.Cut(id[len(prefix):], "/")
	return sub, ok && sub != ""
}

// jsonTree turns v into the JSON tree a deployed definition decodes to.
func jsonTree(v any) (map[string]any, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	return m, nil
}

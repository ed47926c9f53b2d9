package config

// Config is the whole configuration of a repository: its settings, its image
// keys and the shared files that disk images draw entries from.
type Config struct {
	// Dir is the folder the configuration was read from, as given to Load.
	Dir      string
	Settings Settings
	// Keys are sorted by name.
	Keys   []*Key
	Shared Shared
}

// Key returns the image key of that name, or nil.
func (c *Config) Key(name string) *Key {
	for _, k := range c.Keys {
		if k.Name == name {
			return k
		}
	}
	return nil
}

// Settings are the repository-wide settings (config/settings.yaml).
type Settings struct {
	// Platforms the repository builds for; targets and pools of other
	// platforms stay in the data but are not planned.
	Platforms    []string       `yaml:"platforms"`
	Records      RecordSettings `yaml:"records"`
	Environments []Environment  `yaml:"environments"`
	Purge        PurgeSettings  `yaml:"purge"`
	Timeouts     Timeouts       `yaml:"timeouts"`
}

// PurgeSettings bound what purge may delete.
type PurgeSettings struct {
	// MinimumAge protects resources younger than this (a Go duration such
	// as 1h) from the seed's orphan rules, so that a worker manager's
	// half-provisioned worker is not deleted under it.
	MinimumAge string `yaml:"minimumAge"`
	// Retention is how many images per key purge keeps.
	Retention int `yaml:"retention"`
}

// Timeouts bound every wait of a machine-image build (Go durations).
type Timeouts struct {
	// Reseal is the wait for the first boot to reseal and stop the VM.
	Reseal string `yaml:"reseal"`
	// Bootstrap is the wait for each bootstrap execution's test to pass.
	Bootstrap string `yaml:"bootstrap"`
	// Generalize is the wait for sysprep to generalize and stop the VM.
	Generalize string `yaml:"generalize"`
}

// RecordSettings say where build records live.
type RecordSettings struct {
	Branch string `yaml:"branch"`
}

// Environment is one deployment environment (a Taskcluster deployment).
type Environment struct {
	Name        string       `yaml:"name"`
	Taskcluster *Taskcluster `yaml:"taskcluster"`
	Purge       *PurgeExtra  `yaml:"purge"`
}

// Taskcluster locates an environment's worker manager.
type Taskcluster struct {
	RootURL string `yaml:"rootUrl"`
}

// PurgeExtra lists resource groups purged only when the commit says
// purge-taskcluster-resources: the worker manager's own groups.
type PurgeExtra struct {
	Groups []string `yaml:"groups"`
}

// Key is one image configuration, config/<name>.yaml. An ISO-based key has
// Image and ISO; a marketplace-based key has Source instead.
type Key struct {
	// Name is the file name without its extension.
	Name string `yaml:"-"`
	// File is the path the key was read from.
	File string `yaml:"-"`

	Image        *Image             `yaml:"image"`
	ISO          *ISO               `yaml:"iso"`
	Source       *MarketplaceSource `yaml:"source"`
	Manager      *Manager           `yaml:"manager"`
	Targets      []Target           `yaml:"target"`
	Distribution string             `yaml:"distribution"`
	Log          []string           `yaml:"log"`
	Validation   *Validation        `yaml:"validation"`
}

// Marketplace reports whether the key starts from a marketplace image and so
// has no disk-image build.
func (k *Key) Marketplace() bool { return k.Source != nil }

// Pools returns the key's worker pools, or nil.
func (k *Key) Pools() []Pool {
	if k.Manager == nil {
		return nil
	}
	return k.Manager.Pool
}

// Image describes the Windows installation a disk image is built from.
type Image struct {
	OS           string        `yaml:"os"`
	Edition      string        `yaml:"edition"`
	Language     string        `yaml:"language"`
	Architecture string        `yaml:"architecture"`
	Timezone     string        `yaml:"timezone"`
	Hostname     string        `yaml:"hostname"`
	GPU          bool          `yaml:"gpu"`
	Owner        string        `yaml:"owner"`
	Organization string        `yaml:"organization"`
	Partition    string        `yaml:"partition"`
	Format       string        `yaml:"format"`
	Type         string        `yaml:"type"`
	Size         int           `yaml:"size"`
	RDP          bool          `yaml:"rdp"`
	Obfuscate    bool          `yaml:"obfuscate"`
	Reseal       *SysprepStep  `yaml:"reseal"`
	Generalize   *SysprepStep  `yaml:"generalize"`
	Reboot       int           `yaml:"reboot"`
	Network      *ImageNetwork `yaml:"network"`
	Disks        []WinPEDisk   `yaml:"disks"`
	Target       *Location     `yaml:"target"`
	// Builder forces the disk-image builder (Builders): wimlib on Linux
	// runners, dism on Windows runners. Empty means the runner's own.
	Builder string `yaml:"builder"`
}

// SysprepStep is a reseal or generalize step of the answer file.
type SysprepStep struct {
	Mode     string `yaml:"mode"`
	Shutdown bool   `yaml:"shutdown"`
	Omit     bool   `yaml:"omit"`
}

// ImageNetwork is the guest's network settings written into unattend.xml.
type ImageNetwork struct {
	Location   string      `yaml:"location"`
	DNS        *ImageDNS   `yaml:"dns"`
	Interfaces []Interface `yaml:"interfaces"`
}

// ImageDNS are machine-wide DNS client settings. Pointers keep "not set"
// apart from false or empty: unattend.xml only carries what is set.
type ImageDNS struct {
	Domain     *string  `yaml:"domain"`
	Suffixes   []string `yaml:"suffixes"`
	Devolution *bool    `yaml:"devolution"`
}

// Interface is one network interface's DNS settings.
type Interface struct {
	Alias string        `yaml:"alias"`
	DNS   *InterfaceDNS `yaml:"dns"`
}

// InterfaceDNS are per-interface DNS client settings.
type InterfaceDNS struct {
	Domain   *string  `yaml:"domain"`
	Dynamic  *bool    `yaml:"dynamic"`
	Register *bool    `yaml:"register"`
	Search   []string `yaml:"search"`
}

// WinPEDisk is a windowsPE DiskConfiguration entry.
type WinPEDisk struct {
	ID         int         `yaml:"id"`
	Wipe       bool        `yaml:"wipe"`
	Partitions []Partition `yaml:"partitions"`
}

// Partition is one partition of a WinPEDisk.
type Partition struct {
	ID     int           `yaml:"id"`
	Type   PartitionType `yaml:"type"`
	Size   int           `yaml:"size"`
	Extend bool          `yaml:"extend"`
	Active bool          `yaml:"active"`
	Format string        `yaml:"format"`
	Label  string        `yaml:"label"`
	Letter string        `yaml:"letter"`
}

// PartitionType names a partition type. ID keeps the literal text as
// written (0x27 stays "0x27"), which is what unattend.xml expects.
type PartitionType struct {
	Name string `yaml:"name"`
	ID   string `yaml:"id"`
}

// Location is where a file lives: a cloud bucket and key, a URL or a local
// path.
type Location struct {
	Platform string `yaml:"platform"`
	Bucket   string `yaml:"bucket"`
	Key      string `yaml:"key"`
	URL      string `yaml:"url"`
	Path     string `yaml:"path"`
	// SHA256 is the file's expected hex SHA-256; when set, a fetched copy
	// that does not match is refused.
	SHA256 string `yaml:"sha256"`
}

// ISO is the installation medium of an ISO-based key.
type ISO struct {
	Source   Location `yaml:"source"`
	WimIndex int      `yaml:"wimindex"`
}

// MarketplaceSource is the marketplace image a marketplace-based key starts
// from.
type MarketplaceSource struct {
	Platform  string `yaml:"platform"`
	Publisher string `yaml:"publisher"`
	Offer     string `yaml:"offer"`
	SKU       string `yaml:"sku"`
	Version   string `yaml:"version"`
}

// Manager holds the worker pools that launch a key's images.
type Manager struct {
	Pool []Pool `yaml:"pool"`
}

// Pool is a Taskcluster worker pool.
type Pool struct {
	Domain    string   `yaml:"domain"`
	Variant   string   `yaml:"variant"`
	Capacity  Capacity `yaml:"capacity"`
	Timeout   Timeout  `yaml:"timeout"`
	Locations []string `yaml:"locations"`
	Lifecycle string   `yaml:"lifecycle"`
	Owner     string   `yaml:"owner"`
	Provider  string   `yaml:"provider"`
	Platform  string   `yaml:"platform"`
}

// ID is the pool's name as filters and the worker manager write it.
func (p Pool) ID() string { return p.Domain + "/" + p.Variant }

// Capacity bounds a pool's size.
type Capacity struct {
	Minimum int `yaml:"minimum"`
	Maximum int `yaml:"maximum"`
}

// Timeout holds worker registration timeouts, in seconds.
type Timeout struct {
	Registration   int `yaml:"registration"`
	Reregistration int `yaml:"reregistration"`
}

// Target is one place a key's machine image is built: a resource group in
// a region of a platform.
type Target struct {
	Platform string `yaml:"platform"`
	Group    string `yaml:"group"`
	Region   string `yaml:"region"`
	Storage  string `yaml:"storage"`
	// Pools links the target to pools explicitly; when empty, the seed's
	// rule applies: the group ends with "-<pool domain>".
	Pools []string `yaml:"pools"`
	// Locations are the regions the captured image is distributed to.
	Locations   []string   `yaml:"locations"`
	Hostname    *Hostname  `yaml:"hostname"`
	Machine     Machine    `yaml:"machine"`
	Diagnostics string     `yaml:"diagnostics"`
	Disk        []Disk     `yaml:"disk"`
	Network     *Network   `yaml:"network"`
	Capture     *Capture   `yaml:"capture"`
	Tag         []Tag      `yaml:"tag"`
	Bootstrap   *Bootstrap `yaml:"bootstrap"`
}

// Hostname is the build VM's computer name rule.
type Hostname struct {
	Format string `yaml:"format"`
	Slug   Slug   `yaml:"slug"`
}

// Slug is what replaces {0} in a hostname format.
type Slug struct {
	Type   string `yaml:"type"`
	Length int    `yaml:"length"`
}

// Machine is the build VM's hardware.
type Machine struct {
	CPU    int    `yaml:"cpu"`
	RAM    int    `yaml:"ram"`
	Format string `yaml:"format"`
	// Size names the VM size outright (marketplace keys); otherwise it is
	// Format with {0} replaced by CPU.
	Size   string `yaml:"size"`
	HyperV string `yaml:"hyperv"`
	Agent  string `yaml:"agent"`
}

// Disk is one managed disk of the build VM; the first is the OS disk.
type Disk struct {
	OS      bool   `yaml:"os"`
	Source  string `yaml:"source"`
	Variant string `yaml:"variant"`
	Size    int    `yaml:"size"`
	Caching string `yaml:"caching"`
	Create  string `yaml:"create"`
}

// Network is the build VM's virtual network, subnet and security group.
type Network struct {
	Name   string   `yaml:"name"`
	Prefix string   `yaml:"prefix"`
	DNS    []string `yaml:"dns"`
	Subnet Subnet   `yaml:"subnet"`
	Flow   Flow     `yaml:"flow"`
}

// Subnet is a subnet of a Network.
type Subnet struct {
	Name   string `yaml:"name"`
	Prefix string `yaml:"prefix"`
}

// Flow is a network security group and its rules.
type Flow struct {
	Name  string `yaml:"name"`
	Rules []Rule `yaml:"rules"`
}

// Rule is a network security rule. Address and port fields take a scalar or
// a list.
type Rule struct {
	Name                     string     `yaml:"name"`
	Description              string     `yaml:"description"`
	Access                   string     `yaml:"access"`
	Protocol                 string     `yaml:"protocol"`
	Direction                string     `yaml:"direction"`
	Priority                 int        `yaml:"priority"`
	SourceAddressPrefix      StringList `yaml:"sourceAddressPrefix"`
	SourcePortRange          StringList `yaml:"sourcePortRange"`
	DestinationAddressPrefix StringList `yaml:"destinationAddressPrefix"`
	DestinationPortRange     StringList `yaml:"destinationPortRange"`
}

// Capture says how the machine image is stored.
type Capture struct {
	Storage string `yaml:"storage"`
}

// Tag is a name/value pair set on the build VM and the image.
type Tag struct {
	Name  string `yaml:"name"`
	Value string `yaml:"value"`
}

// Bootstrap is the sequence run on the build VM before capture.
type Bootstrap struct {
	Executions []Execution `yaml:"executions"`
}

// Execution is one bootstrap step.
type Execution struct {
	Name     string    `yaml:"name"`
	Shell    string    `yaml:"shell"`
	Commands []Command `yaml:"commands"`
	Test     *Test     `yaml:"test"`
	On       *On       `yaml:"on"`
	Attempts int       `yaml:"attempts"`
}

// Command is a bootstrap command: plain text, or a format whose {n}
// placeholders the builder fills from Tokens.
type Command struct {
	Text   string   `yaml:"-"`
	Format string   `yaml:"format"`
	Tokens []string `yaml:"tokens"`
}

// Test decides whether an execution succeeded.
type Test struct {
	Std    *StdTest    `yaml:"std"`
	Status *StatusTest `yaml:"status"`
}

// StdTest matches an execution's output.
type StdTest struct {
	Out *Match `yaml:"out"`
	Err *Match `yaml:"err"`
}

// StatusTest matches the VM's status.
type StatusTest struct {
	Code *Match `yaml:"code"`
}

// Match is a case-insensitive regular expression.
type Match struct {
	Match string `yaml:"match"`
}

// On says what to do after an execution's test.
type On struct {
	Success string `yaml:"success"`
	Failure string `yaml:"failure"`
}

// Validation lists log lines that prove a build VM finished.
type Validation struct {
	Instance InstanceValidation `yaml:"instance"`
}

// InstanceValidation matches the build VM's logs.
type InstanceValidation struct {
	Log []LogMatch `yaml:"log"`
}

// LogMatch is a regular expression expected in one program's log.
type LogMatch struct {
	Program string `yaml:"program"`
	Match   string `yaml:"match"`
}

// Shared are the shared files every disk image draws entries from.
type Shared struct {
	Drivers          []Driver
	Packages         []Package
	UnattendCommands []UnattendCommand
	DisabledServices []DisabledService
	// ProductKeys maps os → edition → product key.
	ProductKeys map[string]map[string]string
}

// TargetRule says which builds a shared entry applies to.
type TargetRule struct {
	Cloud        []string `yaml:"cloud"`
	OS           []string `yaml:"os"`
	Architecture []string `yaml:"architecture"`
	GPU          []bool   `yaml:"gpu"`
}

// Driver is an entry of drivers.yaml.
type Driver struct {
	Name    string     `yaml:"name"`
	InfPath string     `yaml:"infpath"`
	Extract bool       `yaml:"extract"`
	Target  TargetRule `yaml:"target"`
	Sources []Location `yaml:"sources"`
}

// Package is an entry of packages.yaml: a file copied into the image and
// the unattend commands that install it.
type Package struct {
	Name     string         `yaml:"name"`
	SavePath string         `yaml:"savepath"`
	Extract  bool           `yaml:"extract"`
	Unattend []UnattendItem `yaml:"unattend"`
	Target   TargetRule     `yaml:"target"`
	Sources  []Location     `yaml:"sources"`
}

// UnattendItem is a command run by Windows setup in one pass.
type UnattendItem struct {
	Description   string `yaml:"description"`
	Command       string `yaml:"command"`
	Pass          string `yaml:"pass"`
	Synchronicity string `yaml:"synchronicity"`
	Priority      *int   `yaml:"priority"`
	Reboot        string `yaml:"reboot"`
}

// UnattendCommand is an entry of unattend-commands.yaml.
type UnattendCommand struct {
	UnattendItem `yaml:",inline"`
	Target       TargetRule `yaml:"target"`
}

// DisabledService is an entry of disable-windows-service.yaml.
type DisabledService struct {
	Name   string     `yaml:"name"`
	Target TargetRule `yaml:"target"`
}

// DefaultRecordsBranch is where build records live unless settings.yaml
// says otherwise.
const DefaultRecordsBranch = "cib-records"

// RecordsBranch is the records branch's name.
func (s Settings) RecordsBranch() string {
	if s.Records.Branch != "" {
		return s.Records.Branch
	}
	return DefaultRecordsBranch
}

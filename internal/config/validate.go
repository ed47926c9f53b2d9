package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Enumerations the configuration is checked against.
var (
	OSNames = []string{"Windows 7", "Windows 8.1", "Windows 10", "Windows Server 2012 R2",
		"Windows Server 2016", "Windows Server 2019", "Windows Server"}
	Architectures      = []string{"x86", "x86-64"}
	PartitionStyles    = []string{"MBR", "GPT"}
	DiskFormats        = []string{"VHD"}
	DiskTypes          = []string{"Fixed"}
	SysprepModes       = []string{"Audit", "OOBE"}
	Passes             = []string{"windowsPE", "offlineServicing", "generalize", "specialize", "auditSystem", "auditUser", "oobeSystem"}
	Synchronicities    = []string{"synchronous", "asynchronous"}
	SlugTypes          = []string{"disk-image-sha", "machine-image-sha", "uuid"}
	Lifecycles         = []string{"spot", "regular"}
	Clouds             = []string{"amazon", "azure", "google"}
	SupportedPlatforms = []string{"azure"}
	HyperVGenerations  = []string{"V1", "V2"}
	NetworkLocations   = []string{"Home", "Work", "Other"}
	Distributions      = []string{"replicate", "rebuild"}
	BootstrapShells    = []string{"azure-powershell", "winrm-powershell"}
	// Builders are the disk-image builders image.builder can force
	// (spec/disk-image.md §3).
	Builders = []string{"wimlib", "dism"}
)

// commandPlaces are the (pass, synchronicity) pairs unattend.xml has a place
// for; a command anywhere else would be silently dropped, so it is an error.
var commandPlaces = map[string][]string{
	"specialize": {"synchronous"},
	"oobeSystem": {"synchronous", "asynchronous"},
	"auditUser":  {"synchronous", "asynchronous"},
}

var (
	productKeyRe = regexp.MustCompile(`^[0-9A-Z]{5}(-[0-9A-Z]{5}){4}$`)
	envNameRe    = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	groupRe      = regexp.MustCompile(`^[-\w.()]{1,90}$`)
	branchRe     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]*$`)
	actionRe     = regexp.MustCompile(`^(reboot|retry|retry-task|fail|retest)(\s+after\s+\d+\s*(s|sec|second|seconds|m|min|minute|minutes|h|hour|hours))?$`)
	hostnameRe   = regexp.MustCompile(`^[A-Za-z0-9-]{1,15}$`)
	poolPartRe   = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
)

func quoteList(vals []string) string {
	q := make([]string, len(vals))
	for i, v := range vals {
		q[i] = fmt.Sprintf("%q", v)
	}
	return strings.Join(q, ", ")
}

// oneOf checks an enumeration; an empty value is checked by required, not
// here.
func (l *loader) oneOf(file, at, value string, allowed []string) {
	if value == "" || slices.Contains(allowed, value) {
		return
	}
	l.errorf(file, at, "%q is not allowed%s; use one of %s", value, suggest(value, allowed), quoteList(allowed))
}

func (l *loader) required(file, at, value, what string) bool {
	if strings.TrimSpace(value) == "" {
		l.errorf(file, at, "%s is required", what)
		return false
	}
	return true
}

func (l *loader) validate(cfg *Config) {
	l.validateSettings(cfg)
	l.validateShared(cfg)
	pools := map[string]string{} // pool id → where first declared
	for _, k := range cfg.Keys {
		l.validateKey(cfg, k, pools)
	}
}

func (l *loader) validateSettings(cfg *Config) {
	const f = SettingsFile
	s := cfg.Settings
	if _, ok := l.decoders[f]; !ok {
		return
	}
	if len(s.Platforms) == 0 {
		l.errorf(f, "platforms", "list at least one platform, e.g. platforms: [azure]")
	}
	for i, p := range s.Platforms {
		l.oneOf(f, fmt.Sprintf("platforms[%d]", i), p, SupportedPlatforms)
	}
	if s.Records.Branch != "" && (!branchRe.MatchString(s.Records.Branch) || strings.Contains(s.Records.Branch, "..")) {
		l.errorf(f, "records.branch", "%q is not a valid branch name", s.Records.Branch)
	}
	for _, d := range []struct{ at, v string }{
		{"purge.minimumAge", s.Purge.MinimumAge}, {"timeouts.reseal", s.Timeouts.Reseal},
		{"timeouts.bootstrap", s.Timeouts.Bootstrap}, {"timeouts.generalize", s.Timeouts.Generalize},
	} {
		if d.v == "" {
			continue
		}
		if v, err := time.ParseDuration(d.v); err != nil || v <= 0 {
			l.errorf(f, d.at, "%q is not a duration; write it like 90m or 2h", d.v)
		}
	}
	if s.Purge.Retention < 0 {
		l.errorf(f, "purge.retention", "retention is how many images per key to keep; it cannot be negative")
	}
	if len(s.Environments) == 0 {
		l.errorf(f, "environments", "list at least one environment, e.g. - name: production")
	}
	seen := map[string]bool{}
	for i, e := range s.Environments {
		at := fmt.Sprintf("environments[%d]", i)
		if !l.required(f, at+".name", e.Name, "the environment's name") {
			continue
		}
		if !envNameRe.MatchString(e.Name) {
			l.errorf(f, at+".name", "%q: environment names are lower-case letters, digits and '-' (commit messages match them in lower case)", e.Name)
		}
		if seen[e.Name] {
			l.errorf(f, at+".name", "environment %q is listed twice; keep one", e.Name)
		}
		seen[e.Name] = true
		if e.Taskcluster != nil && e.Taskcluster.RootURL != "" && !strings.HasPrefix(e.Taskcluster.RootURL, "https://") {
			l.errorf(f, at+".taskcluster.rootUrl", "%q: the root URL must start with https://", e.Taskcluster.RootURL)
		}
		if e.Purge != nil {
			for j, g := range e.Purge.Groups {
				if !groupRe.MatchString(g) {
					l.errorf(f, fmt.Sprintf("%s.purge.groups[%d]", at, j), "%q is not a valid resource group name", g)
				}
			}
		}
	}
}

func (l *loader) validateRule(file, at string, r TargetRule, withGPU bool) {
	check := func(field string, n int) {
		if n == 0 {
			l.errorf(file, at+"."+field, "target.%s is empty, so the entry applies to nothing; list the values it applies to", field)
		}
	}
	check("cloud", len(r.Cloud))
	check("os", len(r.OS))
	check("architecture", len(r.Architecture))
	if withGPU {
		check("gpu", len(r.GPU))
	} else if len(r.GPU) > 0 {
		l.errorf(file, at+".gpu", "this file's entries do not depend on the GPU; remove target.gpu")
	}
	for i, v := range r.Cloud {
		l.oneOf(file, fmt.Sprintf("%s.cloud[%d]", at, i), v, Clouds)
	}
	for i, v := range r.OS {
		l.oneOf(file, fmt.Sprintf("%s.os[%d]", at, i), v, OSNames)
	}
	for i, v := range r.Architecture {
		l.oneOf(file, fmt.Sprintf("%s.architecture[%d]", at, i), v, Architectures)
	}
}

func (l *loader) validateUnattend(file, at string, u UnattendItem) {
	l.required(file, at+".command", u.Command, "the command")
	l.oneOf(file, at+".pass", u.Pass, Passes)
	l.oneOf(file, at+".synchronicity", u.Synchronicity, Synchronicities)
	pass, sync := u.Pass, u.Synchronicity
	if pass == "" {
		pass = "oobeSystem"
	}
	if sync == "" {
		sync = "synchronous"
	}
	if slices.Contains(Passes, pass) && slices.Contains(Synchronicities, sync) && !slices.Contains(commandPlaces[pass], sync) {
		l.errorf(file, at+".pass", "unattend.xml has no place for %s commands in the %s pass; use specialize (synchronous), oobeSystem or auditUser", sync, pass)
	}
	if u.Priority != nil && *u.Priority < 0 {
		l.errorf(file, at+".priority", "priority must not be negative")
	}
	if u.Reboot != "" {
		l.oneOf(file, at+".reboot", u.Reboot, []string{"Always", "Never", "OnRequest"})
	}
}

func (l *loader) validateSources(file, at string, srcs []Location) {
	for i, s := range srcs {
		l.validateLocation(file, fmt.Sprintf("%s[%d]", at, i), s)
	}
}

func (l *loader) validateLocation(file, at string, s Location) {
	if s.SHA256 != "" {
		if b, err := hex.DecodeString(strings.TrimPrefix(strings.ToLower(s.SHA256), "sha256:")); err != nil || len(b) != sha256.Size {
			l.errorf(file, at+".sha256", "sha256 %q is not a SHA-256 in hex (64 characters 0-9a-f)", s.SHA256)
		}
	}
	switch s.Platform {
	case "amazon", "azure", "google":
		l.required(file, at+".bucket", s.Bucket, "the bucket (storage container)")
		l.required(file, at+".key", s.Key, "the key (object name)")
	case "url":
		if !strings.HasPrefix(s.URL, "https://") && !strings.HasPrefix(s.URL, "http://") {
			l.errorf(file, at+".url", "platform url needs url: https://…")
		}
	case "local":
		l.required(file, at+".path", s.Path, "the path")
	case "":
		l.errorf(file, at+".platform", "platform is required (amazon, azure, google, url or local)")
	default:
		l.oneOf(file, at+".platform", s.Platform, []string{"amazon", "azure", "google", "url", "local"})
	}
}

func (l *loader) validateShared(cfg *Config) {
	sh := cfg.Shared
	for i, d := range sh.Drivers {
		at := fmt.Sprintf("[%d]", i)
		l.required(DriversFile, at+".name", d.Name, "the driver's name")
		l.required(DriversFile, at+".infpath", d.InfPath, "infpath (the folder holding the .inf)")
		l.validateRule(DriversFile, at+".target", d.Target, true)
		l.validateSources(DriversFile, at+".sources", d.Sources)
	}
	for i, p := range sh.Packages {
		at := fmt.Sprintf("[%d]", i)
		l.required(PackagesFile, at+".name", p.Name, "the package's name")
		l.required(PackagesFile, at+".savepath", p.SavePath, "savepath (where the file goes in the image)")
		for j, u := range p.Unattend {
			l.validateUnattend(PackagesFile, fmt.Sprintf("%s.unattend[%d]", at, j), u)
		}
		l.validateRule(PackagesFile, at+".target", p.Target, true)
		l.validateSources(PackagesFile, at+".sources", p.Sources)
	}
	for i, u := range sh.UnattendCommands {
		at := fmt.Sprintf("[%d]", i)
		l.validateUnattend(UnattendCommandsFile, at, u.UnattendItem)
		l.validateRule(UnattendCommandsFile, at+".target", u.Target, true)
	}
	for i, s := range sh.DisabledServices {
		at := fmt.Sprintf("[%d]", i)
		l.required(DisabledServicesFile, at+".name", s.Name, "the service's name")
		l.validateRule(DisabledServicesFile, at+".target", s.Target, false)
	}
	for os, eds := range sh.ProductKeys {
		l.oneOf(ProductKeysFile, os, os, OSNames)
		for ed, key := range eds {
			if !productKeyRe.MatchString(key) {
				l.errorf(ProductKeysFile, os+"."+ed, "the product key must read XXXXX-XXXXX-XXXXX-XXXXX-XXXXX")
			}
		}
	}
}

func (l *loader) validateKey(cfg *Config, k *Key, pools map[string]string) {
	f := path0(k.File)
	switch {
	case k.Source != nil && (k.Image != nil || k.ISO != nil):
		l.errorf(f, "source", "a key starts either from an ISO (image: and iso:) or from a marketplace image (source:), not both")
	case k.Source == nil && (k.Image == nil || k.ISO == nil):
		missing := "image:"
		if k.Image != nil {
			missing = "iso:"
		}
		if k.Image == nil && k.ISO == nil {
			l.errorf(f, "", "an image key needs image: and iso: (built from an ISO) or source: (a marketplace image)")
		} else {
			l.errorf(f, "", "an ISO-based key needs both image: and iso:; %s is missing", missing)
		}
	}
	if k.Image != nil {
		l.validateImage(cfg, f, k.Image)
	}
	if k.ISO != nil {
		l.validateLocation(f, "iso.source", k.ISO.Source)
		if k.ISO.WimIndex < 0 {
			l.errorf(f, "iso.wimindex", "wimindex counts from 1")
		}
	}
	if s := k.Source; s != nil {
		l.oneOf(f, "source.platform", s.Platform, SupportedPlatforms)
		l.required(f, "source.platform", s.Platform, "source.platform")
		l.required(f, "source.publisher", s.Publisher, "the marketplace publisher")
		l.required(f, "source.offer", s.Offer, "the marketplace offer")
		l.required(f, "source.sku", s.SKU, "the marketplace sku")
	}
	l.oneOf(f, "distribution", k.Distribution, Distributions)

	for i, p := range k.Pools() {
		at := fmt.Sprintf("manager.pool[%d]", i)
		okD := l.required(f, at+".domain", p.Domain, "the pool's domain")
		okV := l.required(f, at+".variant", p.Variant, "the pool's variant")
		if okD && okV {
			if !poolPartRe.MatchString(p.Domain) || !poolPartRe.MatchString(p.Variant) {
				l.errorf(f, at, "pool %q: domain and variant are lower-case letters, digits, '-' and '_'", p.ID())
			} else if where, dup := pools[p.ID()]; dup {
				l.errorf(f, at, "pool %s is already declared in %s; a pool belongs to one key", p.ID(), where)
			} else {
				pools[p.ID()] = f
			}
		}
		l.oneOf(f, at+".lifecycle", p.Lifecycle, Lifecycles)
		l.oneOf(f, at+".platform", p.Platform, Clouds)
		if p.Capacity.Minimum < 0 || p.Capacity.Maximum < p.Capacity.Minimum {
			l.errorf(f, at+".capacity", "capacity needs 0 <= minimum <= maximum (have %d, %d)", p.Capacity.Minimum, p.Capacity.Maximum)
		}
		if p.Platform == "azure" {
			for j, loc := range p.Locations {
				if !KnownAzureRegion(loc) {
					l.errorf(f, fmt.Sprintf("%s.locations[%d]", at, j), "%q is not an Azure region%s", loc, suggest(NormalizeRegion(loc), azureRegionNames()))
				}
			}
		}
		if okD && okV && len(k.PoolTargets(p)) == 0 {
			l.errorf(f, at, "pool %s has no targets: no target's group ends with -%s (or names the pool under pools:); add a target or remove the pool", p.ID(), p.Domain)
		}
	}

	groups := map[string]int{}
	for i := range k.Targets {
		l.validateTarget(k, f, i, groups)
	}
}

// path0 turns a key's File back into the name the loader indexed it by.
func path0(file string) string {
	i := strings.LastIndexAny(file, `/\`)
	return file[i+1:]
}

func (l *loader) validateImage(cfg *Config, f string, im *Image) {
	l.required(f, "image.os", im.OS, "image.os")
	l.oneOf(f, "image.os", im.OS, OSNames)
	l.required(f, "image.edition", im.Edition, "image.edition")
	l.required(f, "image.language", im.Language, "image.language (e.g. en-US)")
	l.required(f, "image.architecture", im.Architecture, "image.architecture")
	l.oneOf(f, "image.architecture", im.Architecture, Architectures)
	l.required(f, "image.partition", im.Partition, "image.partition")
	l.oneOf(f, "image.partition", im.Partition, PartitionStyles)
	l.oneOf(f, "image.builder", im.Builder, Builders)
	l.required(f, "image.format", im.Format, "image.format")
	if im.Format == "VHDX" {
		l.errorf(f, "image.format", "Azure does not accept VHDX; use VHD")
	} else {
		l.oneOf(f, "image.format", im.Format, DiskFormats)
	}
	l.required(f, "image.type", im.Type, "image.type")
	l.oneOf(f, "image.type", im.Type, DiskTypes)
	if im.Size <= 0 {
		l.errorf(f, "image.size", "image.size is the disk size in GiB and must be positive")
	}
	if im.Hostname != "" && im.Hostname != "cib-sha" && !hostnameRe.MatchString(im.Hostname) {
		l.errorf(f, "image.hostname", "%q: a Windows computer name is 1-15 letters, digits or '-' (or cib-sha for cib-<commit>)", im.Hostname)
	}
	for _, st := range []struct {
		name string
		s    *SysprepStep
	}{{"reseal", im.Reseal}, {"generalize", im.Generalize}} {
		if st.s != nil {
			l.oneOf(f, "image."+st.name+".mode", st.s.Mode, SysprepModes)
			if !st.s.Omit {
				l.required(f, "image."+st.name+".mode", st.s.Mode, "image."+st.name+".mode")
			}
		}
	}
	if im.Network != nil {
		l.oneOf(f, "image.network.location", im.Network.Location, NetworkLocations)
	}
	for i, d := range im.Disks {
		for j, p := range d.Partitions {
			at := fmt.Sprintf("image.disks[%d].partitions[%d]", i, j)
			l.oneOf(f, at+".format", p.Format, []string{"NTFS", "FAT32"})
			l.oneOf(f, at+".type.name", p.Type.Name, []string{"Primary", "EFI", "MSR", "Extended", "Logical"})
			if (p.Size > 0) == p.Extend {
				l.errorf(f, at, "give a partition either size: (MiB) or extend: true")
			}
		}
	}
	if t := im.Target; t != nil {
		// a destination: the platform and container the VHD is stored in
		l.oneOf(f, "image.target.platform", t.Platform, []string{"amazon", "azure", "google", "local"})
		l.required(f, "image.target.platform", t.Platform, "image.target.platform")
		if t.Platform != "local" {
			l.required(f, "image.target.bucket", t.Bucket, "image.target.bucket (the storage container)")
		}
	}
	if im.OS != "" && im.Edition != "" {
		if _, ok := cfg.Shared.ProductKeys[im.OS][im.Edition]; !ok {
			l.errorf(f, "image.edition", "%s has no product key for %s %s; add it under %q: %q: in %s", ProductKeysFile, im.OS, im.Edition, im.OS, im.Edition, ProductKeysFile)
		}
	}
}

func (l *loader) validateTarget(k *Key, f string, i int, groups map[string]int) {
	t := &k.Targets[i]
	at := fmt.Sprintf("target[%d]", i)
	if l.required(f, at+".platform", t.Platform, "the target's platform") {
		l.oneOf(f, at+".platform", t.Platform, Clouds)
	}
	if l.required(f, at+".group", t.Group, "the target's resource group") {
		if !groupRe.MatchString(t.Group) {
			l.errorf(f, at+".group", "%q is not a valid resource group name", t.Group)
		}
		if j, dup := groups[t.Group]; dup {
			l.errorf(f, at+".group", "group %q is already the group of target[%d]; each target of a key needs its own group", t.Group, j)
		}
		groups[t.Group] = i
	}
	if l.required(f, at+".region", t.Region, "the target's region") && t.Platform == "azure" && !KnownAzureRegion(t.Region) {
		l.errorf(f, at+".region", "%q is not an Azure region%s", t.Region, suggest(NormalizeRegion(t.Region), azureRegionNames()))
	}
	for j, loc := range t.Locations {
		if t.Platform == "azure" && !KnownAzureRegion(loc) {
			l.errorf(f, fmt.Sprintf("%s.locations[%d]", at, j), "%q is not an Azure region%s", loc, suggest(NormalizeRegion(loc), azureRegionNames()))
		}
	}
	for j, id := range t.Pools {
		found := false
		for _, p := range k.Pools() {
			found = found || p.ID() == id
		}
		if !found {
			l.errorf(f, fmt.Sprintf("%s.pools[%d]", at, j), "pool %q is not declared under manager.pool of this key", id)
		}
	}
	if h := t.Hostname; h != nil {
		l.oneOf(f, at+".hostname.slug.type", h.Slug.Type, SlugTypes)
		if h.Format != "" && !strings.Contains(h.Format, "{0}") {
			l.errorf(f, at+".hostname.format", "%q has no {0} for the slug", h.Format)
		}
		if h.Slug.Length < 0 || h.Slug.Length > 15 {
			l.errorf(f, at+".hostname.slug.length", "slug length must be between 1 and 15")
		}
	}
	m := t.Machine
	switch {
	case m.Size != "" && m.Format != "":
		l.errorf(f, at+".machine", "give the VM size either as size: or as format: with cpu:, not both")
	case m.Size == "" && m.Format == "":
		l.errorf(f, at+".machine", "the VM size is missing: give size: (e.g. Standard_F8s_v2) or format: with cpu: (e.g. Standard_DS{0}_v2 and 3)")
	case m.Format != "":
		if !strings.Contains(m.Format, "{0}") {
			l.errorf(f, at+".machine.format", "%q has no {0}: it is the VM size with {0} where cpu goes, e.g. Standard_DS{0}_v2", m.Format)
		}
		if m.CPU <= 0 {
			l.errorf(f, at+".machine.cpu", "cpu must be a positive number when format is given")
		}
	}
	l.oneOf(f, at+".machine.hyperv", m.HyperV, HyperVGenerations)
	l.oneOf(f, at+".machine.agent", m.Agent, []string{"enable", "disable"})
	l.oneOf(f, at+".diagnostics", t.Diagnostics, []string{"enable", "disable"})
	for j, d := range t.Disk {
		dat := fmt.Sprintf("%s.disk[%d]", at, j)
		if d.OS != (j == 0) {
			l.errorf(f, dat+".os", "the first disk is the OS disk (os: true) and only the first")
		}
		if d.Size <= 0 {
			l.errorf(f, dat+".size", "disk size in GiB must be positive")
		}
		l.oneOf(f, dat+".variant", d.Variant, []string{"ssd", "hdd", "premium"})
		l.oneOf(f, dat+".caching", d.Caching, []string{"None", "ReadOnly", "ReadWrite"})
		l.oneOf(f, dat+".create", d.Create, []string{"FromImage", "Empty", "Attach"})
	}
	if n := t.Network; n != nil {
		names := map[string]bool{}
		for j, r := range n.Flow.Rules {
			rat := fmt.Sprintf("%s.network.flow.rules[%d]", at, j)
			if l.required(f, rat+".name", r.Name, "the rule's name") && names[r.Name] {
				l.errorf(f, rat+".name", "rule %q is defined twice in this security group", r.Name)
			}
			names[r.Name] = true
			l.oneOf(f, rat+".access", r.Access, []string{"Allow", "Deny"})
			l.oneOf(f, rat+".protocol", r.Protocol, []string{"Tcp", "Udp", "Icmp", "Esp", "Ah", "*"})
			l.oneOf(f, rat+".direction", r.Direction, []string{"Inbound", "Outbound"})
			if r.Priority < 100 || r.Priority > 4096 {
				l.errorf(f, rat+".priority", "priority must be between 100 and 4096 (Azure's range)")
			}
		}
	}
	if c := t.Capture; c != nil {
		l.oneOf(f, at+".capture.storage", c.Storage, []string{"Standard_LRS", "Premium_LRS", "StandardSSD_LRS", "Standard_ZRS"})
	}
	tags := map[string]bool{}
	for j, tg := range t.Tag {
		tat := fmt.Sprintf("%s.tag[%d]", at, j)
		if l.required(f, tat+".name", tg.Name, "the tag's name") && tags[tg.Name] {
			l.errorf(f, tat+".name", "tag %q is set twice", tg.Name)
		}
		tags[tg.Name] = true
	}
	if b := t.Bootstrap; b != nil {
		for j, e := range b.Executions {
			eat := fmt.Sprintf("%s.bootstrap.executions[%d]", at, j)
			l.required(f, eat+".name", e.Name, "the execution's name")
			l.oneOf(f, eat+".shell", e.Shell, BootstrapShells)
			if e.On != nil {
				for _, a := range []struct{ field, v string }{{"success", e.On.Success}, {"failure", e.On.Failure}} {
					if a.v != "" && !actionRe.MatchString(strings.TrimSpace(a.v)) {
						l.errorf(f, eat+".on."+a.field, "%q: use reboot, retry, retry-task, fail or retest, optionally followed by after N seconds|minutes|hours", a.v)
					}
				}
			}
		}
	}
}

package azure

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/v3"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/storage/armstorage/v2"

	"github.com/cib-project/cib/internal/machineimage"
)

// The kinds of resource prepare makes exist, as its report names them.
const (
	KindGroup           = "resource group"
	KindStorage         = "storage account"
	KindContainer       = "container"
	KindNSG             = "NSG"
	KindVNet            = "virtual network"
	KindSubnet          = "subnet"
	KindGallery         = "gallery"
	KindImageDefinition = "image definition"
)

// Status is what prepare did to one resource.
type Status string

// The statuses of a Change. In a dry run they are what would happen.
const (
	Created   Status = "created"
	Updated   Status = "updated"
	Unchanged Status = "unchanged"
)

// Change is what prepare did (or, in a dry run, would do) to one
// resource.
type Change struct {
	Status Status
	// Kind is one of the Kind constants.
	Kind string
	// Name is the resource's name; a nested resource's is its parent's
	// and its own (account/container, network/subnet,
	// gallery/definition).
	Name string
	// Group and Region are where the resource is (Region normalized as
	// Azure spells it: eastus).
	Group, Region string
	// Diff says what differed from the configuration, for an update.
	Diff []string
}

// String is the change as one report line: "updated NSG nsg-x (rg-x,
// eastus): rule allow-rdp: priority 110 → 120".
func (c Change) String() string {
	s := fmt.Sprintf("%s %s %s (%s, %s)", c.Status, c.Kind, c.Name, c.Group, normRegion(c.Region))
	if len(c.Diff) > 0 {
		s += ": " + strings.Join(c.Diff, "; ")
	}
	return s
}

// Site is one place a key's machine images are built (a target of the
// configuration), with the infrastructure it needs.
type Site struct {
	// Key is the image key, which names the site's gallery image
	// definition.
	Key string
	// Group and Region are the target's resource group and region.
	Group, Region string
	// Storage is the target's storage account ("": none), and
	// Containers the blob containers it holds for the key's disk images.
	Storage    string
	Containers []string
	// HyperVGeneration is the generation of the key's image definition:
	// V1 (the default) or V2.
	HyperVGeneration string
	// Network is the target's network, or nil; its group and region are
	// the site's (those given are ignored).
	Network *machineimage.Network
}

// name is how errors name a site.
func (s Site) name() string { return s.Key + " → " + s.Group }

// Infrastructure is what Prepare makes exist.
type Infrastructure struct {
	Sites []Site
	// Gallery, when set, is the Compute Gallery made in each site's
	// group, with an image definition per key.
	Gallery string
	// Tags are set on what Prepare creates (default cib:managed=true);
	// what exists keeps its own.
	Tags map[string]string
	// DryRun decides and reports what would change and writes nothing.
	DryRun bool
}

// PrepareReport is what Prepare did, one change per resource, in the
// order it went through them.
type PrepareReport struct {
	Changes []Change
	DryRun  bool
	// Warnings are disagreements between targets that change nothing of
	// what a resource does: NSG rules worded differently (the first
	// target's wording, by key, is used).
	Warnings []string
}

// Count is how many changes have status s.
func (r PrepareReport) Count(s Status) int {
	n := 0
	for _, c := range r.Changes {
		if c.Status == s {
			n++
		}
	}
	return n
}

// Changed reports whether anything was (or would be) created or updated.
func (r PrepareReport) Changed() bool {
	return r.Count(Created)+r.Count(Updated) > 0
}

// Prepare makes the infrastructure of want's sites exist as they
// describe: resource groups; storage accounts (StorageV2, Standard_LRS,
// HTTPS only, TLS 1.2, no public blob access) with their blob
// containers; NSGs with their rules, virtual networks and subnets; and,
// with want.Gallery, the gallery and an image definition per key.
// Resources shared by several sites are prepared once. It reads before
// it writes: what already matches gets no write, so a second run changes
// nothing. A resource in another region than the configuration's, a
// storage account name taken elsewhere, a storage account or image
// definition that differs in what cannot change are errors; nothing is
// moved or replaced. progress, when set, sees each change as it is
// decided. On an error, the report holds the changes made until then.
func (m *Machines) Prepare(ctx context.Context, want Infrastructure, progress func(Change)) (PrepareReport, error) {
	rep := PrepareReport{DryRun: want.DryRun}
	plan, err := planInfrastructure(want)
	if err != nil {
		return rep, err
	}
	tags := want.Tags
	if tags == nil {
		tags = map[string]string{machineimage.TagManaged: "true"}
	}
	note := func(c Change) {
		c.Region = normRegion(c.Region)
		rep.Changes = append(rep.Changes, c)
		if progress != nil {
			progress(c)
		}
	}
	for _, g := range plan {
		rep.Warnings = append(rep.Warnings, g.warnings...)
	}
	for _, g := range plan {
		c, err := m.reconcileGroup(ctx, g.name, g.region, tags, want.DryRun)
		if err != nil {
			return rep, err
		}
		note(c)
		for _, a := range g.accounts {
			c, err := m.reconcileAccount(ctx, g, a, tags, want.DryRun)
			if err != nil {
				return rep, err
			}
			note(c)
			for _, name := range a.containers {
				c, err := m.reconcileContainer(ctx, g, a.name, name, want.DryRun)
				if err != nil {
					return rep, err
				}
				note(c)
			}
		}
		o := netOptions{dryRun: want.DryRun, sameRegion: true}
		nsgIDs := map[string]string{}
		for _, n := range g.networks {
			n.Group, n.Region, n.Tags = g.name, g.region, tags
			id, ok := nsgIDs[strings.ToLower(n.NSG)]
			if !ok {
				var c Change
				if id, c, err = m.reconcileNSG(ctx, n, o); err != nil {
					return rep, err
				}
				nsgIDs[strings.ToLower(n.NSG)] = id
				note(c)
			}
			_, vc, sc, err := m.reconcileVNet(ctx, n, id, o)
			if err != nil {
				return rep, err
			}
			if !g.seenVNet(n.VNet) {
				note(vc)
			}
			note(sc)
		}
		if want.Gallery == "" {
			continue
		}
		c, err = m.reconcileGallery(ctx, g, want.Gallery, tags, want.DryRun)
		if err != nil {
			return rep, err
		}
		note(c)
		for _, d := range g.definitions {
			c, err := m.reconcileDefinition(ctx, g, want.Gallery, d, tags, want.DryRun)
			if err != nil {
				return rep, err
			}
			note(c)
		}
	}
	return rep, nil
}

// groupPlan is what Prepare makes in one resource group, shared
// resources once.
type groupPlan struct {
	name, region string
	sites        []string
	accounts     []accountPlan
	networks     []machineimage.Network
	definitions  []definitionPlan
	vnetsSeen    map[string]bool
	warnings     []string
}

// seenVNet reports whether the virtual network was reported already (a
// network with several subnets), and marks it.
func (g *groupPlan) seenVNet(name string) bool {
	if g.vnetsSeen == nil {
		g.vnetsSeen = map[string]bool{}
	}
	k := strings.ToLower(name)
	seen := g.vnetsSeen[k]
	g.vnetsSeen[k] = true
	return seen
}

type accountPlan struct {
	name       string
	containers []string
	sites      []string
}

type definitionPlan struct {
	key, hyperV string
}

// planInfrastructure groups the sites by resource group and removes what
// they share, refusing sites that disagree about a shared resource.
func planInfrastructure(want Infrastructure) ([]*groupPlan, error) {
	var plan []*groupPlan
	byName := map[string]*groupPlan{}
	accountGroup := map[string]string{}
	var errs []error
	for _, s := range want.Sites {
		if s.Group == "" || s.Region == "" {
			errs = append(errs, fmt.Errorf("target %s: a resource group and a region are needed (have %q, %q)", s.name(), s.Group, s.Region))
			continue
		}
		g := byName[strings.ToLower(s.Group)]
		if g == nil {
			g = &groupPlan{name: s.Group, region: s.Region}
			byName[strings.ToLower(s.Group)] = g
			plan = append(plan, g)
		} else if !sameRegion(g.region, s.Region) {
			errs = append(errs, fmt.Errorf("targets disagree: resource group %s is in %s for %s and in %s for %s", s.Group, g.region, strings.Join(g.sites, ", "), s.Region, s.name()))
			continue
		}
		g.sites = append(g.sites, s.name())

		if s.Storage != "" {
			lower := strings.ToLower(s.Storage)
			if other, ok := accountGroup[lower]; ok && !strings.EqualFold(other, s.Group) {
				errs = append(errs, fmt.Errorf("targets disagree: storage account %s is in resource group %s and in %s (for %s); storage account names are global", s.Storage, other, s.Group, s.name()))
				continue
			}
			accountGroup[lower] = s.Group
			i := slices.IndexFunc(g.accounts, func(a accountPlan) bool { return strings.EqualFold(a.name, s.Storage) })
			if i < 0 {
				g.accounts = append(g.accounts, accountPlan{name: s.Storage})
				i = len(g.accounts) - 1
			}
			a := &g.accounts[i]
			a.sites = append(a.sites, s.name())
			for _, c := range s.Containers {
				if c != "" && !slices.Contains(a.containers, c) {
					a.containers = append(a.containers, c)
				}
			}
		} else if len(s.Containers) > 0 {
			errs = append(errs, fmt.Errorf("target %s: containers %s need a storage account, and the target names none", s.name(), strings.Join(s.Containers, ", ")))
		}

		if s.Network != nil {
			if err := addNetwork(g, *s.Network, s.name()); err != nil {
				errs = append(errs, err)
			}
		}

		if want.Gallery != "" {
			hv := s.HyperVGeneration
			if hv == "" {
				hv = string(armcompute.HyperVGenerationV1)
			}
			i := slices.IndexFunc(g.definitions, func(d definitionPlan) bool { return d.key == s.Key })
			switch {
			case i < 0:
				g.definitions = append(g.definitions, definitionPlan{key: s.Key, hyperV: hv})
			case !strings.EqualFold(g.definitions[i].hyperV, hv):
				errs = append(errs, fmt.Errorf("targets disagree: the image definition %s in %s is Hyper-V generation %s and %s (for %s)", s.Key, s.Group, g.definitions[i].hyperV, hv, s.name()))
			}
		}
	}
	return plan, errors.Join(errs...)
}

// addNetwork adds a site's network to its group's, once; sites that name
// the same NSG, virtual network or subnet must describe them alike.
func addNetwork(g *groupPlan, n machineimage.Network, site string) error {
	if n.NSG == "" || n.VNet == "" || n.Subnet == "" || n.Prefix == "" || n.SubnetPrefix == "" {
		return fmt.Errorf("target %s: the network needs an NSG, a virtual network with a prefix and a subnet with a prefix (have %q, %q %q, %q %q)",
			site, n.NSG, n.VNet, n.Prefix, n.Subnet, n.SubnetPrefix)
	}
	n.Group, n.Region, n.Tags = "", "", nil
	for _, o := range g.networks {
		switch {
		case strings.EqualFold(o.NSG, n.NSG) && !slices.EqualFunc(o.Rules, n.Rules, sameRuleEffect):
			// Each build would set the NSG to its own rules: refused,
			// rather than letting them flap.
			return fmt.Errorf("targets disagree: NSG %s in %s has different rules for %s (%s): an NSG holds one set of rules; make them the same",
				n.NSG, g.name, site, ruleDisagreement(o.Rules, n.Rules))
		case strings.EqualFold(o.NSG, n.NSG) && !slices.EqualFunc(o.Rules, n.Rules, sameConfiguredRule):
			// Only descriptions differ (the ported configuration words
			// some rules differently from key to key): the NSG filters the
			// same traffic whichever wording it carries.
			g.warnings = append(g.warnings, fmt.Sprintf("NSG %s in %s: %s for %s; the first wording is kept (make them the same to silence this)",
				n.NSG, g.name, ruleDisagreement(o.Rules, n.Rules), site))
			return nil
		case strings.EqualFold(o.VNet, n.VNet) && (o.Prefix != n.Prefix || !slices.Equal(o.DNS, n.DNS)):
			return fmt.Errorf("targets disagree: virtual network %s in %s has another address space or DNS servers for %s", n.VNet, g.name, site)
		case strings.EqualFold(o.VNet, n.VNet) && strings.EqualFold(o.Subnet, n.Subnet):
			if o.SubnetPrefix != n.SubnetPrefix || !strings.EqualFold(o.NSG, n.NSG) {
				return fmt.Errorf("targets disagree: subnet %s/%s in %s has another prefix or NSG for %s", n.VNet, n.Subnet, g.name, site)
			}
			return nil
		}
	}
	g.networks = append(g.networks, n)
	return nil
}

// ruleDisagreement says where two rule lists first differ.
func ruleDisagreement(a, b []machineimage.Rule) string {
	for i := range min(len(a), len(b)) {
		switch {
		case a[i].Name != b[i].Name:
			return fmt.Sprintf("rule %d is %s for one and %s for the other", i+1, a[i].Name, b[i].Name)
		case !sameRuleEffect(a[i], b[i]):
			return fmt.Sprintf("rule %s differs in what it lets through (access, protocol, direction, priority, addresses or ports)", a[i].Name)
		case a[i].Description != b[i].Description:
			return fmt.Sprintf("rule %s: description %q and %q", a[i].Name, a[i].Description, b[i].Description)
		}
	}
	return fmt.Sprintf("%d rules and %d", len(a), len(b))
}

// sameConfiguredRule compares two rules of the configuration.
func sameConfiguredRule(a, b machineimage.Rule) bool {
	return a.Description == b.Description && sameRuleEffect(a, b)
}

// sameRuleEffect compares what two rules of the configuration do: all
// but their descriptions.
func sameRuleEffect(a, b machineimage.Rule) bool {
	return a.Name == b.Name && strings.EqualFold(a.Access, b.Access) &&
		strings.EqualFold(a.Protocol, b.Protocol) && strings.EqualFold(a.Direction, b.Direction) && a.Priority == b.Priority &&
		slices.Equal(a.SourceAddressPrefix, b.SourceAddressPrefix) && a.SourcePortRange == b.SourcePortRange &&
		a.DestinationPrefix == b.DestinationPrefix && slices.Equal(a.DestinationPortRange, b.DestinationPortRange)
}

// reconcileGroup makes resource group name exist in region. An existing
// group keeps its tags (they are its owner's); one in another region is
// an error.
func (m *Machines) reconcileGroup(ctx context.Context, name, region string, tags map[string]string, dryRun bool) (Change, error) {
	c := Change{Status: Unchanged, Kind: KindGroup, Name: name, Group: name, Region: region}
	got, err := m.groups.Get(ctx, name, nil)
	switch {
	case err == nil:
		if got.Location != nil && !sameRegion(*got.Location, region) {
			return c, wrongRegion("resource group", name, *got.Location, region)
		}
		return c, nil
	case !notFound(err):
		return c, classify(fmt.Errorf("azure: get resource group %s: %w", name, err))
	}
	c.Status = Created
	if dryRun {
		return c, nil
	}
	// Spelt as Azure would store it: East US is eastus.
	g := armresources.ResourceGroup{Location: to.Ptr(normRegion(region)), Tags: azureTags(tags)}
	if _, err := m.groups.CreateOrUpdate(ctx, name, g, nil); err != nil {
		return c, classify(fmt.Errorf("azure: create resource group %s: %w", name, err))
	}
	return c, nil
}

// The storage account every target gets.
const (
	accountKind = armstorage.KindStorageV2
	accountSKU  = armstorage.SKUNameStandardLRS
	accountTLS  = armstorage.MinimumTLSVersionTLS12
)

// reconcileAccount makes storage account a exist in g. An existing one
// gets HTTPS only, TLS 1.2 and no public blob access if it lacks them;
// its kind and SKU are not converted (that changes its cost and
// redundancy: a person decides), so another kind or SKU is an error, as
// is a name another subscription or group has taken.
func (m *Machines) reconcileAccount(ctx context.Context, g *groupPlan, a accountPlan, tags map[string]string, dryRun bool) (Change, error) {
	where := g.name + "/" + a.name
	c := Change{Status: Unchanged, Kind: KindStorage, Name: a.name, Group: g.name, Region: g.region}
	taken := func(detail string) error {
		return fmt.Errorf("azure: storage account %s of target %s: the name is already taken by another subscription or resource group (%s); storage account names are global: choose another in the configuration",
			a.name, strings.Join(a.sites, ", "), detail)
	}
	got, err := m.accounts.GetProperties(ctx, g.name, a.name, nil)
	switch {
	case err == nil:
		acc := got.Account
		if acc.Location != nil && !sameRegion(*acc.Location, g.region) {
			return c, wrongRegion("storage account", where, *acc.Location, g.region)
		}
		if k := netDeref(acc.Kind); k != accountKind {
			return c, fmt.Errorf("azure: storage account %s is of kind %s, and cib wants %s: cib does not convert storage accounts; convert it or name another account", where, k, accountKind)
		}
		if acc.SKU == nil || netDeref(acc.SKU.Name) != accountSKU {
			var sku armstorage.SKUName
			if acc.SKU != nil {
				sku = netDeref(acc.SKU.Name)
			}
			return c, fmt.Errorf("azure: storage account %s has SKU %s, and cib wants %s: cib does not convert storage accounts; convert it or name another account", where, sku, accountSKU)
		}
		p := acc.Properties
		if p == nil {
			p = &armstorage.AccountProperties{}
		}
		var update armstorage.AccountPropertiesUpdateParameters
		// Unset is drift too: older accounts leave these unset, and what
		// unset means has changed between API versions.
		shown := func(b *bool) string {
			if b == nil {
				return "unset"
			}
			return fmt.Sprint(*b)
		}
		if !netDeref(p.EnableHTTPSTrafficOnly) {
			c.Diff = append(c.Diff, "HTTPS only "+shown(p.EnableHTTPSTrafficOnly)+" → true")
			update.EnableHTTPSTrafficOnly = to.Ptr(true)
		}
		if tls := netDeref(p.MinimumTLSVersion); tls != accountTLS {
			c.Diff = append(c.Diff, fmt.Sprintf("minimum TLS %s → %s", orNone(string(tls)), accountTLS))
			update.MinimumTLSVersion = to.Ptr(accountTLS)
		}
		if p.AllowBlobPublicAccess == nil || *p.AllowBlobPublicAccess {
			c.Diff = append(c.Diff, "public blob access "+shown(p.AllowBlobPublicAccess)+" → false")
			update.AllowBlobPublicAccess = to.Ptr(false)
		}
		if len(c.Diff) == 0 {
			return c, nil
		}
		c.Status = Updated
		if dryRun {
			return c, nil
		}
		if _, err := m.accounts.Update(ctx, g.name, a.name, armstorage.AccountUpdateParameters{Properties: &update}, nil); err != nil {
			return c, classify(fmt.Errorf("azure: update storage account %s: %w", where, err))
		}
		return c, nil
	case !notFound(err):
		return c, classify(fmt.Errorf("azure: get storage account %s: %w", where, err))
	}

	// Not in the group: the name may be someone else's.
	avail, err := m.accounts.CheckNameAvailability(ctx, armstorage.AccountCheckNameAvailabilityParameters{
		Name: to.Ptr(a.name), Type: to.Ptr("Microsoft.Storage/storageAccounts"),
	}, nil)
	if err != nil {
		return c, classify(fmt.Errorf("azure: check the name of storage account %s: %w", where, err))
	}
	if !netDeref(avail.NameAvailable) {
		if netDeref(avail.Reason) == armstorage.ReasonAccountNameInvalid {
			return c, fmt.Errorf("azure: storage account %s of target %s: the name is not valid: %s", a.name, strings.Join(a.sites, ", "), netDeref(avail.Message))
		}
		return c, taken(netDeref(avail.Message))
	}
	c.Status = Created
	if dryRun {
		return c, nil
	}
	p, err := m.accounts.BeginCreate(ctx, g.name, a.name, armstorage.AccountCreateParameters{
		Kind: to.Ptr(accountKind), Location: to.Ptr(g.region), Tags: azureTags(tags),
		SKU: &armstorage.SKU{Name: to.Ptr(accountSKU)},
		Properties: &armstorage.AccountPropertiesCreateParameters{
			EnableHTTPSTrafficOnly: to.Ptr(true),
			MinimumTLSVersion:      to.Ptr(accountTLS),
			AllowBlobPublicAccess:  to.Ptr(false),
		},
	}, nil)
	if err == nil {
		_, err = p.PollUntilDone(ctx, m.poll())
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) && (re.ErrorCode == "StorageAccountAlreadyTaken" || re.ErrorCode == "StorageAccountAlreadyExists") {
		return c, taken(re.ErrorCode)
	}
	if err != nil {
		return c, classify(fmt.Errorf("azure: create storage account %s: %w", where, err))
	}
	return c, nil
}

// reconcileContainer makes blob container name exist in account, through
// Resource Manager (no data-plane access is needed), without public
// access.
func (m *Machines) reconcileContainer(ctx context.Context, g *groupPlan, account, name string, dryRun bool) (Change, error) {
	where := g.name + "/" + account + "/" + name
	c := Change{Status: Unchanged, Kind: KindContainer, Name: account + "/" + name, Group: g.name, Region: g.region}
	_, err := m.containers.Get(ctx, g.name, account, name, nil)
	switch {
	case err == nil:
		return c, nil
	case !notFound(err):
		return c, classify(fmt.Errorf("azure: get container %s: %w", where, err))
	}
	c.Status = Created
	if dryRun {
		return c, nil
	}
	_, err = m.containers.Create(ctx, g.name, account, name, armstorage.BlobContainer{
		ContainerProperties: &armstorage.ContainerProperties{PublicAccess: to.Ptr(armstorage.PublicAccessNone)},
	}, nil)
	if err != nil {
		return c, classify(fmt.Errorf("azure: create container %s: %w", where, err))
	}
	return c, nil
}

// reconcileGallery makes Compute Gallery name exist in g.
func (m *Machines) reconcileGallery(ctx context.Context, g *groupPlan, name string, tags map[string]string, dryRun bool) (Change, error) {
	where := g.name + "/" + name
	c := Change{Status: Unchanged, Kind: KindGallery, Name: name, Group: g.name, Region: g.region}
	got, err := m.galleries.Get(ctx, g.name, name, nil)
	switch {
	case err == nil:
		if got.Location != nil && !sameRegion(*got.Location, g.region) {
			return c, wrongRegion("gallery", where, *got.Location, g.region)
		}
		return c, nil
	case !notFound(err):
		return c, classify(fmt.Errorf("azure: get gallery %s: %w", where, err))
	}
	c.Status = Created
	if dryRun {
		return c, nil
	}
	p, err := m.galleries.BeginCreateOrUpdate(ctx, g.name, name, armcompute.Gallery{
		Location: to.Ptr(g.region), Tags: azureTags(tags),
		Properties: &armcompute.GalleryProperties{Description: to.Ptr("machine images built by cib")},
	}, nil)
	if err = pollDone(ctx, m, p, err); err != nil {
		return c, classify(fmt.Errorf("azure: create gallery %s: %w", where, err))
	}
	return c, nil
}

// reconcileDefinition makes the image definition of key d exist in
// gallery: Windows, generalized, d's Hyper-V generation, identified as
// publisher cib, offer the gallery, SKU the key. Azure cannot change
// these in an existing definition, so one that differs is an error.
func (m *Machines) reconcileDefinition(ctx context.Context, g *groupPlan, gallery string, d definitionPlan, tags map[string]string, dryRun bool) (Change, error) {
	where := g.name + "/" + gallery + "/" + d.key
	c := Change{Status: Unchanged, Kind: KindImageDefinition, Name: gallery + "/" + d.key, Group: g.name, Region: g.region}
	want := armcompute.GalleryImageProperties{
		OSType:           to.Ptr(armcompute.OperatingSystemTypesWindows),
		OSState:          to.Ptr(armcompute.OperatingSystemStateTypesGeneralized),
		HyperVGeneration: to.Ptr(canonical(d.hyperV, armcompute.PossibleHyperVGenerationValues())),
		Identifier:       &armcompute.GalleryImageIdentifier{Publisher: to.Ptr("cib"), Offer: to.Ptr(gallery), SKU: to.Ptr(d.key)},
	}
	got, err := m.galleryImages.Get(ctx, g.name, gallery, d.key, nil)
	switch {
	case err == nil:
		if got.Location != nil && !sameRegion(*got.Location, g.region) {
			return c, wrongRegion("image definition", where, *got.Location, g.region)
		}
		if diff := definitionDiffs(got.Properties, &want); len(diff) > 0 {
			return c, fmt.Errorf("azure: image definition %s differs from the configuration (%s), and Azure cannot change that in an existing definition: delete it (with its versions) or use another gallery",
				where, strings.Join(diff, "; "))
		}
		return c, nil
	case !notFound(err):
		return c, classify(fmt.Errorf("azure: get image definition %s: %w", where, err))
	}
	c.Status = Created
	if dryRun {
		return c, nil
	}
	p, err := m.galleryImages.BeginCreateOrUpdate(ctx, g.name, gallery, d.key, armcompute.GalleryImage{
		Location: to.Ptr(g.region), Tags: azureTags(tags), Properties: &want,
	}, nil)
	if err = pollDone(ctx, m, p, err); err != nil {
		return c, classify(fmt.Errorf("azure: create image definition %s: %w", where, err))
	}
	return c, nil
}

// definitionDiffs says how an image definition's unchangeable properties
// differ from want's.
func definitionDiffs(have, want *armcompute.GalleryImageProperties) []string {
	if have == nil {
		have = &armcompute.GalleryImageProperties{}
	}
	var out []string
	diff := func(field, a, b string) {
		if !strings.EqualFold(a, b) {
			out = append(out, fmt.Sprintf("%s %s → %s", field, orNone(a), orNone(b)))
		}
	}
	diff("OS type", string(netDeref(have.OSType)), string(netDeref(want.OSType)))
	diff("OS state", string(netDeref(have.OSState)), string(netDeref(want.OSState)))
	hv := string(netDeref(have.HyperVGeneration))
	if hv == "" {
		hv = string(armcompute.HyperVGenerationV1) // Azure's default
	}
	diff("Hyper-V generation", hv, string(netDeref(want.HyperVGeneration)))
	id := func(i *armcompute.GalleryImageIdentifier) string {
		if i == nil {
			return ""
		}
		return netDeref(i.Publisher) + "/" + netDeref(i.Offer) + "/" + netDeref(i.SKU)
	}
	diff("identifier", id(have.Identifier), id(want.Identifier))
	return out
}

// sameRegion compares two spellings of a region: "East US" is eastus.
func sameRegion(a, b string) bool { return normRegion(a) == normRegion(b) }

// normRegion is a region as Azure returns it: "East US" is eastus.
func normRegion(r string) string { return strings.ToLower(strings.ReplaceAll(r, " ", "")) }

// wrongRegion is the error of a resource that exists in another region
// than the configuration's: prepare does not move resources.
func wrongRegion(kind, where, have, want string) error {
	return fmt.Errorf("azure: %s %s is in region %s, but the configuration puts it in %s: cib does not move resources; move or delete it, or change the configuration",
		kind, where, normRegion(have), normRegion(want))
}

// orNone is s, or "none" when s is empty.
func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

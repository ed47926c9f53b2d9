package azure

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v7"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/v3"

	"github.com/cib-project/cib/internal/machineimage"
)

// EnsureNetwork makes the resource group, the NSG (its rules reconciled
// with n.Rules), the virtual network and its subnet exist as n describes,
// and returns the subnet's ID. It reads before it writes, so that a
// network already as described costs only reads: runs share it, and
// several may ensure it at once.
func (m *Machines) EnsureNetwork(ctx context.Context, n machineimage.Network) (string, error) {
	if n.Group == "" || n.Region == "" || n.NSG == "" || n.VNet == "" || n.Subnet == "" {
		return "", fmt.Errorf("azure: ensure network: group, region, NSG, virtual network and subnet are all needed (have %q, %q, %q, %q, %q)",
			n.Group, n.Region, n.NSG, n.VNet, n.Subnet)
	}
	if err := m.ensureGroup(ctx, n.Group, n.Region, n.Tags); err != nil {
		return "", err
	}
	nsgID, err := m.ensureNSG(ctx, n)
	if err != nil {
		return "", err
	}
	return m.ensureVNet(ctx, n, nsgID)
}

// ensureGroup creates resource group name in region with tags unless it
// exists; an existing group is left as it is (its tags are its owner's).
func (m *Machines) ensureGroup(ctx context.Context, name, region string, tags map[string]string) error {
	_, err := m.groups.Get(ctx, name, nil)
	if err == nil {
		return nil
	}
	if !notFound(err) {
		return classify(fmt.Errorf("azure: get resource group %s: %w", name, err))
	}
	g := armresources.ResourceGroup{Location: to.Ptr(region), Tags: azureTags(tags)}
	if _, err := m.groups.CreateOrUpdate(ctx, name, g, nil); err != nil {
		return classify(fmt.Errorf("azure: create resource group %s: %w", name, err))
	}
	return nil
}

// ensureNSG creates the NSG unless it exists and reconciles its rules
// with n.Rules: rules not in n are deleted, changed ones replaced,
// missing ones created; the others are not touched. It returns the NSG's
// ID.
func (m *Machines) ensureNSG(ctx context.Context, n machineimage.Network) (string, error) {
	id, _, err := m.reconcileNSG(ctx, n, netOptions{})
	return id, err
}

// netOptions are how prepare reconciles a network, where EnsureNetwork
// (the zero value) only makes it usable.
type netOptions struct {
	// dryRun decides and reports without writing.
	dryRun bool
	// sameRegion refuses a resource that exists in another region than
	// the configuration's.
	sameRegion bool
}

// checkRegion returns the error of an existing resource (kind name) in
// another region than want, when o asks for the check.
func (o netOptions) checkRegion(kind, name string, have *string, want string) error {
	if !o.sameRegion || have == nil || sameRegion(*have, want) {
		return nil
	}
	return wrongRegion(kind, name, *have, want)
}

// reconcileNSG is ensureNSG that also says what it did (or, with
// o.dryRun, would do): created, updated (with the rules that differed)
// or unchanged. In a dry run the ID of an NSG that does not exist yet is
// the one it would get.
func (m *Machines) reconcileNSG(ctx context.Context, n machineimage.Network, o netOptions) (string, Change, error) {
	where := n.Group + "/" + n.NSG
	change := Change{Status: Unchanged, Kind: KindNSG, Name: n.NSG, Group: n.Group, Region: n.Region}
	want := map[string]*armnetwork.SecurityRulePropertiesFormat{}
	for _, r := range n.Rules {
		if _, dup := want[strings.ToLower(r.Name)]; dup || r.Name == "" {
			return "", change, fmt.Errorf("azure: NSG %s: rule %q: a rule needs a name of its own", where, r.Name)
		}
		want[strings.ToLower(r.Name)] = ruleProperties(r)
	}
	got, err := m.nsgs.Get(ctx, n.Group, n.NSG, nil)
	nsg := got.SecurityGroup
	switch {
	case notFound(err) && o.dryRun:
		change.Status = Created
		return m.resourceID(n.Group, "Microsoft.Network/networkSecurityGroups", n.NSG), change, nil
	case notFound(err):
		// Created without rules, which are added one by one below, so
		// that a failure names its rule.
		p, err := m.nsgs.BeginCreateOrUpdate(ctx, n.Group, n.NSG, armnetwork.SecurityGroup{
			Location: to.Ptr(n.Region), Tags: azureTags(n.Tags),
			Properties: &armnetwork.SecurityGroupPropertiesFormat{},
		}, nil)
		if err == nil {
			var r armnetwork.SecurityGroupsClientCreateOrUpdateResponse
			r, err = p.PollUntilDone(ctx, m.poll())
			nsg = r.SecurityGroup
		}
		if err != nil {
			return "", change, classify(fmt.Errorf("azure: create NSG %s: %w", where, err))
		}
		change.Status = Created
	case err != nil:
		return "", change, classify(fmt.Errorf("azure: get NSG %s: %w", where, err))
	default:
		if err := o.checkRegion("NSG", where, nsg.Location, n.Region); err != nil {
			return "", change, err
		}
	}
	if nsg.ID == nil {
		return "", change, fmt.Errorf("azure: NSG %s has no ID", where)
	}

	have := map[string]*armnetwork.SecurityRulePropertiesFormat{}
	var extra []string
	if nsg.Properties != nil {
		for _, r := range nsg.Properties.SecurityRules {
			if r == nil || r.Name == nil {
				continue
			}
			have[strings.ToLower(*r.Name)] = r.Properties
			if _, ok := want[strings.ToLower(*r.Name)]; !ok {
				extra = append(extra, *r.Name)
			}
		}
	}
	// A rule change is an update of an NSG that existed; the rules of a
	// new one are part of its creation.
	note := func(s string) {
		if change.Status != Created {
			change.Status = Updated
			change.Diff = append(change.Diff, s)
		}
	}
	// Deletes first, then changes, then additions: a rule's priority is
	// free again before another takes it.
	for _, name := range extra {
		note("rule " + name + " removed")
		if o.dryRun {
			continue
		}
		p, err := m.rules.BeginDelete(ctx, n.Group, n.NSG, name, nil)
		if err == nil {
			_, err = p.PollUntilDone(ctx, m.poll())
		}
		if err != nil {
			return "", change, classify(fmt.Errorf("azure: NSG %s: delete rule %s: %w", where, name, err))
		}
	}
	for _, changed := range []bool{true, false} {
		for _, r := range n.Rules {
			old, exists := have[strings.ToLower(r.Name)]
			if exists != changed || (exists && sameRule(old, want[strings.ToLower(r.Name)])) {
				continue
			}
			verb := "create"
			if exists {
				verb = "update"
				note("rule " + r.Name + ": " + strings.Join(ruleDiffs(old, want[strings.ToLower(r.Name)]), ", "))
			} else {
				note("rule " + r.Name + " added")
			}
			if o.dryRun {
				continue
			}
			p, err := m.rules.BeginCreateOrUpdate(ctx, n.Group, n.NSG, r.Name, armnetwork.SecurityRule{
				Name: to.Ptr(r.Name), Properties: want[strings.ToLower(r.Name)],
			}, nil)
			if err == nil {
				_, err = p.PollUntilDone(ctx, m.poll())
			}
			if err != nil {
				return "", change, classify(fmt.Errorf("azure: NSG %s: %s rule %s: %w", where, verb, r.Name, err))
			}
		}
	}
	return *nsg.ID, change, nil
}

// ensureVNet creates the virtual network (with the subnet) unless it
// exists; an existing one gets the address prefix and DNS servers of n
// if it lacks them, keeping its other subnets, and the subnet is created
// or set to n's prefix and NSG. It returns the subnet's ID.
func (m *Machines) ensureVNet(ctx context.Context, n machineimage.Network, nsgID string) (string, error) {
	id, _, _, err := m.reconcileVNet(ctx, n, nsgID, netOptions{})
	return id, err
}

// reconcileVNet is ensureVNet that also says what it did (or, with
// o.dryRun, would do) to the virtual network and to the subnet. In a dry
// run the ID of a subnet that does not exist yet is the one it would
// get.
func (m *Machines) reconcileVNet(ctx context.Context, n machineimage.Network, nsgID string, o netOptions) (string, Change, Change, error) {
	where := n.Group + "/" + n.VNet
	vc := Change{Status: Unchanged, Kind: KindVNet, Name: n.VNet, Group: n.Group, Region: n.Region}
	sc := Change{Status: Unchanged, Kind: KindSubnet, Name: n.VNet + "/" + n.Subnet, Group: n.Group, Region: n.Region}
	wouldBe := m.resourceID(n.Group, "Microsoft.Network/virtualNetworks", n.VNet) + "/subnets/" + n.Subnet
	got, err := m.vnets.Get(ctx, n.Group, n.VNet, nil)
	vnet := got.VirtualNetwork
	switch {
	case notFound(err):
		vc.Status, sc.Status = Created, Created
		if o.dryRun {
			return wouldBe, vc, sc, nil
		}
		vnet = armnetwork.VirtualNetwork{
			Location: to.Ptr(n.Region), Tags: azureTags(n.Tags),
			Properties: &armnetwork.VirtualNetworkPropertiesFormat{
				AddressSpace: &armnetwork.AddressSpace{AddressPrefixes: []*string{to.Ptr(n.Prefix)}},
				DhcpOptions:  &armnetwork.DhcpOptions{DNSServers: to.SliceOfPtrs(n.DNS...)},
				Subnets: []*armnetwork.Subnet{{
					Name: to.Ptr(n.Subnet),
					Properties: &armnetwork.SubnetPropertiesFormat{
						AddressPrefix:        to.Ptr(n.SubnetPrefix),
						NetworkSecurityGroup: &armnetwork.SecurityGroup{ID: to.Ptr(nsgID)},
					},
				}},
			},
		}
		if vnet, err = m.putVNet(ctx, n.Group, n.VNet, vnet); err != nil {
			return "", vc, sc, classify(fmt.Errorf("azure: create virtual network %s: %w", where, err))
		}
	case err != nil:
		return "", vc, sc, classify(fmt.Errorf("azure: get virtual network %s: %w", where, err))
	default:
		if err := o.checkRegion("virtual network", where, vnet.Location, n.Region); err != nil {
			return "", vc, sc, err
		}
		if vnet.Properties == nil {
			vnet.Properties = &armnetwork.VirtualNetworkPropertiesFormat{}
		}
		p := vnet.Properties
		if p.AddressSpace == nil {
			p.AddressSpace = &armnetwork.AddressSpace{}
		}
		if !slices.ContainsFunc(p.AddressSpace.AddressPrefixes, func(s *string) bool { return s != nil && *s == n.Prefix }) {
			// Added, not replaced: the other prefixes may hold other
			// subnets.
			vc.Diff = append(vc.Diff, fmt.Sprintf("address space %s + %s", listOrNone(derefs(p.AddressSpace.AddressPrefixes)), n.Prefix))
			p.AddressSpace.AddressPrefixes = append(p.AddressSpace.AddressPrefixes, to.Ptr(n.Prefix))
		}
		var dns []string
		if p.DhcpOptions != nil {
			dns = derefs(p.DhcpOptions.DNSServers)
		}
		if !slices.Equal(dns, n.DNS) {
			vc.Diff = append(vc.Diff, fmt.Sprintf("DNS servers %s → %s", listOrNone(dns), listOrNone(n.DNS)))
			p.DhcpOptions = &armnetwork.DhcpOptions{DNSServers: to.SliceOfPtrs(n.DNS...)}
		}
		if len(vc.Diff) > 0 {
			vc.Status = Updated
			// The PUT carries the subnets as read, so that the others
			// stay.
			if !o.dryRun {
				if vnet, err = m.putVNet(ctx, n.Group, n.VNet, vnet); err != nil {
					return "", vc, sc, classify(fmt.Errorf("azure: update virtual network %s: %w", where, err))
				}
			}
		}
	}

	var subnet *armnetwork.Subnet
	if vnet.Properties != nil {
		for _, s := range vnet.Properties.Subnets {
			if s != nil && strings.EqualFold(netDeref(s.Name), n.Subnet) {
				subnet = s
			}
		}
	}
	verb := "update"
	if subnet == nil {
		verb = "create"
		sc.Status = Created
		subnet = &armnetwork.Subnet{Name: to.Ptr(n.Subnet)}
	}
	if subnet.Properties == nil {
		subnet.Properties = &armnetwork.SubnetPropertiesFormat{}
	}
	sp := subnet.Properties
	prefixOK := netDeref(sp.AddressPrefix) == n.SubnetPrefix ||
		(sp.AddressPrefix == nil && len(sp.AddressPrefixes) == 1 && netDeref(sp.AddressPrefixes[0]) == n.SubnetPrefix)
	nsgOK := sp.NetworkSecurityGroup != nil && strings.EqualFold(netDeref(sp.NetworkSecurityGroup.ID), nsgID)
	if subnet.ID != nil && prefixOK && nsgOK {
		return *subnet.ID, vc, sc, nil
	}
	if sc.Status != Created {
		sc.Status = Updated
		if !prefixOK {
			have := derefs(sp.AddressPrefixes)
			if sp.AddressPrefix != nil {
				have = []string{*sp.AddressPrefix}
			}
			sc.Diff = append(sc.Diff, fmt.Sprintf("prefix %s → %s", listOrNone(have), n.SubnetPrefix))
		}
		if !nsgOK {
			have := "none"
			if sp.NetworkSecurityGroup != nil && sp.NetworkSecurityGroup.ID != nil {
				have = lastSegment(*sp.NetworkSecurityGroup.ID)
			}
			sc.Diff = append(sc.Diff, fmt.Sprintf("NSG %s → %s", have, lastSegment(nsgID)))
		}
	}
	if o.dryRun {
		return wouldBe, vc, sc, nil
	}
	sp.AddressPrefix, sp.AddressPrefixes = to.Ptr(n.SubnetPrefix), nil
	sp.NetworkSecurityGroup = &armnetwork.SecurityGroup{ID: to.Ptr(nsgID)}
	// What Azure derives is not sent back.
	sp.IPConfigurations, sp.ProvisioningState = nil, nil
	p, err := m.subnets.BeginCreateOrUpdate(ctx, n.Group, n.VNet, n.Subnet, *subnet, nil)
	var r armnetwork.SubnetsClientCreateOrUpdateResponse
	if err == nil {
		r, err = p.PollUntilDone(ctx, m.poll())
	}
	if err != nil {
		return "", vc, sc, classify(fmt.Errorf("azure: %s subnet %s/%s: %w", verb, where, n.Subnet, err))
	}
	if r.ID == nil {
		return "", vc, sc, fmt.Errorf("azure: subnet %s/%s has no ID", where, n.Subnet)
	}
	return *r.ID, vc, sc, nil
}

// putVNet creates or updates a virtual network and waits for it.
func (m *Machines) putVNet(ctx context.Context, group, name string, vnet armnetwork.VirtualNetwork) (armnetwork.VirtualNetwork, error) {
	p, err := m.vnets.BeginCreateOrUpdate(ctx, group, name, vnet, nil)
	if err != nil {
		return armnetwork.VirtualNetwork{}, err
	}
	r, err := p.PollUntilDone(ctx, m.poll())
	return r.VirtualNetwork, err
}

// CreatePublicIP creates a static, standard-SKU IPv4 public IP address.
func (m *Machines) CreatePublicIP(ctx context.Context, r machineimage.Resource) (string, error) {
	id := m.resourceID(r.Group, "Microsoft.Network/publicIPAddresses", r.Name)
	p, err := m.ips.BeginCreateOrUpdate(ctx, r.Group, r.Name, armnetwork.PublicIPAddress{
		Location: to.Ptr(r.Region), Tags: azureTags(r.Tags),
		SKU: &armnetwork.PublicIPAddressSKU{
			Name: to.Ptr(armnetwork.PublicIPAddressSKUNameStandard),
			Tier: to.Ptr(armnetwork.PublicIPAddressSKUTierRegional),
		},
		Properties: &armnetwork.PublicIPAddressPropertiesFormat{
			PublicIPAllocationMethod: to.Ptr(armnetwork.IPAllocationMethodStatic),
			PublicIPAddressVersion:   to.Ptr(armnetwork.IPVersionIPv4),
		},
	}, nil)
	var res armnetwork.PublicIPAddressesClientCreateOrUpdateResponse
	if err == nil {
		res, err = p.PollUntilDone(ctx, m.poll())
	}
	if err == nil && res.ID == nil {
		err = fmt.Errorf("no ID in the response")
	}
	if err != nil {
		return mayExist(id, p != nil, err), classify(fmt.Errorf("azure: create public IP %s/%s: %w", r.Group, r.Name, err))
	}
	return *res.ID, nil
}

// CreateNIC creates a network interface in subnetID with a dynamic
// private address, and publicIPID when it is not empty. Accelerated
// networking stays off: not every size the configurations name has it,
// and a generalized image must boot on any.
func (m *Machines) CreateNIC(ctx context.Context, r machineimage.Resource, subnetID, publicIPID string) (string, error) {
	ip := &armnetwork.InterfaceIPConfigurationPropertiesFormat{
		Subnet:                    &armnetwork.Subnet{ID: to.Ptr(subnetID)},
		PrivateIPAllocationMethod: to.Ptr(armnetwork.IPAllocationMethodDynamic),
		Primary:                   to.Ptr(true),
	}
	if publicIPID != "" {
		ip.PublicIPAddress = &armnetwork.PublicIPAddress{ID: to.Ptr(publicIPID)}
	}
	id := m.resourceID(r.Group, "Microsoft.Network/networkInterfaces", r.Name)
	p, err := m.nics.BeginCreateOrUpdate(ctx, r.Group, r.Name, armnetwork.Interface{
		Location: to.Ptr(r.Region), Tags: azureTags(r.Tags),
		Properties: &armnetwork.InterfacePropertiesFormat{
			EnableAcceleratedNetworking: to.Ptr(false),
			IPConfigurations:            []*armnetwork.InterfaceIPConfiguration{{Name: to.Ptr("ipconfig1"), Properties: ip}},
		},
	}, nil)
	var res armnetwork.InterfacesClientCreateOrUpdateResponse
	if err == nil {
		res, err = p.PollUntilDone(ctx, m.poll())
	}
	if err == nil && res.ID == nil {
		err = fmt.Errorf("no ID in the response")
	}
	if err != nil {
		return mayExist(id, p != nil, err), classify(fmt.Errorf("azure: create NIC %s/%s: %w", r.Group, r.Name, err))
	}
	return *res.ID, nil
}

// tagNetwork sets tags on a NIC or a public IP, keeping its others
// (Azure's UpdateTags replaces them all). Nothing is written when the
// resource already has them. Its errors are wrapped and classified.
func (m *Machines) tagNetwork(ctx context.Context, r *arm.ResourceID, tags map[string]string) error {
	where := r.ResourceGroupName + "/" + r.Name
	var current map[string]*string
	var update func(armnetwork.TagsObject) error
	var what string
	switch strings.ToLower(r.ResourceType.String()) {
	case "microsoft.network/networkinterfaces":
		what = "NIC"
		got, err := m.nics.Get(ctx, r.ResourceGroupName, r.Name, nil)
		if err != nil {
			return classify(fmt.Errorf("azure: tag NIC %s: %w", where, err))
		}
		current = got.Tags
		update = func(t armnetwork.TagsObject) error {
			_, err := m.nics.UpdateTags(ctx, r.ResourceGroupName, r.Name, t, nil)
			return err
		}
	case "microsoft.network/publicipaddresses":
		what = "public IP"
		got, err := m.ips.Get(ctx, r.ResourceGroupName, r.Name, nil)
		if err != nil {
			return classify(fmt.Errorf("azure: tag public IP %s: %w", where, err))
		}
		current = got.Tags
		update = func(t armnetwork.TagsObject) error {
			_, err := m.ips.UpdateTags(ctx, r.ResourceGroupName, r.Name, t, nil)
			return err
		}
	default:
		return fmt.Errorf("azure: tag %s: cib does not tag %s resources", r, r.ResourceType)
	}
	merged := maps.Clone(current)
	if merged == nil {
		merged = map[string]*string{}
	}
	changed := false
	for k, v := range tags {
		if old, ok := merged[k]; !ok || old == nil || *old != v {
			merged[k] = to.Ptr(v)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	if err := update(armnetwork.TagsObject{Tags: merged}); err != nil {
		return classify(fmt.Errorf("azure: tag %s %s: %w", what, where, err))
	}
	return nil
}

// ruleProperties is an NSG rule as Azure takes it. Empty fields mean any
// ("*"); several source prefixes or destination port ranges go in the
// plural fields, as Azure wants them.
func ruleProperties(r machineimage.Rule) *armnetwork.SecurityRulePropertiesFormat {
	p := &armnetwork.SecurityRulePropertiesFormat{
		Access:                   to.Ptr(canonical(r.Access, armnetwork.PossibleSecurityRuleAccessValues())),
		Direction:                to.Ptr(canonical(r.Direction, armnetwork.PossibleSecurityRuleDirectionValues())),
		Protocol:                 to.Ptr(canonical(r.Protocol, armnetwork.PossibleSecurityRuleProtocolValues())),
		Priority:                 to.Ptr(int32(r.Priority)),
		SourcePortRange:          to.Ptr(orAny(r.SourcePortRange)),
		DestinationAddressPrefix: to.Ptr(orAny(r.DestinationPrefix)),
	}
	if r.Description != "" {
		p.Description = to.Ptr(r.Description)
	}
	switch len(r.SourceAddressPrefix) {
	case 0:
		p.SourceAddressPrefix = to.Ptr("*")
	case 1:
		p.SourceAddressPrefix = to.Ptr(r.SourceAddressPrefix[0])
	default:
		p.SourceAddressPrefixes = to.SliceOfPtrs(r.SourceAddressPrefix...)
	}
	switch len(r.DestinationPortRange) {
	case 0:
		p.DestinationPortRange = to.Ptr("*")
	case 1:
		p.DestinationPortRange = to.Ptr(r.DestinationPortRange[0])
	default:
		p.DestinationPortRanges = to.SliceOfPtrs(r.DestinationPortRange...)
	}
	return p
}

// sameRule reports whether rule have (as Azure shows it) is already rule
// want. Singular and plural fields compare as lists, in any order.
func sameRule(have, want *armnetwork.SecurityRulePropertiesFormat) bool {
	if have == nil {
		return false
	}
	fold := func(a, b *string) bool { return strings.EqualFold(netDeref(a), netDeref(b)) }
	return fold((*string)(have.Access), (*string)(want.Access)) &&
		fold((*string)(have.Direction), (*string)(want.Direction)) &&
		fold((*string)(have.Protocol), (*string)(want.Protocol)) &&
		netDeref(have.Priority) == netDeref(want.Priority) &&
		netDeref(have.Description) == netDeref(want.Description) &&
		sameList(have.SourceAddressPrefix, have.SourceAddressPrefixes, want.SourceAddressPrefix, want.SourceAddressPrefixes) &&
		sameList(have.SourcePortRange, have.SourcePortRanges, want.SourcePortRange, want.SourcePortRanges) &&
		sameList(have.DestinationAddressPrefix, have.DestinationAddressPrefixes, want.DestinationAddressPrefix, want.DestinationAddressPrefixes) &&
		sameList(have.DestinationPortRange, have.DestinationPortRanges, want.DestinationPortRange, want.DestinationPortRanges) &&
		len(have.SourceApplicationSecurityGroups) == 0 && len(have.DestinationApplicationSecurityGroups) == 0
}

// sameList compares a rule field given as one value or as a list.
func sameList(one1 *string, many1 []*string, one2 *string, many2 []*string) bool {
	list := func(one *string, many []*string) []string {
		out := derefs(many)
		if one != nil && *one != "" {
			out = append(out, *one)
		}
		for i := range out {
			out[i] = strings.ToLower(out[i])
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(list(one1, many1), list(one2, many2))
}

// ruleDiffs says how rule have (as Azure shows it) differs from rule
// want, field by field, for the report of an update.
func ruleDiffs(have, want *armnetwork.SecurityRulePropertiesFormat) []string {
	if have == nil {
		return []string{"no properties"}
	}
	var out []string
	str := func(p *string) string {
		if p == nil || *p == "" {
			return "none"
		}
		return *p
	}
	diff := func(field, a, b string, same bool) {
		if !same {
			out = append(out, fmt.Sprintf("%s %s → %s", field, a, b))
		}
	}
	fold := func(field string, a, b *string) {
		diff(field, str(a), str(b), strings.EqualFold(netDeref(a), netDeref(b)))
	}
	list := func(field string, one1 *string, many1 []*string, one2 *string, many2 []*string) {
		show := func(one *string, many []*string) string {
			l := derefs(many)
			if one != nil && *one != "" {
				l = append(l, *one)
			}
			return listOrNone(l)
		}
		diff(field, show(one1, many1), show(one2, many2), sameList(one1, many1, one2, many2))
	}
	fold("access", (*string)(have.Access), (*string)(want.Access))
	fold("direction", (*string)(have.Direction), (*string)(want.Direction))
	fold("protocol", (*string)(have.Protocol), (*string)(want.Protocol))
	diff("priority", fmt.Sprint(netDeref(have.Priority)), fmt.Sprint(netDeref(want.Priority)), netDeref(have.Priority) == netDeref(want.Priority))
	diff("description", fmt.Sprintf("%q", netDeref(have.Description)), fmt.Sprintf("%q", netDeref(want.Description)), netDeref(have.Description) == netDeref(want.Description))
	list("source address", have.SourceAddressPrefix, have.SourceAddressPrefixes, want.SourceAddressPrefix, want.SourceAddressPrefixes)
	list("source port", have.SourcePortRange, have.SourcePortRanges, want.SourcePortRange, want.SourcePortRanges)
	list("destination address", have.DestinationAddressPrefix, have.DestinationAddressPrefixes, want.DestinationAddressPrefix, want.DestinationAddressPrefixes)
	list("destination port", have.DestinationPortRange, have.DestinationPortRanges, want.DestinationPortRange, want.DestinationPortRanges)
	if len(have.SourceApplicationSecurityGroups) > 0 || len(have.DestinationApplicationSecurityGroups) > 0 {
		out = append(out, "application security groups removed")
	}
	return out
}

// listOrNone shows a list of values in a report.
func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ",")
}

// lastSegment is the name at the end of a resource ID.
func lastSegment(id string) string {
	return id[strings.LastIndex(id, "/")+1:]
}

// canonical spells s as Azure does (Allow, Tcp, Inbound), whatever the
// configuration's case; an unknown value is sent as it is, for Azure to
// refuse.
func canonical[T ~string](s string, values []T) T {
	for _, v := range values {
		if strings.EqualFold(string(v), s) {
			return v
		}
	}
	return T(s)
}

// orAny is s, or "*" when s is empty.
func orAny(s string) string {
	if s == "" {
		return "*"
	}
	return s
}

// derefs is the values of ps, nil ones left out.
func derefs(ps []*string) []string {
	var out []string
	for _, p := range ps {
		if p != nil {
			out = append(out, *p)
		}
	}
	return out
}

// azureTags is tags as the SDK's models take them.
func azureTags(tags map[string]string) map[string]*string {
	if tags == nil {
		return nil
	}
	out := make(map[string]*string, len(tags))
	for k, v := range tags {
		out[k] = to.Ptr(v)
	}
	return out
}

// deleteNetwork deletes a network resource a run creates (a NIC, a public
// IP) and waits for it. NSGs and virtual networks are shared between runs
// and are never deleted by one.
func (m *Machines) deleteNetwork(ctx context.Context, r *arm.ResourceID) error {
	switch strings.ToLower(r.ResourceType.String()) {
	case "microsoft.network/networkinterfaces":
		p, err := m.nics.BeginDelete(ctx, r.ResourceGroupName, r.Name, nil)
		return pollDone(ctx, m, p, err)
	case "microsoft.network/publicipaddresses":
		p, err := m.ips.BeginDelete(ctx, r.ResourceGroupName, r.Name, nil)
		return pollDone(ctx, m, p, err)
	}
	return fmt.Errorf("cib does not delete %s resources", r.ResourceType)
}

// netDeref is *p, or the zero value when p is nil.
func netDeref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}

package azuretest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v7"
)

func init() { installers = append(installers, (*Azure).installNetwork) }

// networkMu makes each network operation's read-check-write atomic: a
// NIC's creation checks its subnet and public IP, a delete checks who
// still uses the resource, and the compute model attaches NICs
// concurrently.
var networkMu sync.Mutex

// netSerial numbers etags, resource GUIDs and addresses.
var netSerial atomic.Uint64

// Resource types of Microsoft.Network, as IDs and the type field spell
// them.
const (
	nsgKind    = "networkSecurityGroups"
	vnetKind   = "virtualNetworks"
	nicKind    = "networkInterfaces"
	pipKind    = "publicIPAddresses"
	networkNS  = "Microsoft.Network"
	subnetType = "Microsoft.Network/virtualNetworks/subnets"
	ruleType   = "Microsoft.Network/networkSecurityGroups/securityRules"
)

// NetworkID is the ID of a Microsoft.Network resource of kind
// (networkSecurityGroups, virtualNetworks, networkInterfaces,
// publicIPAddresses) in group.
func NetworkID(group, kind, name string) string {
	return ResourceID(group, networkNS, kind, name)
}

// SubnetID is the ID of subnet of virtual network vnet in group.
func SubnetID(group, vnet, subnet string) string {
	return NetworkID(group, vnetKind, vnet) + "/subnets/" + subnet
}

// AttachNIC records that VM vmID uses NIC nicID, as Azure does when it
// creates the VM: the NIC's virtualMachine reference is set, and the NIC
// cannot be deleted until DetachNIC. The compute model calls it; a NIC
// that does not exist is left alone (the compute model checks its
// references itself).
func (a *Azure) AttachNIC(nicID, vmID string) {
	networkMu.Lock()
	defer networkMu.Unlock()
	v, ok := a.get(nicID)
	if !ok {
		return
	}
	nic := netClone(v.(armnetwork.Interface))
	if vmID == "" {
		nic.Properties.VirtualMachine = nil
	} else {
		nic.Properties.VirtualMachine = &armnetwork.SubResource{ID: to.Ptr(vmID)}
	}
	nic.Etag = netEtag()
	a.put(*nic.ID, nic)
}

// DetachNIC clears the NIC's VM reference, as Azure does when the VM is
// deleted.
func (a *Azure) DetachNIC(nicID string) { a.AttachNIC(nicID, "") }

// installNetwork models what the machine-image stage uses of
// Microsoft.Network: NSGs and their rules, virtual networks and subnets,
// NICs and public IPs. References are checked as Azure checks them (a
// subnet's NSG, a NIC's subnet and public IP must exist, in the same
// region), and a resource still in use cannot be deleted. Back references
// (an NSG's subnets, a subnet's IP configurations, a public IP's IP
// configuration, a virtual network's subnets) are derived when read, so
// they are never stale.
func (a *Azure) installNetwork() {
	a.installNSGs()
	a.installVNets()
	a.installNICs()
	a.installPublicIPs()
}

func (a *Azure) installNSGs() {
	s := &a.network.SecurityGroupsServer
	s.Get = func(_ context.Context, group, name string, _ *armnetwork.SecurityGroupsClientGetOptions) (resp azfake.Responder[armnetwork.SecurityGroupsClientGetResponse], errResp azfake.ErrorResponder) {
		networkMu.Lock()
		defer networkMu.Unlock()
		nsg, code := a.getNSG(group, name)
		if code != "" {
			errResp.SetResponseError(http.StatusNotFound, code)
			return
		}
		resp.SetResponse(http.StatusOK, armnetwork.SecurityGroupsClientGetResponse{SecurityGroup: nsg}, nil)
		return
	}
	s.BeginCreateOrUpdate = func(_ context.Context, group, name string, nsg armnetwork.SecurityGroup, _ *armnetwork.SecurityGroupsClientBeginCreateOrUpdateOptions) (resp azfake.PollerResponder[armnetwork.SecurityGroupsClientCreateOrUpdateResponse], errResp azfake.ErrorResponder) {
		networkMu.Lock()
		defer networkMu.Unlock()
		if status, code := a.netCanCreate(group, nsg.Location); code != "" {
			errResp.SetResponseError(status, code)
			return
		}
		id := NetworkID(group, nsgKind, name)
		old, exists := a.get(id)
		nsg = netClone(nsg)
		if nsg.Properties == nil {
			nsg.Properties = &armnetwork.SecurityGroupPropertiesFormat{}
		}
		p := nsg.Properties
		for i, r := range p.SecurityRules {
			if r == nil || r.Name == nil || *r.Name == "" {
				errResp.SetResponseError(http.StatusBadRequest, "InvalidRequestFormat")
				return
			}
			if code := checkRule(r.Properties); code != "" {
				errResp.SetResponseError(http.StatusBadRequest, code)
				return
			}
			for _, o := range p.SecurityRules[:i] {
				if strings.EqualFold(*o.Name, *r.Name) || conflict(o.Properties, r.Properties) {
					errResp.SetResponseError(http.StatusBadRequest, "SecurityRuleConflict")
					return
				}
			}
			r.ID, r.Type = to.Ptr(id+"/securityRules/"+*r.Name), to.Ptr(ruleType)
			r.Properties.ProvisioningState = to.Ptr(armnetwork.ProvisioningStateSucceeded)
		}
		nsg.ID, nsg.Name, nsg.Type = to.Ptr(id), to.Ptr(name), to.Ptr(networkNS+"/"+nsgKind)
		nsg.Location = to.Ptr(netRegion(*nsg.Location))
		nsg.Etag = netEtag()
		for _, r := range p.SecurityRules {
			r.Etag = nsg.Etag
		}
		p.DefaultSecurityRules = defaultRules(id, nsg.Etag)
		p.Subnets, p.NetworkInterfaces = nil, nil
		p.ProvisioningState = to.Ptr(armnetwork.ProvisioningStateSucceeded)
		p.ResourceGUID = netGUID()
		if exists {
			p.ResourceGUID = old.(armnetwork.SecurityGroup).Properties.ResourceGUID
		}
		a.put(id, nsg)
		nsg, _ = a.getNSG(group, name)
		resp.AddNonTerminalResponse(putStatus(exists), nil)
		resp.SetTerminalResponse(http.StatusOK, armnetwork.SecurityGroupsClientCreateOrUpdateResponse{SecurityGroup: nsg}, nil)
		return
	}
	s.BeginDelete = func(_ context.Context, group, name string, _ *armnetwork.SecurityGroupsClientBeginDeleteOptions) (resp azfake.PollerResponder[armnetwork.SecurityGroupsClientDeleteResponse], errResp azfake.ErrorResponder) {
		networkMu.Lock()
		defer networkMu.Unlock()
		nsg, code := a.getNSG(group, name)
		switch {
		case code == "ResourceGroupNotFound":
			errResp.SetResponseError(http.StatusNotFound, code)
			return
		case code != "":
			resp.SetTerminalResponse(http.StatusNoContent, armnetwork.SecurityGroupsClientDeleteResponse{}, nil)
			return
		case len(nsg.Properties.Subnets) > 0 || len(nsg.Properties.NetworkInterfaces) > 0:
			errResp.SetResponseError(http.StatusBadRequest, "InUseNetworkSecurityGroupCannotBeDeleted")
			return
		}
		a.del(*nsg.ID)
		resp.AddNonTerminalResponse(http.StatusAccepted, nil)
		resp.SetTerminalResponse(http.StatusOK, armnetwork.SecurityGroupsClientDeleteResponse{}, nil)
		return
	}

	r := &a.network.SecurityRulesServer
	r.Get = func(_ context.Context, group, nsgName, name string, _ *armnetwork.SecurityRulesClientGetOptions) (resp azfake.Responder[armnetwork.SecurityRulesClientGetResponse], errResp azfake.ErrorResponder) {
		networkMu.Lock()
		defer networkMu.Unlock()
		nsg, code := a.getNSG(group, nsgName)
		if code != "" {
			errResp.SetResponseError(http.StatusNotFound, code)
			return
		}
		i := ruleIndex(nsg, name)
		if i < 0 {
			errResp.SetResponseError(http.StatusNotFound, "NotFound")
			return
		}
		resp.SetResponse(http.StatusOK, armnetwork.SecurityRulesClientGetResponse{SecurityRule: *nsg.Properties.SecurityRules[i]}, nil)
		return
	}
	r.BeginCreateOrUpdate = func(_ context.Context, group, nsgName, name string, rule armnetwork.SecurityRule, _ *armnetwork.SecurityRulesClientBeginCreateOrUpdateOptions) (resp azfake.PollerResponder[armnetwork.SecurityRulesClientCreateOrUpdateResponse], errResp azfake.ErrorResponder) {
		networkMu.Lock()
		defer networkMu.Unlock()
		nsg, code := a.getNSG(group, nsgName)
		if code != "" {
			errResp.SetResponseError(http.StatusNotFound, code)
			return
		}
		rule = netClone(rule)
		if code := checkRule(rule.Properties); code != "" {
			errResp.SetResponseError(http.StatusBadRequest, code)
			return
		}
		i := ruleIndex(nsg, name)
		for j, o := range nsg.Properties.SecurityRules {
			if j != i && conflict(o.Properties, rule.Properties) {
				errResp.SetResponseError(http.StatusBadRequest, "SecurityRuleConflict")
				return
			}
		}
		nsg.Etag = netEtag()
		rule.ID, rule.Name, rule.Type, rule.Etag = to.Ptr(*nsg.ID+"/securityRules/"+name), to.Ptr(name), to.Ptr(ruleType), nsg.Etag
		rule.Properties.ProvisioningState = to.Ptr(armnetwork.ProvisioningStateSucceeded)
		if i < 0 {
			nsg.Properties.SecurityRules = append(nsg.Properties.SecurityRules, &rule)
		} else {
			nsg.Properties.SecurityRules[i] = &rule
		}
		a.putNSG(nsg)
		resp.AddNonTerminalResponse(putStatus(i >= 0), nil)
		resp.SetTerminalResponse(http.StatusOK, armnetwork.SecurityRulesClientCreateOrUpdateResponse{SecurityRule: rule}, nil)
		return
	}
	r.BeginDelete = func(_ context.Context, group, nsgName, name string, _ *armnetwork.SecurityRulesClientBeginDeleteOptions) (resp azfake.PollerResponder[armnetwork.SecurityRulesClientDeleteResponse], errResp azfake.ErrorResponder) {
		networkMu.Lock()
		defer networkMu.Unlock()
		nsg, code := a.getNSG(group, nsgName)
		if code != "" {
			errResp.SetResponseError(http.StatusNotFound, code)
			return
		}
		i := ruleIndex(nsg, name)
		if i < 0 {
			resp.SetTerminalResponse(http.StatusNoContent, armnetwork.SecurityRulesClientDeleteResponse{}, nil)
			return
		}
		nsg.Properties.SecurityRules = append(nsg.Properties.SecurityRules[:i], nsg.Properties.SecurityRules[i+1:]...)
		nsg.Etag = netEtag()
		a.putNSG(nsg)
		resp.AddNonTerminalResponse(http.StatusAccepted, nil)
		resp.SetTerminalResponse(http.StatusOK, armnetwork.SecurityRulesClientDeleteResponse{}, nil)
		return
	}
}

func (a *Azure) installVNets() {
	s := &a.network.VirtualNetworksServer
	s.Get = func(_ context.Context, group, name string, _ *armnetwork.VirtualNetworksClientGetOptions) (resp azfake.Responder[armnetwork.VirtualNetworksClientGetResponse], errResp azfake.ErrorResponder) {
		networkMu.Lock()
		defer networkMu.Unlock()
		vnet, code := a.getVNet(group, name)
		if code != "" {
			errResp.SetResponseError(http.StatusNotFound, code)
			return
		}
		resp.SetResponse(http.StatusOK, armnetwork.VirtualNetworksClientGetResponse{VirtualNetwork: vnet}, nil)
		return
	}
	// A virtual network's PUT carries its whole set of subnets, as Azure
	// takes it: a subnet left out is deleted, which a subnet in use
	// refuses.
	s.BeginCreateOrUpdate = func(_ context.Context, group, name string, vnet armnetwork.VirtualNetwork, _ *armnetwork.VirtualNetworksClientBeginCreateOrUpdateOptions) (resp azfake.PollerResponder[armnetwork.VirtualNetworksClientCreateOrUpdateResponse], errResp azfake.ErrorResponder) {
		networkMu.Lock()
		defer networkMu.Unlock()
		if status, code := a.netCanCreate(group, vnet.Location); code != "" {
			errResp.SetResponseError(status, code)
			return
		}
		vnet = netClone(vnet)
		id := NetworkID(group, vnetKind, name)
		old, exists := a.get(id)
		p := vnet.Properties
		if p == nil || p.AddressSpace == nil || len(p.AddressSpace.AddressPrefixes) == 0 {
			errResp.SetResponseError(http.StatusBadRequest, "InvalidRequestFormat")
			return
		}
		var space []netip.Prefix
		for _, s := range p.AddressSpace.AddressPrefixes {
			pfx, err := netip.ParsePrefix(netDeref(s))
			if err != nil || pfx.Masked() != pfx {
				errResp.SetResponseError(http.StatusBadRequest, "InvalidCIDRNotation")
				return
			}
			space = append(space, pfx)
		}
		keep := map[string]bool{}
		var subnets []armnetwork.Subnet
		var prefixes []netip.Prefix
		for _, sn := range p.Subnets {
			if sn == nil || sn.Name == nil || *sn.Name == "" {
				errResp.SetResponseError(http.StatusBadRequest, "InvalidRequestFormat")
				return
			}
			sid := id + "/subnets/" + *sn.Name
			pfx, status, code := a.checkSubnet(sid, *sn, space, netRegion(*vnet.Location), prefixes)
			if code != "" {
				errResp.SetResponseError(status, code)
				return
			}
			keep[strings.ToLower(sid)] = true
			subnets = append(subnets, *sn)
			prefixes = append(prefixes, pfx)
		}
		// Subnets that stay out of the new set: in use, they refuse;
		// otherwise they go, and so must fit the new address space.
		if exists {
			for _, v := range a.children(id + "/subnets/") {
				sn := v.(armnetwork.Subnet)
				if keep[strings.ToLower(*sn.ID)] {
					continue
				}
				if len(a.subnetIPConfigs(*sn.ID)) > 0 {
					errResp.SetResponseError(http.StatusBadRequest, "InUseSubnetCannotBeDeleted")
					return
				}
			}
		}
		if exists {
			for _, v := range a.children(id + "/subnets/") {
				if sn := v.(armnetwork.Subnet); !keep[strings.ToLower(*sn.ID)] {
					a.del(*sn.ID)
				}
			}
		}
		vnet.ID, vnet.Name, vnet.Type = to.Ptr(id), to.Ptr(name), to.Ptr(networkNS+"/"+vnetKind)
		vnet.Location = to.Ptr(netRegion(*vnet.Location))
		vnet.Etag = netEtag()
		p.Subnets = nil
		p.ProvisioningState = to.Ptr(armnetwork.ProvisioningStateSucceeded)
		p.ResourceGUID = netGUID()
		if exists {
			p.ResourceGUID = old.(armnetwork.VirtualNetwork).Properties.ResourceGUID
		}
		a.put(id, vnet)
		for _, sn := range subnets {
			a.putSubnet(id+"/subnets/"+*sn.Name, sn, vnet.Etag)
		}
		vnet, _ = a.getVNet(group, name)
		resp.AddNonTerminalResponse(putStatus(exists), nil)
		resp.SetTerminalResponse(http.StatusOK, armnetwork.VirtualNetworksClientCreateOrUpdateResponse{VirtualNetwork: vnet}, nil)
		return
	}

	sn := &a.network.SubnetsServer
	sn.Get = func(_ context.Context, group, vnetName, name string, _ *armnetwork.SubnetsClientGetOptions) (resp azfake.Responder[armnetwork.SubnetsClientGetResponse], errResp azfake.ErrorResponder) {
		networkMu.Lock()
		defer networkMu.Unlock()
		if _, code := a.getVNet(group, vnetName); code != "" {
			errResp.SetResponseError(http.StatusNotFound, code)
			return
		}
		v, ok := a.get(SubnetID(group, vnetName, name))
		if !ok {
			errResp.SetResponseError(http.StatusNotFound, "NotFound")
			return
		}
		resp.SetResponse(http.StatusOK, armnetwork.SubnetsClientGetResponse{Subnet: a.showSubnet(v.(armnetwork.Subnet))}, nil)
		return
	}
	sn.BeginCreateOrUpdate = func(_ context.Context, group, vnetName, name string, subnet armnetwork.Subnet, _ *armnetwork.SubnetsClientBeginCreateOrUpdateOptions) (resp azfake.PollerResponder[armnetwork.SubnetsClientCreateOrUpdateResponse], errResp azfake.ErrorResponder) {
		networkMu.Lock()
		defer networkMu.Unlock()
		vnet, code := a.getVNet(group, vnetName)
		if code != "" {
			errResp.SetResponseError(http.StatusNotFound, code)
			return
		}
		subnet = netClone(subnet)
		id := SubnetID(group, vnetName, name)
		var space, others []netip.Prefix
		for _, s := range vnet.Properties.AddressSpace.AddressPrefixes {
			space = append(space, netip.MustParsePrefix(*s))
		}
		exists := false
		for _, o := range vnet.Properties.Subnets {
			if strings.EqualFold(*o.ID, id) {
				exists = true
				continue
			}
			others = append(others, netip.MustParsePrefix(subnetPrefix(o)))
		}
		if _, status, code := a.checkSubnet(id, subnet, space, *vnet.Location, others); code != "" {
			errResp.SetResponseError(status, code)
			return
		}
		e := netEtag()
		a.putSubnet(id, subnet, e)
		v, _ := a.get(id)
		resp.AddNonTerminalResponse(putStatus(exists), nil)
		resp.SetTerminalResponse(http.StatusOK, armnetwork.SubnetsClientCreateOrUpdateResponse{Subnet: a.showSubnet(v.(armnetwork.Subnet))}, nil)
		return
	}
}

func (a *Azure) installNICs() {
	s := &a.network.InterfacesServer
	s.Get = func(_ context.Context, group, name string, _ *armnetwork.InterfacesClientGetOptions) (resp azfake.Responder[armnetwork.InterfacesClientGetResponse], errResp azfake.ErrorResponder) {
		networkMu.Lock()
		defer networkMu.Unlock()
		nic, code := a.getNIC(group, name)
		if code != "" {
			errResp.SetResponseError(http.StatusNotFound, code)
			return
		}
		resp.SetResponse(http.StatusOK, armnetwork.InterfacesClientGetResponse{Interface: nic}, nil)
		return
	}
	s.BeginCreateOrUpdate = func(_ context.Context, group, name string, nic armnetwork.Interface, _ *armnetwork.InterfacesClientBeginCreateOrUpdateOptions) (resp azfake.PollerResponder[armnetwork.InterfacesClientCreateOrUpdateResponse], errResp azfake.ErrorResponder) {
		networkMu.Lock()
		defer networkMu.Unlock()
		if status, code := a.netCanCreate(group, nic.Location); code != "" {
			errResp.SetResponseError(status, code)
			return
		}
		nic = netClone(nic)
		id := NetworkID(group, nicKind, name)
		old, exists := a.get(id)
		p := nic.Properties
		if p == nil || len(p.IPConfigurations) == 0 {
			errResp.SetResponseError(http.StatusBadRequest, "InvalidRequestFormat")
			return
		}
		region := netRegion(*nic.Location)
		e := netEtag()
		for i, c := range p.IPConfigurations {
			if c == nil || c.Name == nil || c.Properties == nil || c.Properties.Subnet == nil || c.Properties.Subnet.ID == nil {
				errResp.SetResponseError(http.StatusBadRequest, "InvalidRequestFormat")
				return
			}
			cp := c.Properties
			sv, ok := a.get(*cp.Subnet.ID)
			if !ok || !strings.EqualFold(a.vnetOf(*cp.Subnet.ID), region) {
				errResp.SetResponseError(http.StatusBadRequest, "InvalidResourceReference")
				return
			}
			cid := id + "/ipConfigurations/" + *c.Name
			if cp.PublicIPAddress != nil {
				pv, ok := a.get(netDeref(cp.PublicIPAddress.ID))
				if !ok || netRegion(netDeref(pv.(armnetwork.PublicIPAddress).Location)) != region {
					errResp.SetResponseError(http.StatusBadRequest, "InvalidResourceReference")
					return
				}
				if user := a.pipUser(*cp.PublicIPAddress.ID); user != "" && !strings.EqualFold(user, cid) {
					errResp.SetResponseError(http.StatusBadRequest, "PublicIPAddressInUse")
					return
				}
				cp.PublicIPAddress = &armnetwork.PublicIPAddress{ID: pv.(armnetwork.PublicIPAddress).ID}
			}
			subnet := sv.(armnetwork.Subnet)
			cp.Subnet = &armnetwork.Subnet{ID: subnet.ID}
			if cp.PrivateIPAllocationMethod == nil {
				cp.PrivateIPAllocationMethod = to.Ptr(armnetwork.IPAllocationMethodDynamic)
			}
			if cp.PrivateIPAddress == nil || *cp.PrivateIPAllocationMethod == armnetwork.IPAllocationMethodDynamic {
				cp.PrivateIPAddress = a.keepOrAllocate(old, exists, *c.Name, subnet)
			}
			if cp.PrivateIPAddressVersion == nil {
				cp.PrivateIPAddressVersion = to.Ptr(armnetwork.IPVersionIPv4)
			}
			if cp.Primary == nil {
				cp.Primary = to.Ptr(i == 0)
			}
			cp.ProvisioningState = to.Ptr(armnetwork.ProvisioningStateSucceeded)
			c.ID, c.Etag, c.Type = to.Ptr(cid), e, to.Ptr(networkNS+"/"+nicKind+"/ipConfigurations")
		}
		nic.ID, nic.Name, nic.Type, nic.Etag = to.Ptr(id), to.Ptr(name), to.Ptr(networkNS+"/"+nicKind), e
		nic.Location = to.Ptr(region)
		// Set by Azure, not by the caller: the VM that uses the NIC.
		p.VirtualMachine = nil
		p.ResourceGUID = netGUID()
		if exists {
			o := old.(armnetwork.Interface)
			p.VirtualMachine, p.ResourceGUID = o.Properties.VirtualMachine, o.Properties.ResourceGUID
		}
		if p.EnableAcceleratedNetworking == nil {
			p.EnableAcceleratedNetworking = to.Ptr(false)
		}
		if p.EnableIPForwarding == nil {
			p.EnableIPForwarding = to.Ptr(false)
		}
		p.ProvisioningState = to.Ptr(armnetwork.ProvisioningStateSucceeded)
		a.put(id, nic)
		resp.AddNonTerminalResponse(putStatus(exists), nil)
		resp.SetTerminalResponse(http.StatusOK, armnetwork.InterfacesClientCreateOrUpdateResponse{Interface: netClone(nic)}, nil)
		return
	}
	s.BeginDelete = func(_ context.Context, group, name string, _ *armnetwork.InterfacesClientBeginDeleteOptions) (resp azfake.PollerResponder[armnetwork.InterfacesClientDeleteResponse], errResp azfake.ErrorResponder) {
		networkMu.Lock()
		defer networkMu.Unlock()
		nic, code := a.getNIC(group, name)
		switch {
		case code == "ResourceGroupNotFound":
			errResp.SetResponseError(http.StatusNotFound, code)
			return
		case code != "":
			resp.SetTerminalResponse(http.StatusNoContent, armnetwork.InterfacesClientDeleteResponse{}, nil)
			return
		case nic.Properties.VirtualMachine != nil:
			errResp.SetResponseError(http.StatusBadRequest, "NicInUse")
			return
		}
		a.del(*nic.ID)
		resp.AddNonTerminalResponse(http.StatusAccepted, nil)
		resp.SetTerminalResponse(http.StatusOK, armnetwork.InterfacesClientDeleteResponse{}, nil)
		return
	}
	s.UpdateTags = func(_ context.Context, group, name string, tags armnetwork.TagsObject, _ *armnetwork.InterfacesClientUpdateTagsOptions) (resp azfake.Responder[armnetwork.InterfacesClientUpdateTagsResponse], errResp azfake.ErrorResponder) {
		networkMu.Lock()
		defer networkMu.Unlock()
		nic, code := a.getNIC(group, name)
		if code != "" {
			errResp.SetResponseError(http.StatusNotFound, code)
			return
		}
		nic.Tags, nic.Etag = netClone(tags).Tags, netEtag()
		a.put(*nic.ID, nic)
		resp.SetResponse(http.StatusOK, armnetwork.InterfacesClientUpdateTagsResponse{Interface: netClone(nic)}, nil)
		return
	}
}

func (a *Azure) installPublicIPs() {
	s := &a.network.PublicIPAddressesServer
	s.Get = func(_ context.Context, group, name string, _ *armnetwork.PublicIPAddressesClientGetOptions) (resp azfake.Responder[armnetwork.PublicIPAddressesClientGetResponse], errResp azfake.ErrorResponder) {
		networkMu.Lock()
		defer networkMu.Unlock()
		pip, code := a.getPIP(group, name)
		if code != "" {
			errResp.SetResponseError(http.StatusNotFound, code)
			return
		}
		resp.SetResponse(http.StatusOK, armnetwork.PublicIPAddressesClientGetResponse{PublicIPAddress: pip}, nil)
		return
	}
	s.BeginCreateOrUpdate = func(_ context.Context, group, name string, pip armnetwork.PublicIPAddress, _ *armnetwork.PublicIPAddressesClientBeginCreateOrUpdateOptions) (resp azfake.PollerResponder[armnetwork.PublicIPAddressesClientCreateOrUpdateResponse], errResp azfake.ErrorResponder) {
		networkMu.Lock()
		defer networkMu.Unlock()
		if status, code := a.netCanCreate(group, pip.Location); code != "" {
			errResp.SetResponseError(status, code)
			return
		}
		pip = netClone(pip)
		id := NetworkID(group, pipKind, name)
		old, exists := a.get(id)
		if pip.SKU == nil || pip.SKU.Name == nil {
			// Basic is the API's default, and Azure no longer creates
			// Basic public IPs.
			errResp.SetResponseError(http.StatusBadRequest, "BasicSkuPublicIpCreationNotAllowed")
			return
		}
		if *pip.SKU.Name == armnetwork.PublicIPAddressSKUNameBasic {
			errResp.SetResponseError(http.StatusBadRequest, "BasicSkuPublicIpCreationNotAllowed")
			return
		}
		if pip.SKU.Tier == nil {
			pip.SKU.Tier = to.Ptr(armnetwork.PublicIPAddressSKUTierRegional)
		}
		if pip.Properties == nil {
			pip.Properties = &armnetwork.PublicIPAddressPropertiesFormat{}
		}
		p := pip.Properties
		if p.PublicIPAllocationMethod == nil || *p.PublicIPAllocationMethod != armnetwork.IPAllocationMethodStatic {
			errResp.SetResponseError(http.StatusBadRequest, "StandardSkuPublicIPAddressesMustBeStatic")
			return
		}
		if p.PublicIPAddressVersion == nil {
			p.PublicIPAddressVersion = to.Ptr(armnetwork.IPVersionIPv4)
		}
		if p.IdleTimeoutInMinutes == nil {
			p.IdleTimeoutInMinutes = to.Ptr[int32](4)
		}
		p.IPConfiguration = nil
		n := netSerial.Add(1)
		p.IPAddress = to.Ptr(fmt.Sprintf("20.%d.%d.%d", n>>16&255, n>>8&255, n&255))
		p.ResourceGUID = netGUID()
		if exists {
			o := old.(armnetwork.PublicIPAddress).Properties
			p.IPAddress, p.ResourceGUID = o.IPAddress, o.ResourceGUID
		}
		p.ProvisioningState = to.Ptr(armnetwork.ProvisioningStateSucceeded)
		pip.ID, pip.Name, pip.Type, pip.Etag = to.Ptr(id), to.Ptr(name), to.Ptr(networkNS+"/"+pipKind), netEtag()
		pip.Location = to.Ptr(netRegion(*pip.Location))
		a.put(id, pip)
		pip, _ = a.getPIP(group, name)
		resp.AddNonTerminalResponse(putStatus(exists), nil)
		resp.SetTerminalResponse(http.StatusOK, armnetwork.PublicIPAddressesClientCreateOrUpdateResponse{PublicIPAddress: pip}, nil)
		return
	}
	s.BeginDelete = func(_ context.Context, group, name string, _ *armnetwork.PublicIPAddressesClientBeginDeleteOptions) (resp azfake.PollerResponder[armnetwork.PublicIPAddressesClientDeleteResponse], errResp azfake.ErrorResponder) {
		networkMu.Lock()
		defer networkMu.Unlock()
		pip, code := a.getPIP(group, name)
		switch {
		case code == "ResourceGroupNotFound":
			errResp.SetResponseError(http.StatusNotFound, code)
			return
		case code != "":
			resp.SetTerminalResponse(http.StatusNoContent, armnetwork.PublicIPAddressesClientDeleteResponse{}, nil)
			return
		case pip.Properties.IPConfiguration != nil:
			errResp.SetResponseError(http.StatusBadRequest, "PublicIPAddressCannotBeDeleted")
			return
		}
		a.del(*pip.ID)
		resp.AddNonTerminalResponse(http.StatusAccepted, nil)
		resp.SetTerminalResponse(http.StatusOK, armnetwork.PublicIPAddressesClientDeleteResponse{}, nil)
		return
	}
	s.UpdateTags = func(_ context.Context, group, name string, tags armnetwork.TagsObject, _ *armnetwork.PublicIPAddressesClientUpdateTagsOptions) (resp azfake.Responder[armnetwork.PublicIPAddressesClientUpdateTagsResponse], errResp azfake.ErrorResponder) {
		networkMu.Lock()
		defer networkMu.Unlock()
		if _, code := a.getPIP(group, name); code != "" {
			errResp.SetResponseError(http.StatusNotFound, code)
			return
		}
		id := NetworkID(group, pipKind, name)
		v, _ := a.get(id)
		pip := v.(armnetwork.PublicIPAddress)
		pip.Tags, pip.Etag = netClone(tags).Tags, netEtag()
		a.put(id, pip)
		pip, _ = a.getPIP(group, name)
		resp.SetResponse(http.StatusOK, armnetwork.PublicIPAddressesClientUpdateTagsResponse{PublicIPAddress: pip}, nil)
		return
	}
}

// netCanCreate checks what every create needs: the resource group, and a
// location. It returns the status and code of Azure's refusal, if any.
func (a *Azure) netCanCreate(group string, location *string) (int, string) {
	if _, ok := a.get(GroupID(group)); !ok {
		return http.StatusNotFound, "ResourceGroupNotFound"
	}
	if netDeref(location) == "" {
		return http.StatusBadRequest, "LocationRequired"
	}
	return 0, ""
}

// netLookup returns the stored value of id, or the code of Azure's 404: the
// group's when the group is missing.
func (a *Azure) netLookup(group, id string) (any, string) {
	if _, ok := a.get(GroupID(group)); !ok {
		return nil, "ResourceGroupNotFound"
	}
	v, ok := a.get(id)
	if !ok {
		return nil, "ResourceNotFound"
	}
	return v, ""
}

// getNSG is an NSG as Azure shows it, with the subnets and NICs that use it.
func (a *Azure) getNSG(group, name string) (armnetwork.SecurityGroup, string) {
	v, code := a.netLookup(group, NetworkID(group, nsgKind, name))
	if code != "" {
		return armnetwork.SecurityGroup{}, code
	}
	nsg := netClone(v.(armnetwork.SecurityGroup))
	for _, v := range a.children(GroupID(group) + "/providers/" + networkNS + "/" + vnetKind + "/") {
		if sn, ok := v.(armnetwork.Subnet); ok && sn.Properties.NetworkSecurityGroup != nil &&
			strings.EqualFold(netDeref(sn.Properties.NetworkSecurityGroup.ID), *nsg.ID) {
			nsg.Properties.Subnets = append(nsg.Properties.Subnets, &armnetwork.Subnet{ID: sn.ID})
		}
	}
	for _, v := range a.children(GroupID(group) + "/providers/" + networkNS + "/" + nicKind + "/") {
		if nic, ok := v.(armnetwork.Interface); ok && nic.Properties.NetworkSecurityGroup != nil &&
			strings.EqualFold(netDeref(nic.Properties.NetworkSecurityGroup.ID), *nsg.ID) {
			nsg.Properties.NetworkInterfaces = append(nsg.Properties.NetworkInterfaces, &armnetwork.Interface{ID: nic.ID})
		}
	}
	return nsg, ""
}

// putNSG stores nsg without its derived references.
func (a *Azure) putNSG(nsg armnetwork.SecurityGroup) {
	nsg.Properties.Subnets, nsg.Properties.NetworkInterfaces = nil, nil
	a.put(*nsg.ID, netClone(nsg))
}

// getVNet is a virtual network as Azure shows it, with its subnets.
func (a *Azure) getVNet(group, name string) (armnetwork.VirtualNetwork, string) {
	id := NetworkID(group, vnetKind, name)
	v, code := a.netLookup(group, id)
	if code != "" {
		return armnetwork.VirtualNetwork{}, code
	}
	vnet := netClone(v.(armnetwork.VirtualNetwork))
	vnet.Properties.Subnets = []*armnetwork.Subnet{}
	for _, v := range a.children(id + "/subnets/") {
		sn := a.showSubnet(v.(armnetwork.Subnet))
		vnet.Properties.Subnets = append(vnet.Properties.Subnets, &sn)
	}
	return vnet, ""
}

// vnetOf returns the region of the virtual network of subnetID.
func (a *Azure) vnetOf(subnetID string) string {
	i := strings.LastIndex(strings.ToLower(subnetID), "/subnets/")
	if i < 0 {
		return ""
	}
	v, ok := a.get(subnetID[:i])
	if !ok {
		return ""
	}
	return netDeref(v.(armnetwork.VirtualNetwork).Location)
}

// showSubnet is a stored subnet as Azure shows it, with the NIC IP
// configurations in it.
func (a *Azure) showSubnet(sn armnetwork.Subnet) armnetwork.Subnet {
	sn = netClone(sn)
	for _, c := range a.subnetIPConfigs(*sn.ID) {
		sn.Properties.IPConfigurations = append(sn.Properties.IPConfigurations, &armnetwork.IPConfiguration{ID: to.Ptr(c)})
	}
	return sn
}

// subnetIPConfigs returns the IDs of the NIC IP configurations in subnet
// id.
func (a *Azure) subnetIPConfigs(id string) []string {
	var out []string
	for _, v := range a.children(GroupID(netGroupOf(id)) + "/providers/" + networkNS + "/" + nicKind + "/") {
		nic, ok := v.(armnetwork.Interface)
		if !ok {
			continue
		}
		for _, c := range nic.Properties.IPConfigurations {
			if strings.EqualFold(netDeref(c.Properties.Subnet.ID), id) {
				out = append(out, *c.ID)
			}
		}
	}
	return out
}

// checkSubnet checks subnet sn of ID id against its network's address
// space and region and the other subnets' prefixes, and returns its
// prefix.
func (a *Azure) checkSubnet(id string, sn armnetwork.Subnet, space []netip.Prefix, region string, others []netip.Prefix) (netip.Prefix, int, string) {
	if sn.Properties == nil {
		return netip.Prefix{}, http.StatusBadRequest, "InvalidRequestFormat"
	}
	pfx, err := netip.ParsePrefix(subnetPrefix(&sn))
	if err != nil || pfx.Masked() != pfx {
		return pfx, http.StatusBadRequest, "InvalidCIDRNotation"
	}
	inside := false
	for _, s := range space {
		inside = inside || (s.Bits() <= pfx.Bits() && s.Contains(pfx.Addr()))
	}
	if !inside {
		return pfx, http.StatusBadRequest, "NetcfgSubnetRangeOutsideVnet"
	}
	for _, o := range others {
		if o.Overlaps(pfx) {
			return pfx, http.StatusBadRequest, "NetcfgSubnetRangesOverlap"
		}
	}
	if ref := sn.Properties.NetworkSecurityGroup; ref != nil {
		v, ok := a.get(netDeref(ref.ID))
		if !ok {
			return pfx, http.StatusBadRequest, "InvalidResourceReference"
		}
		if netDeref(v.(armnetwork.SecurityGroup).Location) != region {
			return pfx, http.StatusBadRequest, "InvalidResourceReference"
		}
	}
	// A subnet in use keeps its prefix.
	if old, ok := a.get(id); ok && len(a.subnetIPConfigs(id)) > 0 && subnetPrefix(to.Ptr(old.(armnetwork.Subnet))) != pfx.String() {
		return pfx, http.StatusBadRequest, "InUseSubnetCannotBeUpdated"
	}
	return pfx, 0, ""
}

// putSubnet stores subnet sn as id, without its derived references.
func (a *Azure) putSubnet(id string, sn armnetwork.Subnet, e *string) {
	sn = netClone(sn)
	name := id[strings.LastIndex(id, "/")+1:]
	sn.ID, sn.Name, sn.Type, sn.Etag = to.Ptr(id), to.Ptr(name), to.Ptr(subnetType), e
	sn.Properties.IPConfigurations = nil
	if ref := sn.Properties.NetworkSecurityGroup; ref != nil {
		v, _ := a.get(*ref.ID)
		sn.Properties.NetworkSecurityGroup = &armnetwork.SecurityGroup{ID: v.(armnetwork.SecurityGroup).ID}
	}
	sn.Properties.ProvisioningState = to.Ptr(armnetwork.ProvisioningStateSucceeded)
	a.put(id, sn)
}

// subnetPrefix is the (first) address prefix of a subnet.
func subnetPrefix(sn *armnetwork.Subnet) string {
	if sn.Properties.AddressPrefix != nil {
		return *sn.Properties.AddressPrefix
	}
	if len(sn.Properties.AddressPrefixes) > 0 {
		return netDeref(sn.Properties.AddressPrefixes[0])
	}
	return ""
}

// getNIC is a NIC as Azure shows it.
func (a *Azure) getNIC(group, name string) (armnetwork.Interface, string) {
	v, code := a.netLookup(group, NetworkID(group, nicKind, name))
	if code != "" {
		return armnetwork.Interface{}, code
	}
	return netClone(v.(armnetwork.Interface)), ""
}

// keepOrAllocate returns the private address of IP configuration name of
// the stored NIC old, or the next free address of subnet (Azure keeps
// the first four of each subnet).
func (a *Azure) keepOrAllocate(old any, exists bool, name string, subnet armnetwork.Subnet) *string {
	if exists {
		for _, c := range old.(armnetwork.Interface).Properties.IPConfigurations {
			if strings.EqualFold(*c.Name, name) && strings.EqualFold(*c.Properties.Subnet.ID, *subnet.ID) {
				return c.Properties.PrivateIPAddress
			}
		}
	}
	used := map[string]bool{}
	for _, v := range a.children(GroupID(netGroupOf(*subnet.ID)) + "/providers/" + networkNS + "/" + nicKind + "/") {
		if nic, ok := v.(armnetwork.Interface); ok {
			for _, c := range nic.Properties.IPConfigurations {
				used[netDeref(c.Properties.PrivateIPAddress)] = true
			}
		}
	}
	pfx := netip.MustParsePrefix(subnetPrefix(&subnet))
	addr := pfx.Addr()
	for range 4 {
		addr = addr.Next()
	}
	for pfx.Contains(addr) && used[addr.String()] {
		addr = addr.Next()
	}
	return to.Ptr(addr.String())
}

// getPIP is a public IP as Azure shows it, with the IP configuration that
// uses it.
func (a *Azure) getPIP(group, name string) (armnetwork.PublicIPAddress, string) {
	v, code := a.netLookup(group, NetworkID(group, pipKind, name))
	if code != "" {
		return armnetwork.PublicIPAddress{}, code
	}
	pip := netClone(v.(armnetwork.PublicIPAddress))
	if user := a.pipUser(*pip.ID); user != "" {
		pip.Properties.IPConfiguration = &armnetwork.IPConfiguration{ID: to.Ptr(user)}
	}
	return pip, ""
}

// pipUser returns the ID of the NIC IP configuration that uses public IP
// id, or "".
func (a *Azure) pipUser(id string) string {
	for _, v := range a.children("/subscriptions/" + Subscription + "/resourceGroups/") {
		nic, ok := v.(armnetwork.Interface)
		if !ok {
			continue
		}
		for _, c := range nic.Properties.IPConfigurations {
			if c.Properties.PublicIPAddress != nil && strings.EqualFold(netDeref(c.Properties.PublicIPAddress.ID), id) {
				return *c.ID
			}
		}
	}
	return ""
}

// checkRule checks a security rule's properties as Azure does, and
// returns the code of its refusal.
func checkRule(p *armnetwork.SecurityRulePropertiesFormat) string {
	switch {
	case p == nil, p.Access == nil, p.Direction == nil, p.Protocol == nil, p.Priority == nil:
		return "InvalidRequestFormat"
	case *p.Priority < 100 || *p.Priority > 4096:
		return "SecurityRuleInvalidPriority"
	case (p.SourceAddressPrefix == nil) == (len(p.SourceAddressPrefixes) == 0),
		(p.DestinationAddressPrefix == nil) == (len(p.DestinationAddressPrefixes) == 0):
		return "SecurityRuleInvalidAddressPrefix"
	case (p.SourcePortRange == nil) == (len(p.SourcePortRanges) == 0),
		(p.DestinationPortRange == nil) == (len(p.DestinationPortRanges) == 0):
		return "SecurityRuleInvalidPortRange"
	}
	return ""
}

// conflict reports whether two rules have the same priority and
// direction, which Azure refuses.
func conflict(p, q *armnetwork.SecurityRulePropertiesFormat) bool {
	return *p.Priority == *q.Priority && strings.EqualFold(string(*p.Direction), string(*q.Direction))
}

// ruleIndex is the index of rule name in nsg, or -1.
func ruleIndex(nsg armnetwork.SecurityGroup, name string) int {
	for i, r := range nsg.Properties.SecurityRules {
		if strings.EqualFold(netDeref(r.Name), name) {
			return i
		}
	}
	return -1
}

// defaultRules are the rules every NSG has below its own.
func defaultRules(nsgID string, e *string) []*armnetwork.SecurityRule {
	rule := func(name string, prio int32, dir armnetwork.SecurityRuleDirection, access armnetwork.SecurityRuleAccess, src, dst string) *armnetwork.SecurityRule {
		return &armnetwork.SecurityRule{
			ID: to.Ptr(nsgID + "/defaultSecurityRules/" + name), Name: to.Ptr(name), Etag: e,
			Type: to.Ptr(networkNS + "/" + nsgKind + "/defaultSecurityRules"),
			Properties: &armnetwork.SecurityRulePropertiesFormat{
				Priority: to.Ptr(prio), Direction: to.Ptr(dir), Access: to.Ptr(access),
				Protocol: to.Ptr(armnetwork.SecurityRuleProtocolAsterisk), SourcePortRange: to.Ptr("*"), DestinationPortRange: to.Ptr("*"),
				SourceAddressPrefix: to.Ptr(src), DestinationAddressPrefix: to.Ptr(dst),
				ProvisioningState: to.Ptr(armnetwork.ProvisioningStateSucceeded),
			},
		}
	}
	in, out := armnetwork.SecurityRuleDirectionInbound, armnetwork.SecurityRuleDirectionOutbound
	allow, deny := armnetwork.SecurityRuleAccessAllow, armnetwork.SecurityRuleAccessDeny
	return []*armnetwork.SecurityRule{
		rule("AllowVnetInBound", 65000, in, allow, "VirtualNetwork", "VirtualNetwork"),
		rule("AllowAzureLoadBalancerInBound", 65001, in, allow, "AzureLoadBalancer", "*"),
		rule("DenyAllInBound", 65500, in, deny, "*", "*"),
		rule("AllowVnetOutBound", 65000, out, allow, "VirtualNetwork", "VirtualNetwork"),
		rule("AllowInternetOutBound", 65001, out, allow, "*", "Internet"),
		rule("DenyAllOutBound", 65500, out, deny, "*", "*"),
	}
}

// putStatus is the status of a PUT's first response: 201 for a new
// resource, 200 for an update.
func putStatus(exists bool) int {
	if exists {
		return http.StatusOK
	}
	return http.StatusCreated
}

// netGroupOf is the resource group named in a resource ID.
func netGroupOf(id string) string {
	parts := strings.Split(id, "/")
	for i := 0; i+1 < len(parts); i++ {
		if strings.EqualFold(parts[i], "resourceGroups") {
			return parts[i+1]
		}
	}
	return ""
}

// netRegion spells a region as Azure returns it: "Central US" is
// centralus.
func netRegion(region string) string {
	return strings.ToLower(strings.ReplaceAll(region, " ", ""))
}

// netEtag is a new weak etag, as Microsoft.Network gives.
func netEtag() *string {
	return to.Ptr(fmt.Sprintf(`W/"%08x-c1b0-4000-8000-000000000000"`, netSerial.Add(1)))
}

// netGUID is a new resource GUID.
func netGUID() *string {
	return to.Ptr(fmt.Sprintf("%08x-c1b0-4000-8000-000000000001", netSerial.Add(1)))
}

// netClone deep-copies an SDK model through its JSON form, so that what is
// stored never shares memory with what a caller or a response holds.
func netClone[T any](v T) T {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("azuretest: netClone %T: %v", v, err))
	}
	var out T
	if err := json.Unmarshal(b, &out); err != nil {
		panic(fmt.Sprintf("azuretest: netClone %T: %v", v, err))
	}
	return out
}

// netDeref is *p, or the zero value when p is nil.
func netDeref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}

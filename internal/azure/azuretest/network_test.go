package azuretest_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v7"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/azure/azuretest"
)

const rg = "rg-net"

// net is a subscription with group rg and the network clients.
type net struct {
	a       *azuretest.Azure
	nsgs    *armnetwork.SecurityGroupsClient
	rules   *armnetwork.SecurityRulesClient
	vnets   *armnetwork.VirtualNetworksClient
	subnets *armnetwork.SubnetsClient
	nics    *armnetwork.InterfacesClient
	ips     *armnetwork.PublicIPAddressesClient
}

func newNet(t *testing.T) *net {
	t.Helper()
	a := azuretest.New()
	_, err := groupsClient(t, a).CreateOrUpdate(context.Background(), rg, armresources.ResourceGroup{Location: to.Ptr("centralus")}, nil)
	require.NoError(t, err)
	f, err := armnetwork.NewClientFactory(azuretest.Subscription, &fake.TokenCredential{}, a.ClientOptions())
	require.NoError(t, err)
	return &net{a, f.NewSecurityGroupsClient(), f.NewSecurityRulesClient(), f.NewVirtualNetworksClient(),
		f.NewSubnetsClient(), f.NewInterfacesClient(), f.NewPublicIPAddressesClient()}
}

// wait finishes a long-running operation that Begin started.
func wait[T any](t *testing.T, p *runtime.Poller[T], err error) (T, error) {
	t.Helper()
	var zero T
	if err != nil {
		return zero, err
	}
	return p.PollUntilDone(context.Background(), &runtime.PollUntilDoneOptions{Frequency: 1})
}

func code(t *testing.T, err error, status int, code string) {
	t.Helper()
	var re *azcore.ResponseError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, status, re.StatusCode)
	assert.Equal(t, code, re.ErrorCode)
}

func rule(prio int32, port string) *armnetwork.SecurityRulePropertiesFormat {
	return &armnetwork.SecurityRulePropertiesFormat{
		Access: to.Ptr(armnetwork.SecurityRuleAccessAllow), Direction: to.Ptr(armnetwork.SecurityRuleDirectionInbound),
		Protocol: to.Ptr(armnetwork.SecurityRuleProtocolTCP), Priority: to.Ptr(prio),
		SourceAddressPrefix: to.Ptr("*"), SourcePortRange: to.Ptr("*"),
		DestinationAddressPrefix: to.Ptr("*"), DestinationPortRange: to.Ptr(port),
	}
}

// setup makes an NSG with one rule, a virtual network with a subnet
// that uses it, and returns the subnet's ID.
func (n *net) setup(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	p, err := n.nsgs.BeginCreateOrUpdate(ctx, rg, "nsg", armnetwork.SecurityGroup{
		Location: to.Ptr("Central US"),
		Properties: &armnetwork.SecurityGroupPropertiesFormat{SecurityRules: []*armnetwork.SecurityRule{
			{Name: to.Ptr("rdp"), Properties: rule(100, "3389")},
		}},
	}, nil)
	nsg, err := wait(t, p, err)
	require.NoError(t, err)
	assert.Equal(t, "centralus", *nsg.Location)
	assert.Equal(t, armnetwork.ProvisioningStateSucceeded, *nsg.Properties.ProvisioningState)
	assert.Len(t, nsg.Properties.DefaultSecurityRules, 6)
	vp, err := n.vnets.BeginCreateOrUpdate(ctx, rg, "vnet", vnetWith(armnetwork.Subnet{Name: to.Ptr("sn"), Properties: &armnetwork.SubnetPropertiesFormat{
		AddressPrefix: to.Ptr("10.0.0.0/24"), NetworkSecurityGroup: &armnetwork.SecurityGroup{ID: nsg.ID},
	}}), nil)
	vnet, err := wait(t, vp, err)
	require.NoError(t, err)
	require.Len(t, vnet.Properties.Subnets, 1)
	return *vnet.Properties.Subnets[0].ID
}

func vnetWith(subnets ...armnetwork.Subnet) armnetwork.VirtualNetwork {
	v := armnetwork.VirtualNetwork{
		Location: to.Ptr("centralus"),
		Properties: &armnetwork.VirtualNetworkPropertiesFormat{
			AddressSpace: &armnetwork.AddressSpace{AddressPrefixes: []*string{to.Ptr("10.0.0.0/16")}},
			DhcpOptions:  &armnetwork.DhcpOptions{DNSServers: []*string{to.Ptr("1.1.1.1")}},
		},
	}
	for _, s := range subnets {
		v.Properties.Subnets = append(v.Properties.Subnets, &s)
	}
	return v
}

func (n *net) nic(t *testing.T, name, subnetID, ipID string) (armnetwork.InterfacesClientCreateOrUpdateResponse, error) {
	t.Helper()
	c := &armnetwork.InterfaceIPConfigurationPropertiesFormat{Subnet: &armnetwork.Subnet{ID: to.Ptr(subnetID)}}
	if ipID != "" {
		c.PublicIPAddress = &armnetwork.PublicIPAddress{ID: to.Ptr(ipID)}
	}
	p, err := n.nics.BeginCreateOrUpdate(context.Background(), rg, name, armnetwork.Interface{
		Location: to.Ptr("centralus"),
		Properties: &armnetwork.InterfacePropertiesFormat{IPConfigurations: []*armnetwork.InterfaceIPConfiguration{
			{Name: to.Ptr("ipconfig1"), Properties: c},
		}},
	}, nil)
	return wait(t, p, err)
}

func (n *net) ip(t *testing.T, name string, sku armnetwork.PublicIPAddressSKUName, alloc armnetwork.IPAllocationMethod) (armnetwork.PublicIPAddressesClientCreateOrUpdateResponse, error) {
	t.Helper()
	p, err := n.ips.BeginCreateOrUpdate(context.Background(), rg, name, armnetwork.PublicIPAddress{
		Location: to.Ptr("centralus"), SKU: &armnetwork.PublicIPAddressSKU{Name: to.Ptr(sku)},
		Properties: &armnetwork.PublicIPAddressPropertiesFormat{PublicIPAllocationMethod: to.Ptr(alloc)},
	}, nil)
	return wait(t, p, err)
}

// Every PUT is a long-running operation that polls, as Azure's are.
func TestNetworkOperationsPoll(t *testing.T) {
	n := newNet(t)
	n.setup(t)
	polls := map[string]int{}
	for _, c := range n.a.Calls() {
		if c.Method == http.MethodGet {
			polls[c.API]++
		}
	}
	assert.Equal(t, 1, polls["SecurityGroupsClient.BeginCreateOrUpdate"])
	assert.Equal(t, 1, polls["VirtualNetworksClient.BeginCreateOrUpdate"])
}

func TestNSGInUseAndRules(t *testing.T) {
	ctx := context.Background()
	n := newNet(t)
	subnetID := n.setup(t)

	nsg, err := n.nsgs.Get(ctx, rg, "nsg", nil)
	require.NoError(t, err)
	require.Len(t, nsg.Properties.Subnets, 1, "the NSG shows the subnet that uses it")
	assert.Equal(t, subnetID, *nsg.Properties.Subnets[0].ID)
	p, err := n.nsgs.BeginDelete(ctx, rg, "nsg", nil)
	_, err = wait(t, p, err)
	code(t, err, http.StatusBadRequest, "InUseNetworkSecurityGroupCannotBeDeleted")

	// Rules one by one: a clash of priority and direction is refused.
	rp, err := n.rules.BeginCreateOrUpdate(ctx, rg, "nsg", "ssh", armnetwork.SecurityRule{Properties: rule(100, "22")}, nil)
	_, err = wait(t, rp, err)
	code(t, err, http.StatusBadRequest, "SecurityRuleConflict")
	rp, err = n.rules.BeginCreateOrUpdate(ctx, rg, "nsg", "ssh", armnetwork.SecurityRule{Properties: rule(4097, "22")}, nil)
	_, err = wait(t, rp, err)
	code(t, err, http.StatusBadRequest, "SecurityRuleInvalidPriority")
	rp, err = n.rules.BeginCreateOrUpdate(ctx, rg, "nsg", "ssh", armnetwork.SecurityRule{Properties: rule(110, "22")}, nil)
	r, err := wait(t, rp, err)
	require.NoError(t, err)
	assert.Equal(t, azuretest.NetworkID(rg, "networkSecurityGroups", "nsg")+"/securityRules/ssh", *r.ID)
	got, err := n.rules.Get(ctx, rg, "nsg", "ssh", nil)
	require.NoError(t, err)
	assert.Equal(t, "22", *got.Properties.DestinationPortRange)
	dp, err := n.rules.BeginDelete(ctx, rg, "nsg", "rdp", nil)
	_, err = wait(t, dp, err)
	require.NoError(t, err)
	_, err = n.rules.Get(ctx, rg, "nsg", "rdp", nil)
	code(t, err, http.StatusNotFound, "NotFound")

	// Without the subnet's reference, the NSG can go.
	sn, err := n.subnets.Get(ctx, rg, "vnet", "sn", nil)
	require.NoError(t, err)
	sn.Properties.NetworkSecurityGroup = nil
	sp, err := n.subnets.BeginCreateOrUpdate(ctx, rg, "vnet", "sn", sn.Subnet, nil)
	_, err = wait(t, sp, err)
	require.NoError(t, err)
	p, err = n.nsgs.BeginDelete(ctx, rg, "nsg", nil)
	_, err = wait(t, p, err)
	require.NoError(t, err)
	_, err = n.nsgs.Get(ctx, rg, "nsg", nil)
	code(t, err, http.StatusNotFound, "ResourceNotFound")
	p, err = n.nsgs.BeginDelete(ctx, rg, "nsg", nil)
	_, err = wait(t, p, err)
	require.NoError(t, err, "deleting what is not there succeeds, as in Azure")
}

func TestSubnetsAreChecked(t *testing.T) {
	ctx := context.Background()
	n := newNet(t)
	subnetID := n.setup(t)
	put := func(name, prefix, nsg string) error {
		s := armnetwork.Subnet{Properties: &armnetwork.SubnetPropertiesFormat{AddressPrefix: to.Ptr(prefix)}}
		if nsg != "" {
			s.Properties.NetworkSecurityGroup = &armnetwork.SecurityGroup{ID: to.Ptr(nsg)}
		}
		p, err := n.subnets.BeginCreateOrUpdate(ctx, rg, "vnet", name, s, nil)
		_, err = wait(t, p, err)
		return err
	}
	code(t, put("b", "10.1.0.0/24", ""), http.StatusBadRequest, "NetcfgSubnetRangeOutsideVnet")
	code(t, put("b", "10.0.0.128/25", ""), http.StatusBadRequest, "NetcfgSubnetRangesOverlap")
	code(t, put("b", "10.0.1.0/24", azuretest.NetworkID(rg, "networkSecurityGroups", "missing")), http.StatusBadRequest, "InvalidResourceReference")
	code(t, put("b", "10.0.1.1/24", ""), http.StatusBadRequest, "InvalidCIDRNotation")
	require.NoError(t, put("b", "10.0.1.0/24", ""))
	_, err := n.subnets.Get(ctx, rg, "vnet", "missing", nil)
	code(t, err, http.StatusNotFound, "NotFound")

	// A virtual network's PUT carries its subnets: one left out goes,
	// unless a NIC is in it.
	_, err = n.nic(t, "nic", subnetID, "")
	require.NoError(t, err)
	vp, err := n.vnets.BeginCreateOrUpdate(ctx, rg, "vnet", vnetWith(), nil)
	_, err = wait(t, vp, err)
	code(t, err, http.StatusBadRequest, "InUseSubnetCannotBeDeleted")
	vnet, err := n.vnets.Get(ctx, rg, "vnet", nil)
	require.NoError(t, err)
	assert.Len(t, vnet.Properties.Subnets, 2, "a refused PUT changes nothing")
	var keep []armnetwork.Subnet
	for _, s := range vnet.Properties.Subnets {
		if *s.Name == "sn" {
			keep = append(keep, *s)
			require.Len(t, s.Properties.IPConfigurations, 1, "the subnet shows the NIC in it")
		}
	}
	vp, err = n.vnets.BeginCreateOrUpdate(ctx, rg, "vnet", vnetWith(keep...), nil)
	_, err = wait(t, vp, err)
	require.NoError(t, err)
	_, err = n.subnets.Get(ctx, rg, "vnet", "b", nil)
	code(t, err, http.StatusNotFound, "NotFound")
}

func TestNICsAndPublicIPsAreChecked(t *testing.T) {
	ctx := context.Background()
	n := newNet(t)
	subnetID := n.setup(t)

	_, err := n.ip(t, "basic", armnetwork.PublicIPAddressSKUNameBasic, armnetwork.IPAllocationMethodStatic)
	code(t, err, http.StatusBadRequest, "BasicSkuPublicIpCreationNotAllowed")
	_, err = n.ip(t, "dynamic", armnetwork.PublicIPAddressSKUNameStandard, armnetwork.IPAllocationMethodDynamic)
	code(t, err, http.StatusBadRequest, "StandardSkuPublicIPAddressesMustBeStatic")
	ip, err := n.ip(t, "ip", armnetwork.PublicIPAddressSKUNameStandard, armnetwork.IPAllocationMethodStatic)
	require.NoError(t, err)
	require.NotNil(t, ip.Properties.IPAddress)

	_, err = n.nic(t, "nic", azuretest.SubnetID(rg, "vnet", "missing"), "")
	code(t, err, http.StatusBadRequest, "InvalidResourceReference")
	_, err = n.nic(t, "nic", subnetID, azuretest.NetworkID(rg, "publicIPAddresses", "missing"))
	code(t, err, http.StatusBadRequest, "InvalidResourceReference")
	nic, err := n.nic(t, "nic", subnetID, *ip.ID)
	require.NoError(t, err)
	assert.Equal(t, "10.0.0.4", *nic.Properties.IPConfigurations[0].Properties.PrivateIPAddress)
	_, err = n.nic(t, "nic2", subnetID, *ip.ID)
	code(t, err, http.StatusBadRequest, "PublicIPAddressInUse")

	got, err := n.ips.Get(ctx, rg, "ip", nil)
	require.NoError(t, err)
	require.NotNil(t, got.Properties.IPConfiguration)
	assert.Equal(t, *nic.Properties.IPConfigurations[0].ID, *got.Properties.IPConfiguration.ID)
	p, err := n.ips.BeginDelete(ctx, rg, "ip", nil)
	_, err = wait(t, p, err)
	code(t, err, http.StatusBadRequest, "PublicIPAddressCannotBeDeleted")

	// The compute model attaches a VM; the NIC cannot go while it is.
	vmID := azuretest.ResourceID(rg, "Microsoft.Compute", "virtualMachines", "vm")
	n.a.AttachNIC(*nic.ID, vmID)
	g, err := n.nics.Get(ctx, rg, "nic", nil)
	require.NoError(t, err)
	assert.Equal(t, vmID, *g.Properties.VirtualMachine.ID)
	np, err := n.nics.BeginDelete(ctx, rg, "nic", nil)
	_, err = wait(t, np, err)
	code(t, err, http.StatusBadRequest, "NicInUse")
	// A PUT does not set or clear the VM: Azure does.
	_, err = n.nic(t, "nic", subnetID, *ip.ID)
	require.NoError(t, err)
	g, err = n.nics.Get(ctx, rg, "nic", nil)
	require.NoError(t, err)
	assert.Equal(t, vmID, *g.Properties.VirtualMachine.ID)
	assert.Equal(t, "10.0.0.4", *g.Properties.IPConfigurations[0].Properties.PrivateIPAddress, "an update keeps the address")
	n.a.DetachNIC(*nic.ID)
	np, err = n.nics.BeginDelete(ctx, rg, "nic", nil)
	_, err = wait(t, np, err)
	require.NoError(t, err)
	p, err = n.ips.BeginDelete(ctx, rg, "ip", nil)
	_, err = wait(t, p, err)
	require.NoError(t, err)
	_, err = n.nics.Get(ctx, rg, "nic", nil)
	code(t, err, http.StatusNotFound, "ResourceNotFound")
}

// UpdateTags replaces a resource's tags, as Azure's does.
func TestUpdateTagsReplaces(t *testing.T) {
	ctx := context.Background()
	n := newNet(t)
	subnetID := n.setup(t)
	nic, err := n.nic(t, "nic", subnetID, "")
	require.NoError(t, err)
	_, err = n.nics.UpdateTags(ctx, rg, "nic", armnetwork.TagsObject{Tags: map[string]*string{"a": to.Ptr("1")}}, nil)
	require.NoError(t, err)
	r, err := n.nics.UpdateTags(ctx, rg, "nic", armnetwork.TagsObject{Tags: map[string]*string{"b": to.Ptr("2")}}, nil)
	require.NoError(t, err)
	assert.Equal(t, map[string]*string{"b": to.Ptr("2")}, r.Tags)
	assert.NotEqual(t, *nic.Etag, *r.Etag)
	_, err = n.ip(t, "ip", armnetwork.PublicIPAddressSKUNameStandard, armnetwork.IPAllocationMethodStatic)
	require.NoError(t, err)
	ip, err := n.ips.UpdateTags(ctx, rg, "ip", armnetwork.TagsObject{Tags: map[string]*string{"c": to.Ptr("3")}}, nil)
	require.NoError(t, err)
	assert.Equal(t, map[string]*string{"c": to.Ptr("3")}, ip.Tags)
	_, err = n.ips.UpdateTags(ctx, rg, "missing", armnetwork.TagsObject{}, nil)
	code(t, err, http.StatusNotFound, "ResourceNotFound")
}

// Nothing is created in a group that is not there; deleting the group
// takes the network with it.
func TestNetworkNeedsItsGroup(t *testing.T) {
	ctx := context.Background()
	n := newNet(t)
	subnetID := n.setup(t)
	_, err := n.ip(t, "ip", armnetwork.PublicIPAddressSKUNameStandard, armnetwork.IPAllocationMethodStatic)
	require.NoError(t, err)
	_, err = n.nic(t, "nic", subnetID, "")
	require.NoError(t, err)

	gp, err := groupsClient(t, n.a).BeginDelete(ctx, rg, nil)
	require.NoError(t, err)
	_, err = gp.PollUntilDone(ctx, nil)
	require.NoError(t, err)
	assert.Empty(t, n.a.IDs())

	p, err := n.nsgs.BeginCreateOrUpdate(ctx, rg, "nsg", armnetwork.SecurityGroup{Location: to.Ptr("centralus")}, nil)
	_, err = wait(t, p, err)
	code(t, err, http.StatusNotFound, "ResourceGroupNotFound")
	vp, err := n.vnets.BeginCreateOrUpdate(ctx, rg, "vnet", vnetWith(), nil)
	_, err = wait(t, vp, err)
	code(t, err, http.StatusNotFound, "ResourceGroupNotFound")
	_, err = n.nic(t, "nic", subnetID, "")
	code(t, err, http.StatusNotFound, "ResourceGroupNotFound")
	_, err = n.ip(t, "ip", armnetwork.PublicIPAddressSKUNameStandard, armnetwork.IPAllocationMethodStatic)
	code(t, err, http.StatusNotFound, "ResourceGroupNotFound")
	_, err = n.nsgs.Get(ctx, rg, "nsg", nil)
	code(t, err, http.StatusNotFound, "ResourceGroupNotFound")
	np, err := n.nics.BeginDelete(ctx, rg, "nic", nil)
	_, err = wait(t, np, err)
	code(t, err, http.StatusNotFound, "ResourceGroupNotFound")
}

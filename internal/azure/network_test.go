package azure_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v7"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/azure"
	"github.com/cib-project/cib/internal/azure/azuretest"
	"github.com/cib-project/cib/internal/machineimage"
)

const group = "rg-central-us-gecko-t"

func newMachines(t *testing.T) (*azure.Machines, *azuretest.Azure) {
	t.Helper()
	a := azuretest.New()
	m, err := azure.NewMachines(azuretest.Subscription, &fake.TokenCredential{}, a.ClientOptions())
	require.NoError(t, err)
	m.PollFrequency = time.Millisecond
	return m, a
}

func networkClients(t *testing.T, a *azuretest.Azure) *armnetwork.ClientFactory {
	t.Helper()
	f, err := armnetwork.NewClientFactory(azuretest.Subscription, &fake.TokenCredential{}, a.ClientOptions())
	require.NoError(t, err)
	return f
}

// testNetwork is a target's network as the seed's configurations have it.
func testNetwork() machineimage.Network {
	return machineimage.Network{
		Group: group, Region: "centralus",
		NSG: "nsg-central-us", VNet: "vn-central-us-gecko", Prefix: "10.0.0.0/16",
		DNS:    []string{"1.1.1.1", "1.0.0.1"},
		Subnet: "sn-central-us-gecko", SubnetPrefix: "10.0.0.0/24",
		Tags: map[string]string{"cib:managed": "true"},
		Rules: []machineimage.Rule{
			{
				Name: "allow-rdp", Description: "RDP from the office", Access: "Allow", Protocol: "Tcp", Direction: "Inbound",
				Priority: 100, SourceAddressPrefix: []string{"185.189.196.0/22", "63.245.208.0/20"}, SourcePortRange: "*",
				DestinationPrefix: "*", DestinationPortRange: []string{"3389"},
			},
			{
				Name: "allow-winrm", Access: "allow", Protocol: "tcp", Direction: "inbound",
				Priority: 110, SourceAddressPrefix: []string{"185.189.196.0/22"}, SourcePortRange: "*",
				DestinationPrefix: "*", DestinationPortRange: []string{"5985", "5986"},
			},
			{
				Name: "deny-smb", Access: "Deny", Protocol: "*", Direction: "Inbound",
				Priority: 200, DestinationPortRange: []string{"445"},
			},
		},
	}
}

// writes are the calls that change something, as "METHOD last/two
// segments" of their path; polls of long-running operations are GETs and
// not among them.
func writes(calls []azuretest.Call) []string {
	var out []string
	for _, c := range calls {
		if c.Method == http.MethodGet || c.Method == http.MethodHead {
			continue
		}
		parts := strings.Split(c.Path, "/")
		out = append(out, c.Method+" "+strings.Join(parts[len(parts)-2:], "/"))
	}
	return out
}

func rulesOf(t *testing.T, a *azuretest.Azure, name string) map[string]*armnetwork.SecurityRule {
	t.Helper()
	nsg, err := networkClients(t, a).NewSecurityGroupsClient().Get(context.Background(), group, name, nil)
	require.NoError(t, err)
	out := map[string]*armnetwork.SecurityRule{}
	for _, r := range nsg.Properties.SecurityRules {
		out[*r.Name] = r
	}
	return out
}

func TestEnsureNetworkFromNothing(t *testing.T) {
	ctx := context.Background()
	m, a := newMachines(t)
	n := testNetwork()
	subnetID, err := m.EnsureNetwork(ctx, n)
	require.NoError(t, err)
	assert.Equal(t, azuretest.SubnetID(group, n.VNet, n.Subnet), subnetID)
	assert.Equal(t, []string{
		azuretest.GroupID(group),
		azuretest.NetworkID(group, "networkSecurityGroups", n.NSG),
		azuretest.NetworkID(group, "virtualNetworks", n.VNet),
		azuretest.SubnetID(group, n.VNet, n.Subnet),
	}, a.IDs())
	assert.Equal(t, []string{
		"PUT resourcegroups/" + group,
		"PUT networkSecurityGroups/" + n.NSG,
		"PUT securityRules/allow-rdp", "PUT securityRules/allow-winrm", "PUT securityRules/deny-smb",
		"PUT virtualNetworks/" + n.VNet,
	}, writes(a.Calls()))

	g, err := armresources.NewResourceGroupsClient(azuretest.Subscription, &fake.TokenCredential{}, a.ClientOptions())
	require.NoError(t, err)
	rg, err := g.Get(ctx, group, nil)
	require.NoError(t, err)
	assert.Equal(t, "centralus", *rg.Location)
	assert.Equal(t, "true", *rg.Tags["cib:managed"])

	rules := rulesOf(t, a, n.NSG)
	require.Len(t, rules, 3)
	rdp := rules["allow-rdp"].Properties
	assert.Nil(t, rdp.SourceAddressPrefix, "two source prefixes go in the plural field")
	assert.Equal(t, []string{"185.189.196.0/22", "63.245.208.0/20"}, deref(rdp.SourceAddressPrefixes))
	assert.Equal(t, "3389", *rdp.DestinationPortRange)
	assert.Equal(t, "RDP from the office", *rdp.Description)
	winrm := rules["allow-winrm"].Properties
	assert.Equal(t, armnetwork.SecurityRuleAccessAllow, *winrm.Access, "the configuration's case is Azure's")
	assert.Equal(t, armnetwork.SecurityRuleProtocolTCP, *winrm.Protocol)
	assert.Equal(t, armnetwork.SecurityRuleDirectionInbound, *winrm.Direction)
	assert.Equal(t, "185.189.196.0/22", *winrm.SourceAddressPrefix)
	assert.Nil(t, winrm.DestinationPortRange, "two port ranges go in the plural field")
	assert.Equal(t, []string{"5985", "5986"}, deref(winrm.DestinationPortRanges))
	smb := rules["deny-smb"].Properties
	assert.Equal(t, "*", *smb.SourceAddressPrefix, "no source is any source")
	assert.Equal(t, "*", *smb.SourcePortRange)

	nc := networkClients(t, a)
	vnet, err := nc.NewVirtualNetworksClient().Get(ctx, group, n.VNet, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"10.0.0.0/16"}, deref(vnet.Properties.AddressSpace.AddressPrefixes))
	assert.Equal(t, n.DNS, deref(vnet.Properties.DhcpOptions.DNSServers))
	assert.Equal(t, "centralus", *vnet.Location)
	sn, err := nc.NewSubnetsClient().Get(ctx, group, n.VNet, n.Subnet, nil)
	require.NoError(t, err)
	assert.Equal(t, "10.0.0.0/24", *sn.Properties.AddressPrefix)
	assert.True(t, strings.EqualFold(azuretest.NetworkID(group, "networkSecurityGroups", n.NSG), *sn.Properties.NetworkSecurityGroup.ID))
}

// A network already as configured costs three reads and no writes: runs
// share it, and many ensure it.
func TestEnsureNetworkTwiceOnlyReads(t *testing.T) {
	ctx := context.Background()
	m, a := newMachines(t)
	first, err := m.EnsureNetwork(ctx, testNetwork())
	require.NoError(t, err)
	before := len(a.Calls())
	second, err := m.EnsureNetwork(ctx, testNetwork())
	require.NoError(t, err)
	assert.Equal(t, first, second)
	var apis []string
	for _, c := range a.Calls()[before:] {
		assert.Equal(t, http.MethodGet, c.Method, "call %d: %s", c.N, c.API)
		apis = append(apis, c.API)
	}
	assert.Equal(t, []string{"ResourceGroupsClient.Get", "SecurityGroupsClient.Get", "VirtualNetworksClient.Get"}, apis)
}

// The seed never updated an existing NSG; here its rules follow the
// configuration: one added, one changed, one removed, the others left
// alone.
func TestEnsureNetworkReconcilesRules(t *testing.T) {
	ctx := context.Background()
	m, a := newMachines(t)
	n := testNetwork()
	_, err := m.EnsureNetwork(ctx, n)
	require.NoError(t, err)
	untouched := *rulesOf(t, a, n.NSG)["allow-rdp"]

	n.Rules = slices.Clone(n.Rules)
	n.Rules[1].DestinationPortRange = []string{"5986"} // changed
	n.Rules = slices.Delete(n.Rules, 2, 3)             // deny-smb removed
	n.Rules = append(n.Rules, machineimage.Rule{       // added, at the removed rule's priority
		Name: "allow-ssh", Access: "Allow", Protocol: "Tcp", Direction: "Inbound", Priority: 200,
		SourceAddressPrefix: []string{"10.0.0.0/8"}, DestinationPortRange: []string{"22"},
	})
	before := len(a.Calls())
	_, err = m.EnsureNetwork(ctx, n)
	require.NoError(t, err)
	assert.Equal(t, []string{
		"DELETE securityRules/deny-smb",
		"PUT securityRules/allow-winrm",
		"PUT securityRules/allow-ssh",
	}, writes(a.Calls()[before:]))

	rules := rulesOf(t, a, n.NSG)
	assert.Len(t, rules, 3)
	assert.Nil(t, rules["deny-smb"])
	assert.Equal(t, "5986", *rules["allow-winrm"].Properties.DestinationPortRange)
	assert.Nil(t, rules["allow-winrm"].Properties.DestinationPortRanges)
	assert.Equal(t, "22", *rules["allow-ssh"].Properties.DestinationPortRange)
	assert.Equal(t, untouched.Properties, rules["allow-rdp"].Properties)

	before = len(a.Calls())
	_, err = m.EnsureNetwork(ctx, n)
	require.NoError(t, err)
	assert.Empty(t, writes(a.Calls()[before:]), "reconciled once, it stays")
}

// Shared resources that exist are changed only where they differ from
// the configuration: the group keeps its tags, the virtual network its
// other subnets.
func TestEnsureNetworkKeepsWhatItDoesNotOwn(t *testing.T) {
	ctx := context.Background()
	m, a := newMachines(t)
	n := testNetwork()
	g, err := armresources.NewResourceGroupsClient(azuretest.Subscription, &fake.TokenCredential{}, a.ClientOptions())
	require.NoError(t, err)
	_, err = g.CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr("centralus"), Tags: map[string]*string{"owner": to.Ptr("relops")}}, nil)
	require.NoError(t, err)
	nc := networkClients(t, a)
	p, err := nc.NewVirtualNetworksClient().BeginCreateOrUpdate(ctx, group, n.VNet, armnetwork.VirtualNetwork{
		Location: to.Ptr("centralus"),
		Properties: &armnetwork.VirtualNetworkPropertiesFormat{
			AddressSpace: &armnetwork.AddressSpace{AddressPrefixes: []*string{to.Ptr("10.1.0.0/16")}},
			DhcpOptions:  &armnetwork.DhcpOptions{DNSServers: []*string{to.Ptr("8.8.8.8")}},
			Subnets: []*armnetwork.Subnet{{Name: to.Ptr("other"), Properties: &armnetwork.SubnetPropertiesFormat{
				AddressPrefix: to.Ptr("10.1.0.0/24"),
			}}},
		},
	}, nil)
	require.NoError(t, err)
	_, err = p.PollUntilDone(ctx, nil)
	require.NoError(t, err)

	subnetID, err := m.EnsureNetwork(ctx, n)
	require.NoError(t, err)
	assert.Equal(t, azuretest.SubnetID(group, n.VNet, n.Subnet), subnetID)

	rg, err := g.Get(ctx, group, nil)
	require.NoError(t, err)
	assert.Equal(t, map[string]*string{"owner": to.Ptr("relops")}, rg.Tags)
	vnet, err := nc.NewVirtualNetworksClient().Get(ctx, group, n.VNet, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"10.1.0.0/16", "10.0.0.0/16"}, deref(vnet.Properties.AddressSpace.AddressPrefixes))
	assert.Equal(t, n.DNS, deref(vnet.Properties.DhcpOptions.DNSServers))
	var names []string
	for _, s := range vnet.Properties.Subnets {
		names = append(names, *s.Name)
	}
	assert.ElementsMatch(t, []string{"other", n.Subnet}, names)

	// A subnet that lost its NSG gets it back, and nothing else changes.
	sc := nc.NewSubnetsClient()
	sp, err := sc.BeginCreateOrUpdate(ctx, group, n.VNet, n.Subnet, armnetwork.Subnet{Properties: &armnetwork.SubnetPropertiesFormat{AddressPrefix: to.Ptr(n.SubnetPrefix)}}, nil)
	require.NoError(t, err)
	_, err = sp.PollUntilDone(ctx, nil)
	require.NoError(t, err)
	before := len(a.Calls())
	_, err = m.EnsureNetwork(ctx, n)
	require.NoError(t, err)
	assert.Equal(t, []string{"PUT subnets/" + n.Subnet}, writes(a.Calls()[before:]))
	sn, err := sc.Get(ctx, group, n.VNet, n.Subnet, nil)
	require.NoError(t, err)
	require.NotNil(t, sn.Properties.NetworkSecurityGroup)
}

func TestNICsAndPublicIPs(t *testing.T) {
	ctx := context.Background()
	m, a := newMachines(t)
	subnetID, err := m.EnsureNetwork(ctx, testNetwork())
	require.NoError(t, err)
	shared := a.IDs()
	tags := map[string]string{"cib:run": "https://github.com/o/r/actions/runs/1"}
	res := func(name string) machineimage.Resource {
		return machineimage.Resource{Group: group, Region: "centralus", Name: name, Tags: tags}
	}

	ipID, err := m.CreatePublicIP(ctx, res("ip-cib-1"))
	require.NoError(t, err)
	assert.Equal(t, azuretest.NetworkID(group, "publicIPAddresses", "ip-cib-1"), ipID)
	withIP, err := m.CreateNIC(ctx, res("ni-cib-1"), subnetID, ipID)
	require.NoError(t, err)
	assert.Equal(t, azuretest.NetworkID(group, "networkInterfaces", "ni-cib-1"), withIP)
	without, err := m.CreateNIC(ctx, res("ni-cib-2"), subnetID, "")
	require.NoError(t, err)

	nc := networkClients(t, a)
	nic, err := nc.NewInterfacesClient().Get(ctx, group, "ni-cib-1", nil)
	require.NoError(t, err)
	assert.False(t, *nic.Properties.EnableAcceleratedNetworking)
	assert.Equal(t, "https://github.com/o/r/actions/runs/1", *nic.Tags["cib:run"])
	ipc := nic.Properties.IPConfigurations[0].Properties
	assert.True(t, strings.EqualFold(subnetID, *ipc.Subnet.ID))
	assert.True(t, strings.EqualFold(ipID, *ipc.PublicIPAddress.ID))
	assert.Equal(t, "10.0.0.4", *ipc.PrivateIPAddress)
	nic2, err := nc.NewInterfacesClient().Get(ctx, group, "ni-cib-2", nil)
	require.NoError(t, err)
	assert.Nil(t, nic2.Properties.IPConfigurations[0].Properties.PublicIPAddress)
	assert.Equal(t, "10.0.0.5", *nic2.Properties.IPConfigurations[0].Properties.PrivateIPAddress)
	ip, err := nc.NewPublicIPAddressesClient().Get(ctx, group, "ip-cib-1", nil)
	require.NoError(t, err)
	assert.Equal(t, armnetwork.IPAllocationMethodStatic, *ip.Properties.PublicIPAllocationMethod)
	assert.Equal(t, armnetwork.PublicIPAddressSKUNameStandard, *ip.SKU.Name)
	require.NotNil(t, ip.Properties.IPConfiguration, "the NIC uses it")

	// Tags merge with those there.
	require.NoError(t, azure.TagNetwork(ctx, m, withIP, map[string]string{"cib:expires": "2026-12-01T00:00:00Z"}))
	require.NoError(t, azure.TagNetwork(ctx, m, ipID, map[string]string{"cib:run": "https://github.com/o/r/actions/runs/2"}))
	nic, err = nc.NewInterfacesClient().Get(ctx, group, "ni-cib-1", nil)
	require.NoError(t, err)
	assert.Equal(t, map[string]*string{
		"cib:run": to.Ptr("https://github.com/o/r/actions/runs/1"), "cib:expires": to.Ptr("2026-12-01T00:00:00Z"),
	}, nic.Tags)
	ip, err = nc.NewPublicIPAddressesClient().Get(ctx, group, "ip-cib-1", nil)
	require.NoError(t, err)
	assert.Equal(t, "https://github.com/o/r/actions/runs/2", *ip.Tags["cib:run"])
	before := len(a.Calls())
	require.NoError(t, azure.TagNetwork(ctx, m, withIP, map[string]string{"cib:expires": "2026-12-01T00:00:00Z"}))
	assert.Empty(t, writes(a.Calls()[before:]), "tags already there are not written again")
	err = azure.TagNetwork(ctx, m, azuretest.NetworkID(group, "virtualNetworks", "vn"), map[string]string{"a": "b"})
	assert.ErrorContains(t, err, "cib does not tag")

	// The public IP goes only after its NIC, as the undo order has it.
	err = m.Delete(ctx, ipID)
	requireCode(t, err, http.StatusBadRequest, "PublicIPAddressCannotBeDeleted")
	assert.False(t, machineimage.IsRetryable(err))
	for _, id := range []string{without, withIP, ipID} {
		require.NoError(t, m.Delete(ctx, id))
	}
	assert.Equal(t, shared, a.IDs(), "deletes leave the shared network only")
	for _, id := range []string{withIP, ipID} {
		require.NoError(t, m.Delete(ctx, id), "deleting again is not an error")
	}
}

// A NIC a VM uses cannot be deleted: the VM goes first.
func TestNICInUseCannotBeDeleted(t *testing.T) {
	ctx := context.Background()
	m, a := newMachines(t)
	subnetID, err := m.EnsureNetwork(ctx, testNetwork())
	require.NoError(t, err)
	nicID, err := m.CreateNIC(ctx, machineimage.Resource{Group: group, Region: "centralus", Name: "ni-cib"}, subnetID, "")
	require.NoError(t, err)
	a.AttachNIC(nicID, azuretest.ResourceID(group, "Microsoft.Compute", "virtualMachines", "vm-cib"))
	err = m.Delete(ctx, nicID)
	requireCode(t, err, http.StatusBadRequest, "NicInUse")
	assert.Contains(t, err.Error(), "azure: delete "+nicID)
	assert.False(t, machineimage.IsRetryable(err))
	a.DetachNIC(nicID)
	require.NoError(t, m.Delete(ctx, nicID))
}

func TestNetworkErrors(t *testing.T) {
	ctx := context.Background()
	m, a := newMachines(t)
	n := testNetwork()

	// Throttling and server errors are retryable, and say what failed.
	a.Inject(azuretest.Fault{API: "SecurityRulesClient.BeginCreateOrUpdate", Status: http.StatusTooManyRequests, Code: "TooManyRequests", Times: 1})
	_, err := m.EnsureNetwork(ctx, n)
	require.Error(t, err)
	assert.True(t, machineimage.IsRetryable(err), "%v", err)
	assert.Contains(t, err.Error(), "azure: NSG "+group+"/"+n.NSG+": create rule allow-rdp: ")
	a.Inject(azuretest.Fault{API: "VirtualNetworksClient.Get", Status: http.StatusInternalServerError, Code: "InternalServerError", Times: 1})
	_, err = m.EnsureNetwork(ctx, n)
	assert.True(t, machineimage.IsRetryable(err), "%v", err)
	assert.Contains(t, err.Error(), "azure: get virtual network "+group+"/"+n.VNet+": ")

	// Refusals are permanent; a bad rule is named.
	a.Inject(azuretest.Fault{API: "ResourceGroupsClient.Get", Status: http.StatusForbidden, Code: "AuthorizationFailed", Times: 1})
	_, err = m.EnsureNetwork(ctx, n)
	requireCode(t, err, http.StatusForbidden, "AuthorizationFailed")
	assert.False(t, machineimage.IsRetryable(err))
	bad := testNetwork()
	bad.Rules = append(bad.Rules, machineimage.Rule{Name: "too-low", Access: "Allow", Protocol: "Tcp", Direction: "Inbound", Priority: 10})
	_, err = m.EnsureNetwork(ctx, bad)
	requireCode(t, err, http.StatusBadRequest, "SecurityRuleInvalidPriority")
	assert.Contains(t, err.Error(), "create rule too-low")
	clash := testNetwork()
	clash.Rules[1].Priority = clash.Rules[0].Priority
	_, err = m.EnsureNetwork(ctx, clash)
	requireCode(t, err, http.StatusBadRequest, "SecurityRuleConflict")
	assert.Contains(t, err.Error(), "rule allow-winrm")

	// A NIC in a group or subnet that is not there.
	_, err = m.CreateNIC(ctx, machineimage.Resource{Group: "rg-missing", Region: "centralus", Name: "ni"}, azuretest.SubnetID(group, n.VNet, n.Subnet), "")
	requireCode(t, err, http.StatusNotFound, "ResourceGroupNotFound")
	assert.Contains(t, err.Error(), "azure: create NIC rg-missing/ni: ")
	_, err = m.CreateNIC(ctx, machineimage.Resource{Group: group, Region: "centralus", Name: "ni"}, azuretest.SubnetID(group, n.VNet, "missing"), "")
	requireCode(t, err, http.StatusBadRequest, "InvalidResourceReference")
	_, err = m.CreatePublicIP(ctx, machineimage.Resource{Group: "rg-missing", Region: "centralus", Name: "ip"})
	requireCode(t, err, http.StatusNotFound, "ResourceGroupNotFound")
	assert.Contains(t, err.Error(), "azure: create public IP rg-missing/ip: ")
	err = azure.TagNetwork(ctx, m, azuretest.NetworkID(group, "networkInterfaces", "missing"), map[string]string{"a": "b"})
	requireCode(t, err, http.StatusNotFound, "ResourceNotFound")
	assert.Contains(t, err.Error(), "azure: tag NIC "+group+"/missing: ")
}

// Whatever call fails, the error is classified, and a later EnsureNetwork
// finishes the network: nothing a failure leaves half done is in the way.
func TestEnsureNetworkConvergesAfterAFaultAtEveryCall(t *testing.T) {
	ctx := context.Background()
	m, a := newMachines(t)
	_, err := m.EnsureNetwork(ctx, testNetwork())
	require.NoError(t, err)
	calls, want := len(a.Calls()), a.IDs()
	for n := 1; n <= calls; n++ {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			m, a := newMachines(t)
			a.Inject(azuretest.Fault{N: n, Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable"})
			_, err := m.EnsureNetwork(ctx, testNetwork())
			require.Error(t, err)
			assert.True(t, machineimage.IsRetryable(err), "%v", err)
			assert.True(t, strings.HasPrefix(err.Error(), "azure: "), "%v", err)
			id, err := m.EnsureNetwork(ctx, testNetwork())
			require.NoError(t, err)
			assert.Equal(t, azuretest.SubnetID(group, "vn-central-us-gecko", "sn-central-us-gecko"), id)
			assert.Equal(t, want, a.IDs())
			before := len(a.Calls())
			_, err = m.EnsureNetwork(ctx, testNetwork())
			require.NoError(t, err)
			assert.Empty(t, writes(a.Calls()[before:]))
		})
	}
}

func requireCode(t *testing.T, err error, status int, code string) {
	t.Helper()
	var re *azcore.ResponseError
	require.True(t, errors.As(err, &re), "%v", err)
	assert.Equal(t, status, re.StatusCode)
	assert.Equal(t, code, re.ErrorCode)
}

func deref(ps []*string) []string {
	var out []string
	for _, p := range ps {
		out = append(out, *p)
	}
	return out
}

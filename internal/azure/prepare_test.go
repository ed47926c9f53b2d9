package azure_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/v3"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/storage/armstorage/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/azure"
	"github.com/cib-project/cib/internal/azure/azuretest"
	"github.com/cib-project/cib/internal/machineimage"
)

// The tests of Prepare: the infrastructure of two groups (three sites,
// two keys, shared storage, network and gallery) made from nothing, then
// left alone, drifted and fixed, and refused when it cannot be made as
// configured.

const (
	eastGroup = "rg-east-us-gecko-t"
	gallery   = "cib_images"
)

// infrastructure is three sites: win10-64 (Hyper-V V2) and win11-64 in
// group (Central US), which share the storage account, the container and
// the network, and win10-64 in eastGroup (East US) with a network and an
// account of its own.
func infrastructure() azure.Infrastructure {
	central := testNetwork()
	east := testNetwork()
	east.NSG, east.VNet, east.Subnet = "nsg-east-us", "vn-east-us-gecko", "sn-east-us-gecko"
	east.Prefix, east.SubnetPrefix = "10.1.0.0/16", "10.1.0.0/24"
	return azure.Infrastructure{
		Gallery: gallery,
		Sites: []azure.Site{
			{Key: "win10-64", Group: group, Region: "Central US", Storage: "sacentralusgeckot", Containers: []string{"disk-images"}, HyperVGeneration: "V2", Network: &central},
			{Key: "win11-64", Group: group, Region: "Central US", Storage: "sacentralusgeckot", Containers: []string{"disk-images"}, Network: &central},
			{Key: "win10-64", Group: eastGroup, Region: "East US", Storage: "saeastusgeckot", HyperVGeneration: "V2", Network: &east},
		},
	}
}

// allPrepared are the report lines of infrastructure() with every
// resource in status s.
func allPrepared(s string) []string {
	return []string{
		s + " resource group " + group + " (" + group + ", centralus)",
		s + " storage account sacentralusgeckot (" + group + ", centralus)",
		s + " container sacentralusgeckot/disk-images (" + group + ", centralus)",
		s + " NSG nsg-central-us (" + group + ", centralus)",
		s + " virtual network vn-central-us-gecko (" + group + ", centralus)",
		s + " subnet vn-central-us-gecko/sn-central-us-gecko (" + group + ", centralus)",
		s + " gallery cib_images (" + group + ", centralus)",
		s + " image definition cib_images/win10-64 (" + group + ", centralus)",
		s + " image definition cib_images/win11-64 (" + group + ", centralus)",
		s + " resource group " + eastGroup + " (" + eastGroup + ", eastus)",
		s + " storage account saeastusgeckot (" + eastGroup + ", eastus)",
		s + " NSG nsg-east-us (" + eastGroup + ", eastus)",
		s + " virtual network vn-east-us-gecko (" + eastGroup + ", eastus)",
		s + " subnet vn-east-us-gecko/sn-east-us-gecko (" + eastGroup + ", eastus)",
		s + " gallery cib_images (" + eastGroup + ", eastus)",
		s + " image definition cib_images/win10-64 (" + eastGroup + ", eastus)",
	}
}

func lines(rep azure.PrepareReport) []string {
	var out []string
	for _, c := range rep.Changes {
		out = append(out, c.String())
	}
	return out
}

func storageClients(t *testing.T, a *azuretest.Azure) *armstorage.ClientFactory {
	t.Helper()
	f, err := armstorage.NewClientFactory(azuretest.Subscription, &fake.TokenCredential{}, a.ClientOptions())
	require.NoError(t, err)
	return f
}

func computeClients(t *testing.T, a *azuretest.Azure) *armcompute.ClientFactory {
	t.Helper()
	f, err := armcompute.NewClientFactory(azuretest.Subscription, &fake.TokenCredential{}, a.ClientOptions())
	require.NoError(t, err)
	return f
}

func groupsClient(t *testing.T, a *azuretest.Azure) *armresources.ResourceGroupsClient {
	t.Helper()
	c, err := armresources.NewResourceGroupsClient(azuretest.Subscription, &fake.TokenCredential{}, a.ClientOptions())
	require.NoError(t, err)
	return c
}

func TestPrepareCreatesEverythingThenChangesNothing(t *testing.T) {
	ctx := context.Background()
	m, a := newMachines(t)
	var seen []string
	rep, err := m.Prepare(ctx, infrastructure(), func(c azure.Change) { seen = append(seen, c.String()) })
	require.NoError(t, err)
	assert.Equal(t, allPrepared("created"), lines(rep))
	assert.Equal(t, lines(rep), seen, "progress sees every change, in order")
	assert.Equal(t, 16, rep.Count(azure.Created))
	assert.True(t, rep.Changed())

	// What exists is what the configuration says.
	g, err := groupsClient(t, a).Get(ctx, eastGroup, nil)
	require.NoError(t, err)
	assert.Equal(t, "eastus", *g.Location)
	assert.Equal(t, "true", *g.Tags[machineimage.TagManaged])

	sf := storageClients(t, a)
	acc, err := sf.NewAccountsClient().GetProperties(ctx, group, "sacentralusgeckot", nil)
	require.NoError(t, err)
	assert.Equal(t, "centralus", *acc.Location)
	assert.Equal(t, armstorage.KindStorageV2, *acc.Kind)
	assert.Equal(t, armstorage.SKUNameStandardLRS, *acc.SKU.Name)
	assert.True(t, *acc.Properties.EnableHTTPSTrafficOnly)
	assert.Equal(t, armstorage.MinimumTLSVersionTLS12, *acc.Properties.MinimumTLSVersion)
	assert.False(t, *acc.Properties.AllowBlobPublicAccess)
	assert.Equal(t, "true", *acc.Tags[machineimage.TagManaged])
	bc, err := sf.NewBlobContainersClient().Get(ctx, group, "sacentralusgeckot", "disk-images", nil)
	require.NoError(t, err)
	assert.Equal(t, armstorage.PublicAccessNone, *bc.ContainerProperties.PublicAccess)

	assert.Len(t, rulesOf(t, a, "nsg-central-us"), 3)
	sn, err := networkClients(t, a).NewSubnetsClient().Get(ctx, eastGroup, "vn-east-us-gecko", "sn-east-us-gecko", nil)
	require.NoError(t, err)
	assert.Equal(t, "10.1.0.0/24", *sn.Properties.AddressPrefix)
	assert.True(t, strings.HasSuffix(*sn.Properties.NetworkSecurityGroup.ID, "/nsg-east-us"))

	cf := computeClients(t, a)
	for key, hv := range map[string]armcompute.HyperVGeneration{"win10-64": "V2", "win11-64": "V1"} {
		d, err := cf.NewGalleryImagesClient().Get(ctx, group, gallery, key, nil)
		require.NoError(t, err, key)
		p := d.Properties
		assert.Equal(t, armcompute.OperatingSystemTypesWindows, *p.OSType, key)
		assert.Equal(t, armcompute.OperatingSystemStateTypesGeneralized, *p.OSState, key)
		assert.Equal(t, hv, *p.HyperVGeneration, key)
		assert.Equal(t, []string{"cib", gallery, key}, []string{*p.Identifier.Publisher, *p.Identifier.Offer, *p.Identifier.SKU}, key)
	}

	// The second run reads, reports everything unchanged, and writes
	// nothing.
	before := len(a.Calls())
	rep, err = m.Prepare(ctx, infrastructure(), nil)
	require.NoError(t, err)
	assert.Equal(t, allPrepared("unchanged"), lines(rep))
	assert.False(t, rep.Changed())
	assert.Empty(t, writes(a.Calls()[before:]), "a second run makes no write call")
}

func TestPrepareFixesDrift(t *testing.T) {
	ctx := context.Background()
	m, a := newMachines(t)
	_, err := m.Prepare(ctx, infrastructure(), nil)
	require.NoError(t, err)

	// Someone edits a rule, moves a subnet, weakens the account's TLS;
	// and the configuration adds a container.
	nf := networkClients(t, a)
	rule := rulesOf(t, a, "nsg-central-us")["allow-winrm"]
	rule.Properties.Priority = to.Ptr[int32](300)
	p, err := nf.NewSecurityRulesClient().BeginCreateOrUpdate(ctx, group, "nsg-central-us", "allow-winrm", *rule, nil)
	require.NoError(t, err)
	_, err = p.PollUntilDone(ctx, nil)
	require.NoError(t, err)
	sn, err := nf.NewSubnetsClient().Get(ctx, group, "vn-central-us-gecko", "sn-central-us-gecko", nil)
	require.NoError(t, err)
	sn.Properties.AddressPrefix = to.Ptr("10.0.1.0/24")
	ps, err := nf.NewSubnetsClient().BeginCreateOrUpdate(ctx, group, "vn-central-us-gecko", "sn-central-us-gecko", sn.Subnet, nil)
	require.NoError(t, err)
	_, err = ps.PollUntilDone(ctx, nil)
	require.NoError(t, err)
	_, err = storageClients(t, a).NewAccountsClient().Update(ctx, group, "sacentralusgeckot", armstorage.AccountUpdateParameters{
		Properties: &armstorage.AccountPropertiesUpdateParameters{MinimumTLSVersion: to.Ptr(armstorage.MinimumTLSVersionTLS10), AllowBlobPublicAccess: to.Ptr(true)},
	}, nil)
	require.NoError(t, err)
	want := infrastructure()
	want.Sites[1].Containers = append(want.Sites[1].Containers, "more-images")

	// A dry run says so and fixes nothing.
	before := len(a.Calls())
	dry := want
	dry.DryRun = true
	rep, err := m.Prepare(ctx, dry, nil)
	require.NoError(t, err)
	assert.Empty(t, writes(a.Calls()[before:]), "a dry run writes nothing")
	assert.Equal(t, 3, rep.Count(azure.Updated), "NSG, subnet, account:\n%s", strings.Join(lines(rep), "\n"))
	assert.Equal(t, 1, rep.Count(azure.Created), "the container")

	before = len(a.Calls())
	rep, err = m.Prepare(ctx, want, nil)
	require.NoError(t, err)
	changed := map[string]string{}
	for _, c := range rep.Changes {
		if c.Status != azure.Unchanged {
			changed[c.String()] = ""
		}
	}
	assert.Equal(t, map[string]string{
		"updated storage account sacentralusgeckot (" + group + ", centralus): minimum TLS TLS1_0 → TLS1_2; public blob access true → false": "",
		"created container sacentralusgeckot/more-images (" + group + ", centralus)":                                                         "",
		"updated NSG nsg-central-us (" + group + ", centralus): rule allow-winrm: priority 300 → 110":                                        "",
		"updated subnet vn-central-us-gecko/sn-central-us-gecko (" + group + ", centralus): prefix 10.0.1.0/24 → 10.0.0.0/24":                "",
	}, changed)
	assert.Equal(t, []string{
		"PATCH storageAccounts/sacentralusgeckot",
		"PUT containers/more-images",
		"PUT securityRules/allow-winrm",
		"PUT subnets/sn-central-us-gecko",
	}, writes(a.Calls()[before:]), "only what drifted is written")

	assert.Equal(t, int32(110), *rulesOf(t, a, "nsg-central-us")["allow-winrm"].Properties.Priority)
	acc, err := storageClients(t, a).NewAccountsClient().GetProperties(ctx, group, "sacentralusgeckot", nil)
	require.NoError(t, err)
	assert.Equal(t, armstorage.MinimumTLSVersionTLS12, *acc.Properties.MinimumTLSVersion)
	assert.False(t, *acc.Properties.AllowBlobPublicAccess)

	before = len(a.Calls())
	rep, err = m.Prepare(ctx, want, nil)
	require.NoError(t, err)
	assert.False(t, rep.Changed(), "fixed once, it stays:\n%s", strings.Join(lines(rep), "\n"))
	assert.Empty(t, writes(a.Calls()[before:]))
}

func TestPrepareDryRunFromNothingWritesNothing(t *testing.T) {
	ctx := context.Background()
	m, a := newMachines(t)
	want := infrastructure()
	want.DryRun = true
	rep, err := m.Prepare(ctx, want, nil)
	require.NoError(t, err)
	assert.Equal(t, allPrepared("created"), lines(rep))
	assert.True(t, rep.DryRun)
	for _, c := range a.Calls() {
		if c.Method != http.MethodGet {
			assert.Equal(t, "AccountsClient.CheckNameAvailability", c.API, "a dry run only reads (and checks account names): %s %s", c.Method, c.Path)
		}
	}
	assert.Empty(t, a.IDs(), "nothing was made")
}

func TestPrepareRefusesWhatItCannotMakeAsConfigured(t *testing.T) {
	ctx := context.Background()
	t.Run("group in another region", func(t *testing.T) {
		m, a := newMachines(t)
		_, err := groupsClient(t, a).CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr("westus")}, nil)
		require.NoError(t, err)
		before := len(a.Calls())
		_, err = m.Prepare(ctx, infrastructure(), nil)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "resource group "+group+" is in region westus, but the configuration puts it in centralus")
		assert.Empty(t, writes(a.Calls()[before:]), "nothing is written after the refusal")
	})
	t.Run("NSG in another region", func(t *testing.T) {
		m, a := newMachines(t)
		_, err := groupsClient(t, a).CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr("centralus")}, nil)
		require.NoError(t, err)
		n := testNetwork()
		n.Region = "westus"
		_, err = m.EnsureNetwork(ctx, n)
		require.NoError(t, err)
		_, err = m.Prepare(ctx, infrastructure(), nil)
		require.ErrorContains(t, err, "NSG "+group+"/nsg-central-us is in region westus, but the configuration puts it in centralus: cib does not move resources")
	})
	t.Run("storage account name taken elsewhere", func(t *testing.T) {
		m, a := newMachines(t)
		a.TakeStorageName("saeastusgeckot")
		rep, err := m.Prepare(ctx, infrastructure(), nil)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "storage account saeastusgeckot of target win10-64 → "+eastGroup+": the name is already taken")
		assert.Equal(t, "created resource group "+eastGroup+" ("+eastGroup+", eastus)", lines(rep)[len(rep.Changes)-1], "the report holds what was done")
	})
	t.Run("invalid storage account name", func(t *testing.T) {
		m, _ := newMachines(t)
		want := infrastructure()
		want.Sites[2].Storage = "SA-East"
		_, err := m.Prepare(ctx, want, nil)
		require.ErrorContains(t, err, "storage account SA-East of target win10-64 → "+eastGroup+": the name is not valid")
	})
	t.Run("image definition of another generation", func(t *testing.T) {
		m, a := newMachines(t)
		_, err := groupsClient(t, a).CreateOrUpdate(ctx, eastGroup, armresources.ResourceGroup{Location: to.Ptr("eastus")}, nil)
		require.NoError(t, err)
		a.AddGalleryImage(eastGroup, gallery, "win10-64", "eastus", "V1")
		_, err = m.Prepare(ctx, infrastructure(), nil)
		require.ErrorContains(t, err, "image definition "+eastGroup+"/cib_images/win10-64 differs from the configuration (Hyper-V generation V1 → V2)")
	})
	t.Run("storage account of another SKU", func(t *testing.T) {
		m, a := newMachines(t)
		_, err := groupsClient(t, a).CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: to.Ptr("centralus")}, nil)
		require.NoError(t, err)
		p, err := storageClients(t, a).NewAccountsClient().BeginCreate(ctx, group, "sacentralusgeckot", armstorage.AccountCreateParameters{
			Kind: to.Ptr(armstorage.KindStorageV2), Location: to.Ptr("centralus"), SKU: &armstorage.SKU{Name: to.Ptr(armstorage.SKUNameStandardGRS)},
		}, nil)
		require.NoError(t, err)
		_, err = p.PollUntilDone(ctx, nil)
		require.NoError(t, err)
		_, err = m.Prepare(ctx, infrastructure(), nil)
		require.ErrorContains(t, err, "storage account "+group+"/sacentralusgeckot has SKU Standard_GRS, and cib wants Standard_LRS")
	})
	t.Run("sites that disagree", func(t *testing.T) {
		m, a := newMachines(t)
		want := infrastructure()
		want.Sites[1].Key = "win10-64"
		want.Sites[1].HyperVGeneration = "V1"
		other := testNetwork()
		other.Rules = other.Rules[:1]
		want.Sites[1].Network = &other
		want.Sites[2].Storage = "sacentralusgeckot"
		_, err := m.Prepare(ctx, want, nil)
		require.Error(t, err)
		for _, s := range []string{"storage account names are global", "NSG nsg-central-us in " + group + " has different rules", "Hyper-V generation V2 and V1"} {
			assert.Contains(t, err.Error(), s)
		}
		assert.Empty(t, a.Calls(), "refused before any call")
	})
}

func TestPrepareFaultNamesTheResourceAndARerunConverges(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		api, what string
	}{
		{"ResourceGroupsClient.CreateOrUpdate", "create resource group " + group},
		{"AccountsClient.BeginCreate", "create storage account " + group + "/sacentralusgeckot"},
		{"AccountsClient.CheckNameAvailability", "check the name of storage account " + group + "/sacentralusgeckot"},
		{"BlobContainersClient.Create", "create container " + group + "/sacentralusgeckot/disk-images"},
		{"SecurityRulesClient.BeginCreateOrUpdate", "NSG " + group + "/nsg-central-us: create rule allow-rdp"},
		{"VirtualNetworksClient.BeginCreateOrUpdate", "create virtual network " + group + "/vn-central-us-gecko"},
		{"GalleriesClient.BeginCreateOrUpdate", "create gallery " + group + "/cib_images"},
		{"GalleryImagesClient.BeginCreateOrUpdate", "create image definition " + group + "/cib_images/win10-64"},
	} {
		t.Run(c.api, func(t *testing.T) {
			m, a := newMachines(t)
			a.Inject(azuretest.Fault{API: c.api, Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable", Times: 1})
			_, err := m.Prepare(ctx, infrastructure(), nil)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.what)
			assert.True(t, machineimage.IsRetryable(err), "a 503 is retryable: %v", err)

			_, err = m.Prepare(ctx, infrastructure(), nil)
			require.NoError(t, err, "the re-run finishes the job")
			rep, err := m.Prepare(ctx, infrastructure(), nil)
			require.NoError(t, err)
			assert.Equal(t, allPrepared("unchanged"), lines(rep))
		})
	}
}

func TestPrepareWithoutAGalleryMakesNone(t *testing.T) {
	ctx := context.Background()
	m, a := newMachines(t)
	want := infrastructure()
	want.Gallery = ""
	rep, err := m.Prepare(ctx, want, nil)
	require.NoError(t, err)
	for _, c := range rep.Changes {
		assert.NotContains(t, []string{azure.KindGallery, azure.KindImageDefinition}, c.Kind)
	}
	for _, id := range a.IDs() {
		assert.NotContains(t, strings.ToLower(id), "/galleries/")
	}
}

// The subnet's own network keeps reporting once even with a second
// subnet: each resource is reported once per run.
func TestPrepareReportsASharedNetworkOnce(t *testing.T) {
	ctx := context.Background()
	m, _ := newMachines(t)
	want := infrastructure()
	second := testNetwork()
	second.Subnet, second.SubnetPrefix = "sn-two", "10.0.1.0/24"
	want.Sites[1].Network = &second
	want.Gallery = ""
	rep, err := m.Prepare(ctx, want, nil)
	require.NoError(t, err)
	count := map[string]int{}
	for _, c := range rep.Changes {
		count[c.Kind+" "+c.Name+" "+c.Group]++
	}
	for k, n := range count {
		assert.Equal(t, 1, n, k)
	}
	assert.Equal(t, 1, count["NSG nsg-central-us "+group])
	assert.Equal(t, 1, count["subnet vn-central-us-gecko/sn-two "+group])
}

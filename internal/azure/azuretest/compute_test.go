package azuretest_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v7"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/azure/azuretest"
)

const crg = "crg-model"

func computeClients(t *testing.T, a *azuretest.Azure) *armcompute.ClientFactory {
	t.Helper()
	f, err := armcompute.NewClientFactory(azuretest.Subscription, &fake.TokenCredential{}, a.ClientOptions())
	require.NoError(t, err)
	return f
}

func armCode(t *testing.T, err error) (int, string) {
	t.Helper()
	var re *azcore.ResponseError
	require.True(t, errors.As(err, &re), "%v", err)
	return re.StatusCode, re.ErrorCode
}

// withVM makes a group, a NIC and a disk through the raw clients, and
// creates VM "vm" with the disk attached.
func withVM(t *testing.T, a *azuretest.Azure, g azuretest.Guest) (*armcompute.ClientFactory, error) {
	t.Helper()
	ctx := context.Background()
	opts := a.ClientOptions()
	groups, err := armresources.NewResourceGroupsClient(azuretest.Subscription, &fake.TokenCredential{}, opts)
	require.NoError(t, err)
	_, err = groups.CreateOrUpdate(ctx, crg, armresources.ResourceGroup{Location: to.Ptr("centralus")}, nil)
	require.NoError(t, err)
	nf, err := armnetwork.NewClientFactory(azuretest.Subscription, &fake.TokenCredential{}, opts)
	require.NoError(t, err)
	vp, err := nf.NewVirtualNetworksClient().BeginCreateOrUpdate(ctx, crg, "vn", armnetwork.VirtualNetwork{
		Location: to.Ptr("centralus"),
		Properties: &armnetwork.VirtualNetworkPropertiesFormat{
			AddressSpace: &armnetwork.AddressSpace{AddressPrefixes: []*string{to.Ptr("10.0.0.0/16")}},
			Subnets:      []*armnetwork.Subnet{{Name: to.Ptr("sn"), Properties: &armnetwork.SubnetPropertiesFormat{AddressPrefix: to.Ptr("10.0.0.0/24")}}},
		},
	}, nil)
	require.NoError(t, err)
	_, err = vp.PollUntilDone(ctx, &pollFast)
	require.NoError(t, err)
	np, err := nf.NewInterfacesClient().BeginCreateOrUpdate(ctx, crg, "nic", armnetwork.Interface{
		Location: to.Ptr("centralus"),
		Properties: &armnetwork.InterfacePropertiesFormat{IPConfigurations: []*armnetwork.InterfaceIPConfiguration{{
			Name: to.Ptr("ip"), Properties: &armnetwork.InterfaceIPConfigurationPropertiesFormat{Subnet: &armnetwork.Subnet{ID: to.Ptr(azuretest.SubnetID(crg, "vn", "sn"))}},
		}}},
	}, nil)
	require.NoError(t, err)
	_, err = np.PollUntilDone(ctx, &pollFast)
	require.NoError(t, err)

	cf := computeClients(t, a)
	dp, err := cf.NewDisksClient().BeginCreateOrUpdate(ctx, crg, "os", armcompute.Disk{
		Location: to.Ptr("centralus"),
		Properties: &armcompute.DiskProperties{CreationData: &armcompute.CreationData{
			CreateOption: to.Ptr(armcompute.DiskCreateOptionImport), SourceURI: to.Ptr("https://sa.blob.core.windows.net/vhd/a.vhd"),
			StorageAccountID: to.Ptr("/subscriptions/x/resourceGroups/y/providers/Microsoft.Storage/storageAccounts/sa"),
		}},
	}, nil)
	require.NoError(t, err)
	_, err = dp.PollUntilDone(ctx, &pollFast)
	require.NoError(t, err)

	a.OfferSizes("centralus", azuretest.StandardSizes...)
	a.SetGuest("vm", g)
	p, err := cf.NewVirtualMachinesClient().BeginCreateOrUpdate(ctx, crg, "vm", armcompute.VirtualMachine{
		Location: to.Ptr("centralus"),
		Properties: &armcompute.VirtualMachineProperties{
			HardwareProfile: &armcompute.HardwareProfile{VMSize: to.Ptr(armcompute.VirtualMachineSizeTypesStandardDS2V2)},
			StorageProfile: &armcompute.StorageProfile{OSDisk: &armcompute.OSDisk{
				CreateOption: to.Ptr(armcompute.DiskCreateOptionTypesAttach), OSType: to.Ptr(armcompute.OperatingSystemTypesWindows),
				ManagedDisk: &armcompute.ManagedDiskParameters{ID: to.Ptr(azuretest.ResourceID(crg, "Microsoft.Compute", "disks", "os"))},
			}},
			NetworkProfile:     &armcompute.NetworkProfile{NetworkInterfaces: []*armcompute.NetworkInterfaceReference{{ID: to.Ptr(azuretest.NetworkID(crg, "networkInterfaces", "nic"))}}},
			DiagnosticsProfile: &armcompute.DiagnosticsProfile{BootDiagnostics: &armcompute.BootDiagnostics{Enabled: to.Ptr(true)}},
		},
	}, nil)
	require.NoError(t, err)
	_, err = p.PollUntilDone(ctx, &pollFast)
	return cf, err
}

// A compute call the model does not implement fails loudly; so does a
// variant of one it does.
func TestComputeUnimplemented(t *testing.T) {
	a := azuretest.New()
	defer a.Close()
	ctx := context.Background()
	cf := computeClients(t, a)
	_, err := cf.NewVirtualMachinesClient().BeginRedeploy(ctx, crg, "vm", nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not implemented")
	_, err = cf.NewSnapshotsClient().Get(ctx, crg, "s", nil)
	assert.Contains(t, err.Error(), "not implemented")

	groups, err := armresources.NewResourceGroupsClient(azuretest.Subscription, &fake.TokenCredential{}, a.ClientOptions())
	require.NoError(t, err)
	_, err = groups.CreateOrUpdate(ctx, crg, armresources.ResourceGroup{Location: to.Ptr("centralus")}, nil)
	require.NoError(t, err)
	_, err = cf.NewDisksClient().BeginCreateOrUpdate(ctx, crg, "copy", armcompute.Disk{
		Location:   to.Ptr("centralus"),
		Properties: &armcompute.DiskProperties{CreationData: &armcompute.CreationData{CreateOption: to.Ptr(armcompute.DiskCreateOptionCopy)}},
	}, nil)
	status, code := armCode(t, err)
	assert.Equal(t, http.StatusNotImplemented, status)
	assert.Equal(t, "NotImplementedInModel", code)
	assert.Contains(t, err.Error(), "createOption Copy is not part of the in-memory Azure")
}

func TestSKUListPagesAndFilters(t *testing.T) {
	a := azuretest.New()
	ctx := context.Background()
	a.OfferSizes("centralus", azuretest.StandardSizes...)
	a.OfferSizes("eastus", azuretest.StandardSizes[:2]...)
	c := computeClients(t, a).NewResourceSKUsClient()

	list := func(filter *string) (names []string, pages int, err error) {
		p := c.NewListPager(&armcompute.ResourceSKUsClientListOptions{Filter: filter})
		for p.More() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, pages, err
			}
			pages++
			for _, s := range page.Value {
				names = append(names, *s.Locations[0]+":"+*s.ResourceType+":"+*s.Name)
			}
		}
		return names, pages, nil
	}
	names, pages, err := list(to.Ptr("location eq 'eastus'"))
	require.NoError(t, err)
	assert.Equal(t, []string{"eastus:disks:Standard_LRS", "eastus:virtualMachines:Standard_DS1_v2", "eastus:virtualMachines:Standard_DS2_v2"}, names)
	assert.Equal(t, 1, pages)
	names, pages, err = list(to.Ptr("location eq 'Central US'"))
	require.NoError(t, err)
	assert.Len(t, names, 8)
	assert.Equal(t, 3, pages)
	names, _, err = list(nil)
	require.NoError(t, err)
	assert.Len(t, names, 11, "every region")
	_, _, err = list(to.Ptr("name eq 'Standard_DS1_v2'"))
	_, code := armCode(t, err)
	assert.Equal(t, "InvalidParameter", code)
}

// The scripted guest drives the power state in real time; deallocated,
// the VM can be generalized, and then not started.
func TestGuestDrivesPowerState(t *testing.T) {
	a := azuretest.New()
	defer a.Close()
	ctx := context.Background()
	cf, err := withVM(t, a, azuretest.Guest{Boots: []time.Duration{10 * time.Millisecond}})
	require.NoError(t, err)
	vms := cf.NewVirtualMachinesClient()
	power := func() string {
		iv, err := vms.InstanceView(ctx, crg, "vm", nil)
		require.NoError(t, err)
		assert.Equal(t, "ProvisioningState/succeeded", *iv.Statuses[0].Code)
		return *iv.Statuses[len(iv.Statuses)-1].Code
	}
	assert.Equal(t, "PowerState/running", power())
	time.Sleep(15 * time.Millisecond)
	assert.Equal(t, "PowerState/stopped", power())

	_, err = vms.Generalize(ctx, crg, "vm", nil)
	status, code := armCode(t, err)
	assert.Equal(t, http.StatusConflict, status)
	assert.Equal(t, "OperationNotAllowed", code)
	assert.Contains(t, err.Error(), "Deallocate the VM first", "errors carry Azure's message")

	// An attached disk is refused deletion as Azure refuses it.
	_, err = cf.NewDisksClient().BeginDelete(ctx, crg, "os", nil)
	_, code = armCode(t, err)
	assert.Equal(t, "OperationNotAllowed", code)
	assert.Contains(t, err.Error(), "is attached to VM")

	p, err := vms.BeginDeallocate(ctx, crg, "vm", nil)
	require.NoError(t, err)
	_, err = p.PollUntilDone(ctx, &pollFast)
	require.NoError(t, err)
	_, err = vms.Generalize(ctx, crg, "vm", nil)
	require.NoError(t, err)
	iv, err := vms.InstanceView(ctx, crg, "vm", nil)
	require.NoError(t, err)
	var codes []string
	for _, s := range iv.Statuses {
		codes = append(codes, *s.Code)
	}
	assert.Equal(t, []string{"ProvisioningState/succeeded", "OSState/generalized", "PowerState/deallocated"}, codes)
	_, err = vms.BeginStart(ctx, crg, "vm", nil)
	_, code = armCode(t, err)
	assert.Equal(t, "OperationNotAllowed", code)

	// The NIC shows the VM that uses it until the VM goes.
	nf, err := armnetwork.NewClientFactory(azuretest.Subscription, &fake.TokenCredential{}, a.ClientOptions())
	require.NoError(t, err)
	nic, err := nf.NewInterfacesClient().Get(ctx, crg, "nic", nil)
	require.NoError(t, err)
	require.NotNil(t, nic.Properties.VirtualMachine)
	dp, err := vms.BeginDelete(ctx, crg, "vm", nil)
	require.NoError(t, err)
	_, err = dp.PollUntilDone(ctx, &pollFast)
	require.NoError(t, err)
	nic, err = nf.NewInterfacesClient().Get(ctx, crg, "nic", nil)
	require.NoError(t, err)
	assert.Nil(t, nic.Properties.VirtualMachine)
	disk, err := cf.NewDisksClient().Get(ctx, crg, "os", nil)
	require.NoError(t, err)
	assert.Nil(t, disk.ManagedBy, "an attached disk stays, detached")
}

// Boot diagnostics are served behind a SAS; the server starts on demand
// and Close stops it.
func TestBootDiagnosticsServer(t *testing.T) {
	a := azuretest.New()
	defer a.Close()
	ctx := context.Background()
	cf, err := withVM(t, a, azuretest.Guest{})
	require.NoError(t, err)
	vms := cf.NewVirtualMachinesClient()
	get := func(u string) (int, string) {
		resp, err := http.Get(u)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	d, err := vms.RetrieveBootDiagnosticsData(ctx, crg, "vm", nil)
	require.NoError(t, err)
	status, body := get(*d.SerialConsoleLogBlobURI)
	assert.Equal(t, http.StatusOK, status)
	assert.Contains(t, body, "boot 1: Windows Boot Manager")
	u, err := url.Parse(*d.ConsoleScreenshotBlobURI)
	require.NoError(t, err)
	u.RawQuery = ""
	status, _ = get(u.String())
	assert.Equal(t, http.StatusForbidden, status, "no SAS, no blob")

	a.Close()
	_, err = http.Get(*d.SerialConsoleLogBlobURI)
	assert.Error(t, err, "closed")
	d, err = vms.RetrieveBootDiagnosticsData(ctx, crg, "vm", nil)
	require.NoError(t, err)
	status, _ = get(*d.ConsoleScreenshotBlobURI)
	assert.Equal(t, http.StatusOK, status, "started again")
}

// A guest's commands take their time, cut short by the caller.
func TestRunCommandTakesTime(t *testing.T) {
	a := azuretest.New()
	defer a.Close()
	cf, err := withVM(t, a, azuretest.Guest{CommandTime: time.Second, Commands: func(string) (string, error) { return "done", nil }})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = cf.NewVirtualMachinesClient().BeginRunCommand(ctx, crg, "vm", armcompute.RunCommandInput{CommandID: to.Ptr("RunPowerShellScript")}, nil)
	require.Error(t, err)
	assert.Less(t, time.Since(start), 500*time.Millisecond)
}

// A VM that fails to provision: its creation fails, it exists, Failed.
func TestFailProvisioning(t *testing.T) {
	a := azuretest.New()
	defer a.Close()
	cf, err := withVM(t, a, azuretest.Guest{FailProvisioning: true})
	_, code := armCode(t, err)
	assert.Equal(t, "VMStartTimedOut", code)
	vm, err := cf.NewVirtualMachinesClient().Get(context.Background(), crg, "vm", nil)
	require.NoError(t, err)
	assert.Equal(t, "Failed", *vm.Properties.ProvisioningState)
}

// pollFast polls fast.
var pollFast = runtime.PollUntilDoneOptions{Frequency: time.Millisecond}

// A restart is a new boot of the scripted guest: it follows the guest's
// next boot, and needs a running VM.
func TestRestartIsANewBoot(t *testing.T) {
	a := azuretest.New()
	defer a.Close()
	ctx := context.Background()
	// Boot 1 never stops; boot 2 (the restart) stops after 10 ms.
	cf, err := withVM(t, a, azuretest.Guest{Boots: []time.Duration{0, 10 * time.Millisecond}})
	require.NoError(t, err)
	vms := cf.NewVirtualMachinesClient()
	power := func() string {
		iv, err := vms.InstanceView(ctx, crg, "vm", nil)
		require.NoError(t, err)
		return *iv.Statuses[len(iv.Statuses)-1].Code
	}
	p, err := vms.BeginRestart(ctx, crg, "vm", nil)
	require.NoError(t, err)
	_, err = p.PollUntilDone(ctx, &pollFast)
	require.NoError(t, err)
	assert.Equal(t, "PowerState/running", power())
	time.Sleep(15 * time.Millisecond)
	assert.Equal(t, "PowerState/stopped", power())
	d, err := vms.RetrieveBootDiagnosticsData(ctx, crg, "vm", nil)
	require.NoError(t, err)
	resp, err := http.Get(*d.SerialConsoleLogBlobURI)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Contains(t, string(body), "boot 1: the guest restarts")
	assert.Contains(t, string(body), "boot 2: the guest shut down")

	_, err = vms.BeginRestart(ctx, crg, "vm", nil)
	status, code := armCode(t, err)
	assert.Equal(t, http.StatusConflict, status)
	assert.Equal(t, "OperationNotAllowed", code)
	assert.Contains(t, err.Error(), "since the VM is stopped")
}

// An operation that failed while polling leaves no state in the SDK's
// fake server: the next Begin of the same operation on the same URL
// reaches the model. (The fake servers keep an operation's remaining
// responses by URL until the last is answered successfully, so a polling
// error, a terminal error, a fault on a poll or an abandoned poller used
// to leave stale answers behind.)
func TestNoStalePollerAfterAFailedOperation(t *testing.T) {
	ctx := context.Background()

	// A failed provisioning (a polling error), then the same VM again.
	a := azuretest.New()
	defer a.Close()
	cf, err := withVM(t, a, azuretest.Guest{FailProvisioning: true})
	_, code := armCode(t, err)
	require.Equal(t, "VMStartTimedOut", code)
	vms := cf.NewVirtualMachinesClient()
	dp, err := vms.BeginDelete(ctx, crg, "vm", nil)
	require.NoError(t, err)
	_, err = dp.PollUntilDone(ctx, &pollFast)
	require.NoError(t, err)
	a.SetGuest("vm", azuretest.Guest{})
	vm := armcompute.VirtualMachine{
		Location: to.Ptr("centralus"),
		Properties: &armcompute.VirtualMachineProperties{
			HardwareProfile: &armcompute.HardwareProfile{VMSize: to.Ptr(armcompute.VirtualMachineSizeTypesStandardDS2V2)},
			StorageProfile: &armcompute.StorageProfile{OSDisk: &armcompute.OSDisk{
				CreateOption: to.Ptr(armcompute.DiskCreateOptionTypesAttach), OSType: to.Ptr(armcompute.OperatingSystemTypesWindows),
				ManagedDisk: &armcompute.ManagedDiskParameters{ID: to.Ptr(azuretest.ResourceID(crg, "Microsoft.Compute", "disks", "os"))},
			}},
			NetworkProfile: &armcompute.NetworkProfile{NetworkInterfaces: []*armcompute.NetworkInterfaceReference{{ID: to.Ptr(azuretest.NetworkID(crg, "networkInterfaces", "nic"))}}},
		},
	}
	p, err := vms.BeginCreateOrUpdate(ctx, crg, "vm", vm, nil)
	require.NoError(t, err)
	res, err := p.PollUntilDone(ctx, &pollFast)
	require.NoError(t, err, "the second creation reaches the model")
	assert.Equal(t, "Succeeded", *res.Properties.ProvisioningState)

	// A fault on a poll of a disk's creation; the disk is created again
	// with another size, and the model sees it.
	disks := cf.NewDisksClient()
	disk := func(size int32) armcompute.Disk {
		return armcompute.Disk{Location: to.Ptr("centralus"), Properties: &armcompute.DiskProperties{
			DiskSizeGB: to.Ptr(size), CreationData: &armcompute.CreationData{CreateOption: to.Ptr(armcompute.DiskCreateOptionEmpty)},
		}}
	}
	a.Inject(azuretest.Fault{API: "DisksClient.BeginCreateOrUpdate", Status: 500, Code: "InternalServerError", Times: 2})
	_, err = disks.BeginCreateOrUpdate(ctx, crg, "data", disk(8), nil)
	require.Error(t, err, "the initial request faulted")
	a.ClearFaults()
	n := len(a.Calls())
	a.Inject(azuretest.Fault{N: n + 2, Status: 500, Code: "InternalServerError"}) // the first poll
	dpp, err := disks.BeginCreateOrUpdate(ctx, crg, "data", disk(16), nil)
	require.NoError(t, err)
	_, err = dpp.PollUntilDone(ctx, &pollFast)
	status, _ := armCode(t, err)
	require.Equal(t, http.StatusInternalServerError, status)
	dpp, err = disks.BeginCreateOrUpdate(ctx, crg, "data", disk(32), nil)
	require.NoError(t, err)
	got, err := dpp.PollUntilDone(ctx, &pollFast)
	require.NoError(t, err)
	assert.Equal(t, int32(32), *got.Properties.DiskSizeGB)
	stored, err := disks.Get(ctx, crg, "data", nil)
	require.NoError(t, err)
	assert.Equal(t, int32(32), *stored.Properties.DiskSizeGB)

	// An abandoned poller (its context ended) leaves nothing either.
	cctx, cancel := context.WithCancel(ctx)
	dpp, err = disks.BeginCreateOrUpdate(cctx, crg, "data", disk(64), nil)
	require.NoError(t, err)
	cancel()
	_, err = dpp.PollUntilDone(cctx, &pollFast)
	require.ErrorIs(t, err, context.Canceled)
	dpp, err = disks.BeginCreateOrUpdate(ctx, crg, "data", disk(128), nil)
	require.NoError(t, err)
	got, err = dpp.PollUntilDone(ctx, &pollFast)
	require.NoError(t, err)
	assert.Equal(t, int32(128), *got.Properties.DiskSizeGB)

	// A poll of an operation that was never begun is refused.
	req, err := http.NewRequestWithContext(context.WithValue(ctx, runtime.CtxAPINameKey{}, "DisksClient.BeginDelete"), http.MethodGet,
		"https://management.azure.com"+azuretest.ResourceID(crg, "Microsoft.Compute", "disks", "other")+"/get/fake/status", nil)
	require.NoError(t, err)
	resp, err := a.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}

// Two lists of the same URL at once each get their own pages (the fake
// servers would share one pager between them).
func TestInterleavedPagers(t *testing.T) {
	a := azuretest.New()
	ctx := context.Background()
	a.OfferSizes("centralus", azuretest.StandardSizes...)
	c := computeClients(t, a).NewResourceSKUsClient()
	filter := "location eq 'centralus'"
	p1 := c.NewListPager(&armcompute.ResourceSKUsClientListOptions{Filter: &filter})
	p2 := c.NewListPager(&armcompute.ResourceSKUsClientListOptions{Filter: &filter})
	var n1, n2 int
	for p1.More() || p2.More() {
		for _, p := range []struct {
			pager interface {
				More() bool
				NextPage(context.Context) (armcompute.ResourceSKUsClientListResponse, error)
			}
			n *int
		}{{p1, &n1}, {p2, &n2}} {
			if !p.pager.More() {
				continue
			}
			page, err := p.pager.NextPage(ctx)
			require.NoError(t, err)
			*p.n += len(page.Value)
		}
	}
	assert.Equal(t, len(azuretest.StandardSizes)+1, n1, "the sizes and a disk SKU")
	assert.Equal(t, n1, n2)
}

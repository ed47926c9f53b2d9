package azure_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/azure"
	"github.com/cib-project/cib/internal/azure/azuretest"
	"github.com/cib-project/cib/internal/machineimage"
)

const (
	cgroup  = "rg-central-us-cib-compute"
	cregion = "centralus"
)

// computeRig is an Azure with a network, sizes on offer in centralus and
// a Machines that talks to it.
type computeRig struct {
	m        *azure.Machines
	a        *azuretest.Azure
	subnetID string
	compute  *armcompute.ClientFactory
}

func newComputeRig(t *testing.T) *computeRig {
	t.Helper()
	a := azuretest.New()
	t.Cleanup(a.Close)
	a.OfferSizes(cregion, azuretest.StandardSizes[:5]...)
	m, err := azure.NewMachines(azuretest.Subscription, &fake.TokenCredential{}, a.ClientOptions())
	require.NoError(t, err)
	m.PollFrequency = time.Millisecond
	subnetID, err := m.EnsureNetwork(context.Background(), machineimage.Network{
		Group: cgroup, Region: cregion, NSG: "nsg-cib", VNet: "vn-cib", Prefix: "10.1.0.0/16",
		Subnet: "sn-cib", SubnetPrefix: "10.1.0.0/24",
	})
	require.NoError(t, err)
	cf, err := armcompute.NewClientFactory(azuretest.Subscription, &fake.TokenCredential{}, a.ClientOptions())
	require.NoError(t, err)
	return &computeRig{m: m, a: a, subnetID: subnetID, compute: cf}
}

func res(name string) machineimage.Resource {
	return machineimage.Resource{Group: cgroup, Region: cregion, Name: name, Tags: map[string]string{"cib:managed": "true"}}
}

// vm makes a NIC and an imported OS disk, and returns the VM that uses
// them.
func (r *computeRig) vm(t *testing.T, name string) machineimage.VM {
	t.Helper()
	ctx := context.Background()
	nic, err := r.m.CreateNIC(ctx, res("nic-"+name), r.subnetID, "")
	require.NoError(t, err)
	disk, err := r.m.CreateDisk(ctx, machineimage.Disk{
		Resource: res("disk-" + name), SKU: "StandardSSD_LRS", SizeGiB: 64, HyperVGeneration: "V2",
		SourceBlob:       "https://cibimages.blob.core.windows.net/vhd/win11.vhd",
		StorageAccountID: "/subscriptions/" + azuretest.Subscription + "/resourceGroups/rg-storage/providers/Microsoft.Storage/storageAccounts/cibimages",
	})
	require.NoError(t, err)
	return machineimage.VM{Resource: res(name), Size: "Standard_DS3_v2", OSDiskID: disk, NICID: nic}
}

// responseError returns the ARM status and code of err.
func responseError(t *testing.T, err error) (int, string) {
	t.Helper()
	var re *azcore.ResponseError
	require.True(t, errors.As(err, &re), "not an ARM error: %v", err)
	return re.StatusCode, re.ErrorCode
}

// waitFor polls the VM's power state until it is want.
func waitFor(t *testing.T, m *azure.Machines, vmID string, want machineimage.PowerState) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, err := m.PowerState(context.Background(), vmID)
		require.NoError(t, err)
		if s == want {
			return
		}
		require.True(t, time.Now().Before(deadline), "VM still %s, not %s", s, want)
		time.Sleep(2 * time.Millisecond)
	}
}

func countCalls(a *azuretest.Azure, api string) int {
	n := 0
	for _, c := range a.Calls() {
		if c.API == api {
			n++
		}
	}
	return n
}

func TestSizeOfferedPagesAndRestrictions(t *testing.T) {
	ctx := context.Background()
	r := newComputeRig(t)
	r.a.OfferSizes(cregion, azuretest.VMSize{Name: "Standard_D2s_v3", Family: "standardDSv3Family", VCPUs: 2, Restricted: true})
	r.a.OfferSizes("eastus", azuretest.StandardSizes[1])

	before := countCalls(r.a, "ResourceSKUsClient.NewListPager")
	ok, err := r.m.SizeOffered(ctx, cregion, "Standard_DS5_v2")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.GreaterOrEqual(t, countCalls(r.a, "ResourceSKUsClient.NewListPager")-before, 2, "the last size is on a later page")

	for _, c := range []struct {
		region, size string
		want         bool
	}{
		{cregion, "standard_ds3_v2", true},
		{cregion, "Standard_D2s_v3", false}, // restricted
		{cregion, "Standard_LRS", false},    // a disk SKU, not a VM size
		{"eastus", "Standard_DS2_v2", true},
		{"eastus", "Standard_DS3_v2", false},
		{"westus", "Standard_DS3_v2", false},
	} {
		ok, err := r.m.SizeOffered(ctx, c.region, c.size)
		require.NoError(t, err)
		assert.Equal(t, c.want, ok, "%s in %s", c.size, c.region)
	}
}

func TestVCPUsAndQuota(t *testing.T) {
	ctx := context.Background()
	r := newComputeRig(t)
	need, free, err := r.m.VCPUs(ctx, cregion, "Standard_DS3_v2")
	require.NoError(t, err)
	assert.Equal(t, 4, need)
	assert.Equal(t, 100, free, "unset quota")

	r.a.SetQuota(cregion, "standardDSv2Family", 10, 20)
	_, free, err = r.m.VCPUs(ctx, cregion, "Standard_DS3_v2")
	require.NoError(t, err)
	assert.Equal(t, 10, free)
	r.a.SetQuota(cregion, "cores", 5, 12)
	_, free, err = r.m.VCPUs(ctx, cregion, "Standard_DS3_v2")
	require.NoError(t, err)
	assert.Equal(t, 7, free, "the region's total bounds the family's")
	assert.GreaterOrEqual(t, countCalls(r.a, "UsageClient.NewListPager"), 6, "usage comes in two pages")

	// A VM holds its vCPUs until it is deallocated.
	id, err := r.m.CreateVM(ctx, r.vm(t, "vm-quota"))
	require.NoError(t, err)
	_, free, err = r.m.VCPUs(ctx, cregion, "Standard_DS3_v2")
	require.NoError(t, err)
	assert.Equal(t, 3, free)
	_, err = r.m.CreateVM(ctx, r.vm(t, "vm-quota2"))
	require.Error(t, err)
	assert.True(t, machineimage.IsRetryable(err), "quota is retryable: %v", err)
	_, code := responseError(t, err)
	assert.Equal(t, "QuotaExceeded", code)
	require.NoError(t, r.m.Deallocate(ctx, id))
	_, free, err = r.m.VCPUs(ctx, cregion, "Standard_DS3_v2")
	require.NoError(t, err)
	assert.Equal(t, 7, free)

	_, _, err = r.m.VCPUs(ctx, "westus", "Standard_DS3_v2")
	require.Error(t, err)
	assert.False(t, machineimage.IsRetryable(err))
	assert.Contains(t, err.Error(), "not offered")

	r.a.OfferSizes("eastus", azuretest.VMSize{Name: "Standard_X1", Family: "xFamily", VCPUs: 1})
	r.a.SetQuota("eastus", "xFamily", 3, 3)
	_, free, err = r.m.VCPUs(ctx, "eastus", "Standard_X1")
	require.NoError(t, err)
	assert.Equal(t, 0, free)
}

func TestCreateDisk(t *testing.T) {
	ctx := context.Background()
	r := newComputeRig(t)
	osID := r.vm(t, "d").OSDiskID
	got, err := r.compute.NewDisksClient().Get(ctx, cgroup, "disk-d", nil)
	require.NoError(t, err)
	assert.True(t, strings.EqualFold(osID, *got.ID))
	assert.Equal(t, armcompute.DiskCreateOptionImport, *got.Properties.CreationData.CreateOption)
	assert.Equal(t, "https://cibimages.blob.core.windows.net/vhd/win11.vhd", *got.Properties.CreationData.SourceURI)
	assert.Contains(t, *got.Properties.CreationData.StorageAccountID, "storageAccounts/cibimages")
	assert.Equal(t, armcompute.HyperVGenerationV2, *got.Properties.HyperVGeneration)
	assert.Equal(t, armcompute.DiskStorageAccountTypesStandardSSDLRS, *got.SKU.Name)
	assert.Equal(t, armcompute.DiskStateUnattached, *got.Properties.DiskState)
	assert.Equal(t, "true", *got.Tags["cib:managed"])

	data, err := r.m.CreateDisk(ctx, machineimage.Disk{Resource: res("data"), SKU: "Standard_LRS", SizeGiB: 32})
	require.NoError(t, err)
	d, err := r.compute.NewDisksClient().Get(ctx, cgroup, "data", nil)
	require.NoError(t, err)
	assert.True(t, strings.EqualFold(data, *d.ID))
	assert.Equal(t, armcompute.DiskCreateOptionEmpty, *d.Properties.CreationData.CreateOption)
	assert.EqualValues(t, 32, *d.Properties.DiskSizeGB)

	_, err = r.m.CreateDisk(ctx, machineimage.Disk{Resource: res("nosize"), SKU: "Standard_LRS"})
	require.Error(t, err)
	assert.False(t, machineimage.IsRetryable(err))
	assert.Contains(t, err.Error(), "azure: create disk "+cgroup+"/nosize: ")
	status, code := responseError(t, err)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "InvalidParameter", code)
	assert.Contains(t, err.Error(), "diskSizeGB", "the message says what is wrong")

	missing := res("x")
	missing.Group = "rg-missing"
	_, err = r.m.CreateDisk(ctx, machineimage.Disk{Resource: missing, SizeGiB: 1})
	_, code = responseError(t, err)
	assert.Equal(t, "ResourceGroupNotFound", code)
}

// The whole life of a build VM: created and started, its guest stops by
// itself, is started again, runs commands, stops again; deallocated,
// generalized, captured, versioned, tagged, and deleted to nothing.
func TestVMLifecycle(t *testing.T) {
	ctx := context.Background()
	r := newComputeRig(t)
	before := r.a.IDs()
	var scripts []string
	r.a.SetGuest("vm-build", azuretest.Guest{
		Boots: []time.Duration{40 * time.Millisecond, 60 * time.Millisecond},
		Commands: func(script string) (string, error) {
			scripts = append(scripts, script)
			if strings.Contains(script, "fail") {
				return "partial", errors.New("it failed")
			}
			return "ComputerName: cib-0123\n", nil
		},
	})
	spec := r.vm(t, "vm-build")
	data, err := r.m.CreateDisk(ctx, machineimage.Disk{Resource: res("data-build"), SKU: "Standard_LRS", SizeGiB: 16})
	require.NoError(t, err)
	spec.DataDiskIDs = []string{data}
	spec.Tags = map[string]string{"cib:managed": "true", "workerType": "gecko-t-win11"}
	vmID, err := r.m.CreateVM(ctx, spec)
	require.NoError(t, err)
	assert.True(t, strings.EqualFold(azuretest.ResourceID(cgroup, "Microsoft.Compute", "virtualMachines", "vm-build"), vmID))

	got, err := r.compute.NewVirtualMachinesClient().Get(ctx, cgroup, "vm-build", nil)
	require.NoError(t, err)
	p := got.Properties
	assert.Equal(t, armcompute.DiskCreateOptionTypesAttach, *p.StorageProfile.OSDisk.CreateOption)
	assert.Nil(t, p.OSProfile, "an attached disk is not provisioned")
	require.Len(t, p.StorageProfile.DataDisks, 1)
	assert.EqualValues(t, 0, *p.StorageProfile.DataDisks[0].Lun)
	assert.True(t, *p.DiagnosticsProfile.BootDiagnostics.Enabled)
	assert.Nil(t, p.DiagnosticsProfile.BootDiagnostics.StorageURI, "managed storage")
	assert.Equal(t, "gecko-t-win11", *got.Tags["workerType"])
	disk, err := r.compute.NewDisksClient().Get(ctx, cgroup, "disk-vm-build", nil)
	require.NoError(t, err)
	assert.Equal(t, armcompute.DiskStateAttached, *disk.Properties.DiskState)

	state, err := r.m.PowerState(ctx, vmID)
	require.NoError(t, err)
	assert.Equal(t, machineimage.Running, state)
	out, err := r.m.RunCommand(ctx, vmID, "hostname\n$env:COMPUTERNAME")
	require.NoError(t, err)
	assert.Equal(t, machineimage.RunResult{Stdout: "ComputerName: cib-0123\n"}, out)
	assert.Equal(t, []string{"hostname\n$env:COMPUTERNAME"}, scripts, "the script arrives whole")
	out, err = r.m.RunCommand(ctx, vmID, "fail")
	require.NoError(t, err, "a failing script is not a failing call")
	assert.Equal(t, machineimage.RunResult{Stdout: "partial", Stderr: "it failed"}, out)

	first, err := r.m.Diagnostics(ctx, vmID)
	require.NoError(t, err)
	assert.True(t, bytes.HasPrefix(first.Screenshot, []byte("\x89PNG")))
	assert.Contains(t, string(first.Serial), "boot 1")

	waitFor(t, r.m, vmID, machineimage.Stopped)
	_, err = r.m.RunCommand(ctx, vmID, "hostname")
	require.Error(t, err, "Run Command needs a running VM")
	assert.Contains(t, err.Error(), "azure: run command on VM "+cgroup+"/vm-build: ")
	stopped, err := r.m.Diagnostics(ctx, vmID)
	require.NoError(t, err)
	assert.NotEqual(t, first.Screenshot, stopped.Screenshot)
	assert.Contains(t, string(stopped.Serial), "boot 1: the guest shut down")

	require.NoError(t, r.m.StartVM(ctx, vmID))
	state, err = r.m.PowerState(ctx, vmID)
	require.NoError(t, err)
	assert.Equal(t, machineimage.Running, state)
	second, err := r.m.Diagnostics(ctx, vmID)
	require.NoError(t, err)
	assert.NotEqual(t, first.Screenshot, second.Screenshot, "the screenshot shows the boot")
	assert.Contains(t, string(second.Serial), "boot 2")
	waitFor(t, r.m, vmID, machineimage.Stopped)

	// Capture: only a deallocated VM is generalized, only a generalized
	// one is captured.
	img := machineimage.Image{Resource: res("img-build"), SourceVMID: vmID, HyperVGeneration: "V2"}
	err = r.m.Generalize(ctx, vmID)
	require.Error(t, err)
	status, code := responseError(t, err)
	assert.Equal(t, http.StatusConflict, status)
	assert.Equal(t, "OperationNotAllowed", code)
	_, err = r.m.CreateImage(ctx, img)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "must be generalized")
	require.NoError(t, r.m.Deallocate(ctx, vmID))
	waitFor(t, r.m, vmID, machineimage.Deallocated)
	require.NoError(t, r.m.Generalize(ctx, vmID))
	assert.Error(t, r.m.StartVM(ctx, vmID), "a generalized VM does not start")
	existing, err := r.m.ImageID(ctx, cgroup, "img-build")
	require.NoError(t, err)
	assert.Empty(t, existing)
	existing, err = r.m.ImageID(ctx, "rg-no-such-group", "img-build")
	require.NoError(t, err, "a missing group has no image")
	assert.Empty(t, existing)
	imgID, err := r.m.CreateImage(ctx, img)
	require.NoError(t, err)
	existing, err = r.m.ImageID(ctx, cgroup, "img-build")
	require.NoError(t, err)
	assert.Equal(t, imgID, existing)
	assert.Equal(t, azuretest.ResourceID(cgroup, "Microsoft.Compute", "images", "img-build"), imgID)

	require.NoError(t, r.m.Tag(ctx, imgID, map[string]string{"imageKey": "win11-64", "cib:managed": "true"}))
	im, err := r.compute.NewImagesClient().Get(ctx, cgroup, "img-build", nil)
	require.NoError(t, err)
	assert.Equal(t, "win11-64", *im.Tags["imageKey"])
	assert.Equal(t, "true", *im.Tags["cib:managed"], "the others stay")
	assert.Equal(t, armcompute.HyperVGenerationTypesV2, *im.Properties.HyperVGeneration)

	// A gallery version replicated to three regions.
	definition := r.a.AddGalleryImage(cgroup, "gal_cib", "win11-64", cregion, "V2")
	galleryIDs := []string{azuretest.ResourceID(cgroup, "Microsoft.Compute", "galleries", "gal_cib"), definition}
	verID, err := r.m.CreateImageVersion(ctx, machineimage.ImageVersion{
		Resource: res("2026.1127.83012"), Gallery: "gal_cib", Definition: "win11-64",
		SourceImageID: imgID, Regions: []string{"eastus", "westus2", cregion},
	})
	require.NoError(t, err)
	ver, err := r.compute.NewGalleryImageVersionsClient().Get(ctx, cgroup, "gal_cib", "win11-64", "2026.1127.83012",
		&armcompute.GalleryImageVersionsClientGetOptions{Expand: to.Ptr(armcompute.ReplicationStatusTypesReplicationStatus)})
	require.NoError(t, err)
	assert.Equal(t, armcompute.AggregatedReplicationStateCompleted, *ver.Properties.ReplicationStatus.AggregatedState)
	var regions []string
	for _, s := range ver.Properties.ReplicationStatus.Summary {
		regions = append(regions, *s.Region)
		assert.Equal(t, armcompute.ReplicationStateCompleted, *s.State)
	}
	assert.Equal(t, []string{cregion, "eastus", "westus2"}, regions)
	require.NoError(t, r.m.Tag(ctx, verID, map[string]string{"imageKey": "win11-64"}))
	ver, err = r.compute.NewGalleryImageVersionsClient().Get(ctx, cgroup, "gal_cib", "win11-64", "2026.1127.83012", nil)
	require.NoError(t, err)
	assert.Equal(t, "win11-64", *ver.Tags["imageKey"])
	assert.Equal(t, "true", *ver.Tags["cib:managed"])

	// Tag reaches every kind of resource a run makes.
	for _, id := range []string{vmID, data, spec.NICID} {
		require.NoError(t, r.m.Tag(ctx, id, map[string]string{"cib:expires": "2026-12-01T00:00:00Z"}), id)
	}
	vmNow, err := r.compute.NewVirtualMachinesClient().Get(ctx, cgroup, "vm-build", nil)
	require.NoError(t, err)
	assert.Equal(t, "2026-12-01T00:00:00Z", *vmNow.Tags["cib:expires"])
	assert.Equal(t, "gecko-t-win11", *vmNow.Tags["workerType"])
	writesBefore := len(r.a.Calls())
	require.NoError(t, r.m.Tag(ctx, data, map[string]string{"cib:expires": "2026-12-01T00:00:00Z"}))
	assert.Len(t, r.a.Calls(), writesBefore+1, "tags already there: one read, no write")

	// An attached disk cannot go before its VM.
	err = r.m.Delete(ctx, data)
	require.Error(t, err)
	_, code = responseError(t, err)
	assert.Equal(t, "OperationNotAllowed", code)

	// Undo, in reverse order, leaves what was there and the gallery.
	for _, id := range []string{verID, imgID, vmID, data, spec.OSDiskID, spec.NICID} {
		require.NoError(t, r.m.Delete(ctx, id), id)
	}
	assert.Equal(t, galleryIDs, r.a.Since(before))
}

func TestCreateVMFromMarketplace(t *testing.T) {
	ctx := context.Background()
	r := newComputeRig(t)
	before := r.a.IDs()
	const secret = "Sup3r-Secret-Passw0rd!"
	nic, err := r.m.CreateNIC(ctx, res("nic-mkt"), r.subnetID, "")
	require.NoError(t, err)
	vm := machineimage.VM{
		Resource: res("cib-mkt"), Size: "Standard_DS2_v2", NICID: nic, AdminPass: secret, OSDiskSKU: "StandardSSD_LRS",
		Source: &machineimage.Marketplace{Publisher: "MicrosoftWindowsDesktop", Offer: "windows-11", SKU: "win11-24h2-avd"},
	}
	id, err := r.m.CreateVM(ctx, vm)
	require.NoError(t, err)
	got, err := r.compute.NewVirtualMachinesClient().Get(ctx, cgroup, "cib-mkt", nil)
	require.NoError(t, err)
	assert.Nil(t, got.Properties.OSProfile.AdminPassword, "Azure never answers the password")
	assert.Equal(t, "latest", *got.Properties.StorageProfile.ImageReference.Version)
	osDisk := *got.Properties.StorageProfile.OSDisk.ManagedDisk.ID
	assert.Contains(t, r.a.IDs(), osDisk, "Azure made the OS disk")

	// The OS disk the run never saw goes with the VM.
	require.NoError(t, r.m.Delete(ctx, id))
	require.NoError(t, r.m.Delete(ctx, nic))
	assert.Empty(t, r.a.Since(before))

	// No error shows the password.
	vm.Name = "a-computer-name-too-long"
	_, err = r.m.CreateVM(ctx, vm)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), secret)
	vm.Name, vm.NICID = "cib-mkt", azuretest.NetworkID(cgroup, "networkInterfaces", "gone")
	_, err = r.m.CreateVM(ctx, vm)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), secret)
	vm.AdminPass = ""
	_, err = r.m.CreateVM(ctx, vm)
	assert.ErrorContains(t, err, "needs an administrator password")
}

func TestCreateVMFailures(t *testing.T) {
	ctx := context.Background()
	r := newComputeRig(t)
	r.a.OfferSizes(cregion, azuretest.VMSize{Name: "Standard_D4s_v3", Family: "standardDSv3Family", VCPUs: 4, Restricted: true})

	for _, c := range []struct {
		name      string
		edit      func(*machineimage.VM)
		status    int
		code      string
		retryable bool
	}{
		{"no NIC", func(v *machineimage.VM) { v.NICID = azuretest.NetworkID(cgroup, "networkInterfaces", "gone") }, 404, "NotFound", false},
		{"no disk", func(v *machineimage.VM) { v.OSDiskID += "-gone" }, 404, "NotFound", false},
		{"size not offered", func(v *machineimage.VM) { v.Size = "Standard_DS9_v9" }, 409, "SkuNotAvailable", false},
		{"size restricted", func(v *machineimage.VM) { v.Size = "Standard_D4s_v3" }, 409, "SkuNotAvailable", false},
		{"no group", func(v *machineimage.VM) { v.Group = "rg-gone" }, 404, "ResourceGroupNotFound", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := r.vm(t, "vm-"+strings.ReplaceAll(c.name, " ", "-"))
			c.edit(&v)
			_, err := r.m.CreateVM(ctx, v)
			require.Error(t, err)
			status, code := responseError(t, err)
			assert.Equal(t, c.status, status)
			assert.Equal(t, c.code, code)
			assert.Equal(t, c.retryable, machineimage.IsRetryable(err))
			assert.Contains(t, err.Error(), "azure: create VM "+v.Group+"/"+v.Name+": ")
		})
	}

	// A disk attached to one VM cannot boot another.
	v := r.vm(t, "vm-one")
	_, err := r.m.CreateVM(ctx, v)
	require.NoError(t, err)
	other := r.vm(t, "vm-two")
	other.OSDiskID = v.OSDiskID
	_, err = r.m.CreateVM(ctx, other)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "already attached")

	// A VM that fails to provision ends its creation Failed, and exists.
	r.a.SetGuest("vm-fail", azuretest.Guest{FailProvisioning: true})
	before := r.a.IDs()
	f := r.vm(t, "vm-fail")
	_, err = r.m.CreateVM(ctx, f)
	require.Error(t, err)
	_, code := responseError(t, err)
	assert.Equal(t, "VMStartTimedOut", code)
	assert.Contains(t, err.Error(), "did not start")
	failedID := azuretest.ResourceID(cgroup, "Microsoft.Compute", "virtualMachines", "vm-fail")
	assert.Contains(t, r.a.IDs(), failedID)
	for _, id := range []string{failedID, f.OSDiskID, f.NICID} {
		require.NoError(t, r.m.Delete(ctx, id))
	}
	assert.Empty(t, r.a.Since(before))
}

// A VM whose guest never stops runs until it is deallocated; a default
// guest applies to VMs SetGuest does not name.
func TestDefaultGuest(t *testing.T) {
	ctx := context.Background()
	r := newComputeRig(t)
	r.a.DefaultGuest = azuretest.Guest{Boots: []time.Duration{0, 5 * time.Millisecond}}
	id, err := r.m.CreateVM(ctx, r.vm(t, "vm-default"))
	require.NoError(t, err)
	time.Sleep(20 * time.Millisecond)
	s, err := r.m.PowerState(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, machineimage.Running, s, "the first boot never stops")
	require.NoError(t, r.m.Deallocate(ctx, id))
	require.NoError(t, r.m.StartVM(ctx, id))
	waitFor(t, r.m, id, machineimage.Stopped)
	require.NoError(t, r.m.StartVM(ctx, id))
	time.Sleep(20 * time.Millisecond)
	s, err = r.m.PowerState(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, machineimage.Running, s, "a third boot has no entry: it never stops")
}

func TestCreateImageVersionFailures(t *testing.T) {
	ctx := context.Background()
	r := newComputeRig(t)
	r.a.AddGalleryImage(cgroup, "gal_cib", "win11-64", cregion, "V2")
	v := machineimage.ImageVersion{
		Resource: res("1.0.0"), Gallery: "gal_cib", Definition: "win11-64",
		SourceImageID: azuretest.ResourceID(cgroup, "Microsoft.Compute", "images", "gone"),
	}
	_, err := r.m.CreateImageVersion(ctx, v)
	_, code := responseError(t, err)
	assert.Equal(t, "NotFound", code)
	assert.Contains(t, err.Error(), "azure: create image version "+cgroup+"/gal_cib/win11-64/1.0.0: ")

	v.Definition = "win10-64"
	_, err = r.m.CreateImageVersion(ctx, v)
	_, code = responseError(t, err)
	assert.Equal(t, "ParentResourceNotFound", code)

	v.Definition, v.Name = "win11-64", "2026-11-27"
	_, err = r.m.CreateImageVersion(ctx, v)
	status, code := responseError(t, err)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "InvalidParameter", code)
	assert.False(t, machineimage.IsRetryable(err))
}

func TestDeleteWhatIsNotThere(t *testing.T) {
	ctx := context.Background()
	r := newComputeRig(t)
	for _, g := range []string{cgroup, "rg-gone"} {
		for _, id := range []string{
			azuretest.ResourceID(g, "Microsoft.Compute", "virtualMachines", "gone"),
			azuretest.ResourceID(g, "Microsoft.Compute", "disks", "gone"),
			azuretest.ResourceID(g, "Microsoft.Compute", "images", "gone"),
			azuretest.ResourceID(g, "Microsoft.Compute", "galleries", "gal") + "/images/def/versions/1.0.0",
		} {
			assert.NoError(t, r.m.Delete(ctx, id), id)
		}
	}
	err := r.m.Delete(ctx, azuretest.ResourceID(cgroup, "Microsoft.Compute", "snapshots", "s"))
	assert.ErrorContains(t, err, "cib does not delete")
}

func TestVMCallsOnAMissingVM(t *testing.T) {
	ctx := context.Background()
	r := newComputeRig(t)
	id := azuretest.ResourceID(cgroup, "Microsoft.Compute", "virtualMachines", "gone")
	_, err := r.m.PowerState(ctx, id)
	_, code := responseError(t, err)
	assert.Equal(t, "ResourceNotFound", code)
	for what, err := range map[string]error{
		"start":      r.m.StartVM(ctx, id),
		"deallocate": r.m.Deallocate(ctx, id),
		"generalize": r.m.Generalize(ctx, id),
		"tag":        r.m.Tag(ctx, id, map[string]string{"a": "b"}),
	} {
		require.Error(t, err, what)
		_, code := responseError(t, err)
		assert.Equal(t, "ResourceNotFound", code, what)
		assert.False(t, machineimage.IsRetryable(err), what)
	}
	_, err = r.m.RunCommand(ctx, id, "hostname")
	assert.Error(t, err)
	_, err = r.m.Diagnostics(ctx, id)
	assert.Error(t, err)
	_, err = r.m.PowerState(ctx, azuretest.ResourceID(cgroup, "Microsoft.Compute", "disks", "d"))
	assert.ErrorContains(t, err, "is not a VM")
	err = r.m.Tag(ctx, azuretest.ResourceID(cgroup, "Microsoft.Compute", "snapshots", "s"), map[string]string{"a": "b"})
	assert.ErrorContains(t, err, "cib does not tag")
}

// Faults are classified: throttling and server failures are retryable,
// a bad request is not; a fault while polling a long-running operation
// counts as well.
func TestFaultsAreClassified(t *testing.T) {
	ctx := context.Background()
	r := newComputeRig(t)
	id, err := r.m.CreateVM(ctx, r.vm(t, "vm-faults"))
	require.NoError(t, err)
	for _, c := range []struct {
		status    int
		code      string
		retryable bool
	}{
		{http.StatusTooManyRequests, "TooManyRequests", true},
		{http.StatusInternalServerError, "InternalServerError", true},
		{http.StatusServiceUnavailable, "ServiceUnavailable", true},
		{http.StatusBadRequest, "BadRequest", false},
		{http.StatusForbidden, "AuthorizationFailed", false},
	} {
		r.a.Inject(azuretest.Fault{API: "VirtualMachinesClient.InstanceView", Status: c.status, Code: c.code, Times: 1})
		_, err := r.m.PowerState(ctx, id)
		require.Error(t, err)
		assert.Equal(t, c.retryable, machineimage.IsRetryable(err), "%d %s", c.status, c.code)
		assert.Contains(t, err.Error(), "azure: power state of VM "+cgroup+"/vm-faults: ")

		r.a.Inject(azuretest.Fault{API: "ResourceSKUsClient.NewListPager", Status: c.status, Code: c.code, Times: 1})
		_, err = r.m.SizeOffered(ctx, cregion, "Standard_DS3_v2")
		assert.Equal(t, c.retryable, machineimage.IsRetryable(err), "SKUs: %d %s", c.status, c.code)
	}

	// The second call of a start is its first poll.
	require.NoError(t, r.m.Deallocate(ctx, id))
	n := len(r.a.Calls())
	r.a.Inject(azuretest.Fault{N: n + 2, Status: http.StatusInternalServerError, Code: "InternalServerError"})
	err = r.m.StartVM(ctx, id)
	require.Error(t, err)
	assert.True(t, machineimage.IsRetryable(err))
	assert.True(t, r.a.Calls()[n+1].Fault)
}

// Boot diagnostics come from SAS URLs; the SAS never shows in an error.
func TestDiagnosticsHideTheSAS(t *testing.T) {
	ctx := context.Background()
	r := newComputeRig(t)
	id, err := r.m.CreateVM(ctx, r.vm(t, "vm-diag"))
	require.NoError(t, err)

	var seen []string
	r.m.HTTP = &http.Client{Transport: roundTrip(func(req *http.Request) (*http.Response, error) {
		seen = append(seen, req.URL.String())
		return nil, errors.New("connection reset")
	})}
	_, err = r.m.Diagnostics(ctx, id)
	require.Error(t, err)
	require.NotEmpty(t, seen)
	assert.Contains(t, seen[0], "sig=")
	assert.NotContains(t, err.Error(), "sig=")
	assert.NotContains(t, err.Error(), "?")
	assert.True(t, machineimage.IsRetryable(err))
	assert.Contains(t, err.Error(), "azure: boot diagnostics of VM "+cgroup+"/vm-diag: screenshot: GET http://")

	r.m.HTTP = &http.Client{Transport: roundTrip(func(req *http.Request) (*http.Response, error) {
		q := req.URL.Query()
		q.Set("sig", "forged")
		req.URL.RawQuery = q.Encode()
		return http.DefaultTransport.RoundTrip(req)
	})}
	_, err = r.m.Diagnostics(ctx, id)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "403")
	assert.NotContains(t, err.Error(), "sig=")
	assert.False(t, machineimage.IsRetryable(err))

	r.m.HTTP = nil
	d, err := r.m.Diagnostics(ctx, id)
	require.NoError(t, err)
	assert.NotEmpty(t, d.Screenshot)
	assert.NotEmpty(t, d.Serial)
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Every LRO is polled at the Machines' frequency: at least one poll per
// operation.
func TestLongRunningOperationsPoll(t *testing.T) {
	ctx := context.Background()
	r := newComputeRig(t)
	v := r.vm(t, "vm-poll")
	_, err := r.m.CreateVM(ctx, v)
	require.NoError(t, err)
	polls := 0
	for _, c := range r.a.Calls() {
		if strings.HasSuffix(c.Path, "/get/fake/status") {
			polls++
		}
	}
	assert.GreaterOrEqual(t, polls, 3, "disk, NIC and VM creations poll")
	assert.True(t, slices.ContainsFunc(r.a.Calls(), func(c azuretest.Call) bool {
		return c.API == "VirtualMachinesClient.BeginCreateOrUpdate" && strings.HasSuffix(c.Path, "/get/fake/status")
	}))
}

// A restart is a new boot of the guest: its next scripted boot follows.
// Only a running VM restarts.
func TestRestartVM(t *testing.T) {
	ctx := context.Background()
	r := newComputeRig(t)
	// Boot 1 runs until it is restarted; boot 2 shuts down after 5 ms.
	r.a.SetGuest("vm-restart", azuretest.Guest{Boots: []time.Duration{0, 5 * time.Millisecond}})
	id, err := r.m.CreateVM(ctx, r.vm(t, "vm-restart"))
	require.NoError(t, err)
	require.NoError(t, r.m.RestartVM(ctx, id))
	assert.Equal(t, 1, countCalls(r.a, "VirtualMachinesClient.BeginRestart")-1, "the restart polls once")
	waitFor(t, r.m, id, machineimage.Stopped)
	d, err := r.m.Diagnostics(ctx, id)
	require.NoError(t, err)
	assert.Contains(t, string(d.Serial), "boot 2: the guest shut down")

	err = r.m.RestartVM(ctx, id)
	require.Error(t, err, "a stopped VM does not restart")
	assert.False(t, machineimage.IsRetryable(err), "%v", err)
	assert.Contains(t, err.Error(), "azure: restart VM "+cgroup+"/vm-restart: ")
	assert.ErrorContains(t, r.m.RestartVM(ctx, azuretest.ResourceID(cgroup, "Microsoft.Compute", "disks", "d")), "is not a VM")
}

// OperationNotAllowed is retryable only when Azure's message is about
// quota (as it answers a VM creation beyond the vCPU quota); otherwise
// (generalize a running VM, start a generalized one) it is permanent.
func TestOperationNotAllowedIsRetryableOnlyForQuota(t *testing.T) {
	ctx := context.Background()
	r := newComputeRig(t)
	quota := "Operation could not be completed as it results in exceeding approved standardDSv2Family Cores quota. " +
		"Additional details - Deployment Model: Resource Manager, Location: centralus, Current Limit: 10, Current Usage: 8, Additional Required: 4, (Minimum) New Limit Required: 12."
	r.a.Inject(azuretest.Fault{API: "VirtualMachinesClient.BeginCreateOrUpdate", Status: http.StatusConflict, Code: "OperationNotAllowed", Message: quota, Times: 1})
	v := r.vm(t, "vm-allowed")
	_, err := r.m.CreateVM(ctx, v)
	require.Error(t, err)
	_, code := responseError(t, err)
	assert.Equal(t, "OperationNotAllowed", code)
	assert.True(t, machineimage.IsRetryable(err), "quota: %v", err)

	r.a.Inject(azuretest.Fault{API: "VirtualMachinesClient.BeginCreateOrUpdate", Status: http.StatusConflict, Code: "OperationNotAllowed",
		Message: "The requested operation is not allowed on this VM.", Times: 1})
	_, err = r.m.CreateVM(ctx, v)
	require.Error(t, err)
	assert.False(t, machineimage.IsRetryable(err), "not quota: %v", err)

	id, err := r.m.CreateVM(ctx, v)
	require.NoError(t, err)
	err = r.m.Generalize(ctx, id) // running
	_, code = responseError(t, err)
	assert.Equal(t, "OperationNotAllowed", code)
	assert.False(t, machineimage.IsRetryable(err), "generalize while running: %v", err)
}

// A create that Azure accepted but that failed while polling, or whose
// answer does not refuse it, returns the ID with the error, so that the
// pipeline undoes what may exist; a refused one returns none.
func TestFailedCreatesReturnWhatMayExist(t *testing.T) {
	ctx := context.Background()
	r := newComputeRig(t)
	v := r.vm(t, "vm-maybe")
	want := azuretest.ResourceID(cgroup, "Microsoft.Compute", "virtualMachines", "vm-maybe")

	// Refused: nothing.
	r.a.Inject(azuretest.Fault{API: "VirtualMachinesClient.BeginCreateOrUpdate", Status: http.StatusBadRequest, Code: "InvalidParameter", Times: 1})
	id, err := r.m.CreateVM(ctx, v)
	require.Error(t, err)
	assert.Empty(t, id)

	// A server error on the request: it may have been created.
	r.a.Inject(azuretest.Fault{API: "VirtualMachinesClient.BeginCreateOrUpdate", Status: http.StatusInternalServerError, Code: "InternalServerError", Times: 1})
	id, err = r.m.CreateVM(ctx, v)
	require.Error(t, err)
	assert.Equal(t, want, id)

	// Accepted, then a fault on the poll: it exists.
	n := len(r.a.Calls())
	r.a.Inject(azuretest.Fault{N: n + 2, Status: http.StatusInternalServerError, Code: "InternalServerError"})
	id, err = r.m.CreateVM(ctx, v)
	require.Error(t, err)
	assert.Equal(t, want, id)
	state, err := r.m.PowerState(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, machineimage.Running, state)
	require.NoError(t, r.m.Delete(ctx, id))

	// A VM that fails to provision exists, Failed.
	r.a.SetGuest("vm-maybe", azuretest.Guest{FailProvisioning: true})
	id, err = r.m.CreateVM(ctx, v)
	require.Error(t, err)
	assert.Equal(t, want, id)
	require.NoError(t, r.m.Delete(ctx, id))

	// The same for disks, NICs, public IPs and images.
	n = len(r.a.Calls())
	r.a.Inject(azuretest.Fault{N: n + 2, Status: http.StatusInternalServerError, Code: "InternalServerError"})
	id, err = r.m.CreateDisk(ctx, machineimage.Disk{Resource: res("disk-maybe"), SizeGiB: 8})
	require.Error(t, err)
	assert.Equal(t, azuretest.ResourceID(cgroup, "Microsoft.Compute", "disks", "disk-maybe"), id)
	n = len(r.a.Calls())
	r.a.Inject(azuretest.Fault{N: n + 2, Status: http.StatusInternalServerError, Code: "InternalServerError"})
	id, err = r.m.CreateNIC(ctx, res("nic-maybe"), r.subnetID, "")
	require.Error(t, err)
	assert.Equal(t, azuretest.NetworkID(cgroup, "networkInterfaces", "nic-maybe"), id)
	n = len(r.a.Calls())
	r.a.Inject(azuretest.Fault{N: n + 2, Status: http.StatusInternalServerError, Code: "InternalServerError"})
	id, err = r.m.CreatePublicIP(ctx, res("ip-maybe"))
	require.Error(t, err)
	assert.Equal(t, azuretest.NetworkID(cgroup, "publicIPAddresses", "ip-maybe"), id)
	_, err = r.m.CreateImage(ctx, machineimage.Image{Resource: res("img-maybe"), SourceVMID: want})
	require.Error(t, err, "no such VM: refused")
	_, code := responseError(t, err)
	assert.Equal(t, "NotFound", code)
}

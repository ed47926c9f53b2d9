package azure_test

import (
	"context"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/azure/azuretest"
	"github.com/cib-project/cib/internal/machineimage"
)

// CreateVM from a managed image (cib verify): the image is referenced by
// ID, the VM is provisioned with the password (never answered, never in
// an error), its OS disk is named after it and goes with it.
func TestCreateVMFromImageID(t *testing.T) {
	ctx := context.Background()
	r := newComputeRig(t)
	imageID, err := r.a.Put(armcompute.Image{
		ID: to.Ptr(azuretest.ResourceID(cgroup, "Microsoft.Compute", "images", "win-abc1234")), Name: to.Ptr("win-abc1234"),
		Type: to.Ptr("Microsoft.Compute/images"), Location: to.Ptr(cregion),
		Properties: &armcompute.ImageProperties{StorageProfile: &armcompute.ImageStorageProfile{OSDisk: &armcompute.ImageOSDisk{
			OSType: to.Ptr(armcompute.OperatingSystemTypesWindows), OSState: to.Ptr(armcompute.OperatingSystemStateTypesGeneralized),
		}}},
	})
	require.NoError(t, err)
	before := r.a.IDs()
	const secret = "Sup3r-Secret-Verify!"
	nic, err := r.m.CreateNIC(ctx, res("nic-vfy"), r.subnetID, "")
	require.NoError(t, err)
	vm := machineimage.VM{Resource: res("vfy-1"), Size: "Standard_DS2_v2", NICID: nic, ImageID: imageID, AdminPass: secret, OSDiskSKU: "StandardSSD_LRS"}
	id, err := r.m.CreateVM(ctx, vm)
	require.NoError(t, err)
	got, err := r.compute.NewVirtualMachinesClient().Get(ctx, cgroup, "vfy-1", nil)
	require.NoError(t, err)
	sp := got.Properties.StorageProfile
	assert.Equal(t, imageID, *sp.ImageReference.ID)
	assert.Nil(t, sp.ImageReference.Publisher)
	assert.Equal(t, "vfy-1-osdisk", *sp.OSDisk.Name)
	assert.Equal(t, armcompute.DiskDeleteOptionTypesDelete, *sp.OSDisk.DeleteOption)
	assert.Equal(t, "cibadmin", *got.Properties.OSProfile.AdminUsername)
	assert.Nil(t, got.Properties.OSProfile.AdminPassword, "Azure never answers the password")
	disk, err := r.compute.NewDisksClient().Get(ctx, cgroup, "vfy-1-osdisk", nil)
	require.NoError(t, err)
	assert.Equal(t, armcompute.DiskStorageAccountTypesStandardSSDLRS, *disk.SKU.Name)

	require.NoError(t, r.m.Delete(ctx, id))
	require.NoError(t, r.m.Delete(ctx, nic))
	assert.Empty(t, r.a.Since(before), "the OS disk goes with the VM")

	// Refusals: Azure's (a missing image) and CreateVM's own; none shows
	// the password.
	nic, err = r.m.CreateNIC(ctx, res("nic-vfy"), r.subnetID, "")
	require.NoError(t, err)
	vm.NICID, vm.ImageID = nic, imageID+"-gone"
	_, err = r.m.CreateVM(ctx, vm)
	require.Error(t, err)
	status, code := responseError(t, err)
	assert.Equal(t, 404, status)
	assert.Equal(t, "NotFound", code)
	assert.NotContains(t, err.Error(), secret)
	vm.ImageID = imageID
	vm.Source = &machineimage.Marketplace{Publisher: "p", Offer: "o", SKU: "s"}
	_, err = r.m.CreateVM(ctx, vm)
	assert.ErrorContains(t, err, "more than one of")
	vm.Source, vm.AdminPass = nil, ""
	_, err = r.m.CreateVM(ctx, vm)
	assert.ErrorContains(t, err, "an image needs an administrator password")
	require.NoError(t, r.m.Delete(ctx, nic))
	assert.Empty(t, r.a.Since(before))
}

package azuretest_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v7"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/azure/azuretest"
)

// imageRig is a group in centralus with a subnet, a managed image there
// and one in eastus, a specialized image, and gallery image versions
// replicated to centralus and eastus, or to eastus only.
type imageRig struct {
	a        *azuretest.Azure
	cf       *armcompute.ClientFactory
	nics     *armnetwork.InterfacesClient
	image    string // managed, centralus, 64 GiB
	eastOnly string // managed, eastus
	special  string // managed, specialized
	version  string // gallery version in centralus and eastus
	eastVer  string // gallery version in eastus only
}

func newImageRig(t *testing.T) *imageRig {
	t.Helper()
	ctx := context.Background()
	a := azuretest.New()
	t.Cleanup(a.Close)
	a.OfferSizes("centralus", azuretest.StandardSizes...)
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

	r := &imageRig{a: a, cf: computeClients(t, a), nics: nf.NewInterfacesClient()}
	image := func(name, region string, state armcompute.OperatingSystemStateTypes) string {
		id, err := a.Put(armcompute.Image{
			ID: to.Ptr(azuretest.ResourceID(crg, "Microsoft.Compute", "images", name)), Name: to.Ptr(name),
			Type: to.Ptr("Microsoft.Compute/images"), Location: to.Ptr(region),
			Properties: &armcompute.ImageProperties{StorageProfile: &armcompute.ImageStorageProfile{OSDisk: &armcompute.ImageOSDisk{
				OSType: to.Ptr(armcompute.OperatingSystemTypesWindows), OSState: to.Ptr(state), DiskSizeGB: to.Ptr[int32](64),
			}}},
		})
		require.NoError(t, err)
		return id
	}
	r.image = image("img", "centralus", armcompute.OperatingSystemStateTypesGeneralized)
	r.eastOnly = image("img-east", "eastus", armcompute.OperatingSystemStateTypesGeneralized)
	r.special = image("img-special", "centralus", armcompute.OperatingSystemStateTypesSpecialized)
	def := a.AddGalleryImage(crg, "gal", "def", "centralus", "V1")
	version := func(name string, regions ...string) string {
		var targets []*armcompute.TargetRegion
		for _, reg := range regions {
			targets = append(targets, &armcompute.TargetRegion{Name: to.Ptr(reg), RegionalReplicaCount: to.Ptr[int32](1)})
		}
		id, err := a.Put(armcompute.GalleryImageVersion{
			ID: to.Ptr(def + "/versions/" + name), Name: to.Ptr(name), Type: to.Ptr("Microsoft.Compute/galleries/images/versions"),
			Location: to.Ptr(regions[0]),
			Properties: &armcompute.GalleryImageVersionProperties{
				PublishingProfile: &armcompute.GalleryImageVersionPublishingProfile{TargetRegions: targets},
				StorageProfile:    &armcompute.GalleryImageVersionStorageProfile{OSDiskImage: &armcompute.GalleryOSDiskImage{SizeInGB: to.Ptr[int32](80)}},
			},
		})
		require.NoError(t, err)
		return id
	}
	r.version = version("1.0.0", "centralus", "eastus")
	r.eastVer = version("1.0.1", "eastus")
	return r
}

func (r *imageRig) nic(t *testing.T, name string) string {
	t.Helper()
	p, err := r.nics.BeginCreateOrUpdate(context.Background(), crg, name, armnetwork.Interface{
		Location: to.Ptr("centralus"),
		Properties: &armnetwork.InterfacePropertiesFormat{IPConfigurations: []*armnetwork.InterfaceIPConfiguration{{
			Name: to.Ptr("ip"), Properties: &armnetwork.InterfaceIPConfigurationPropertiesFormat{Subnet: &armnetwork.Subnet{ID: to.Ptr(azuretest.SubnetID(crg, "vn", "sn"))}},
		}}},
	}, nil)
	require.NoError(t, err)
	res, err := p.PollUntilDone(context.Background(), &pollFast)
	require.NoError(t, err)
	return *res.ID
}

// fromImage is a VM definition in centralus made from imageID with an
// administrator password, and its own NIC.
func (r *imageRig) fromImage(t *testing.T, name, imageID, password string) armcompute.VirtualMachine {
	return armcompute.VirtualMachine{
		Location: to.Ptr("centralus"),
		Properties: &armcompute.VirtualMachineProperties{
			HardwareProfile: &armcompute.HardwareProfile{VMSize: to.Ptr(armcompute.VirtualMachineSizeTypesStandardDS2V2)},
			StorageProfile: &armcompute.StorageProfile{
				ImageReference: &armcompute.ImageReference{ID: to.Ptr(imageID)},
				OSDisk: &armcompute.OSDisk{
					Name:         to.Ptr(name + "-osdisk"),
					CreateOption: to.Ptr(armcompute.DiskCreateOptionTypesFromImage), OSType: to.Ptr(armcompute.OperatingSystemTypesWindows),
					DeleteOption: to.Ptr(armcompute.DiskDeleteOptionTypesDelete),
				},
			},
			OSProfile:          &armcompute.OSProfile{ComputerName: to.Ptr(name), AdminUsername: to.Ptr("cibadmin"), AdminPassword: to.Ptr(password)},
			NetworkProfile:     &armcompute.NetworkProfile{NetworkInterfaces: []*armcompute.NetworkInterfaceReference{{ID: to.Ptr(r.nic(t, "nic-"+name))}}},
			DiagnosticsProfile: &armcompute.DiagnosticsProfile{BootDiagnostics: &armcompute.BootDiagnostics{Enabled: to.Ptr(true)}},
		},
	}
}

func (r *imageRig) create(name string, vm armcompute.VirtualMachine) (armcompute.VirtualMachine, error) {
	ctx := context.Background()
	p, err := r.cf.NewVirtualMachinesClient().BeginCreateOrUpdate(ctx, crg, name, vm, nil)
	if err != nil {
		return armcompute.VirtualMachine{}, err
	}
	res, err := p.PollUntilDone(ctx, &pollFast)
	return res.VirtualMachine, err
}

const imagePass = "Verify-Pass-123456"

// A VM is created from a managed image or a gallery image version in its
// region: its OS disk is made from the image (its size), the password is
// never answered, and the disk goes with the VM.
func TestVMFromImage(t *testing.T) {
	r := newImageRig(t)
	ctx := context.Background()
	for _, c := range []struct {
		name, image string
		size        int32
	}{{"vm-img", r.image, 64}, {"vm-ver", r.version, 80}} {
		t.Run(c.name, func(t *testing.T) {
			before := r.a.IDs()
			vm, err := r.create(c.name, r.fromImage(t, c.name, c.image, imagePass))
			require.NoError(t, err)
			diskID := azuretest.ResourceID(crg, "Microsoft.Compute", "disks", c.name+"-osdisk")
			assert.True(t, strings.EqualFold(diskID, *vm.Properties.StorageProfile.OSDisk.ManagedDisk.ID))
			assert.Nil(t, vm.Properties.OSProfile.AdminPassword, "Azure never answers the password")
			disk, err := r.cf.NewDisksClient().Get(ctx, crg, c.name+"-osdisk", nil)
			require.NoError(t, err)
			assert.Equal(t, c.size, *disk.Properties.DiskSizeGB)
			assert.Equal(t, armcompute.DiskStateAttached, *disk.Properties.DiskState)
			iv, err := r.cf.NewVirtualMachinesClient().InstanceView(ctx, crg, c.name, nil)
			require.NoError(t, err)
			assert.Equal(t, "PowerState/running", *iv.Statuses[len(iv.Statuses)-1].Code)

			p, err := r.cf.NewVirtualMachinesClient().BeginDelete(ctx, crg, c.name, nil)
			require.NoError(t, err)
			_, err = p.PollUntilDone(ctx, &pollFast)
			require.NoError(t, err)
			assert.Equal(t, []string{azuretest.NetworkID(crg, "networkInterfaces", "nic-"+c.name)}, r.a.Since(before),
				"the OS disk goes with the VM (delete option Delete); the NIC stays")
		})
	}
}

// Azure's refusals: an image that is not there, or not in (replicated to)
// the VM's region, a specialized image with an OS profile, a bad
// password, an image reference that names both kinds.
func TestVMFromImageRefusals(t *testing.T) {
	r := newImageRig(t)
	missing := azuretest.ResourceID(crg, "Microsoft.Compute", "images", "nope")
	for i, c := range []struct {
		name, image, password string
		edit                  func(*armcompute.VirtualMachine)
		status                int
		code, msg             string
	}{
		{name: "missing", image: missing, status: http.StatusNotFound, code: "NotFound", msg: "cannot be found in 'centralus' region"},
		{name: "other-region", image: r.eastOnly, status: http.StatusNotFound, code: "NotFound", msg: "cannot be found in 'centralus' region"},
		{name: "not-replicated", image: r.eastVer, status: http.StatusNotFound, code: "GalleryImageNotFound", msg: "is not available in centralus region"},
		{name: "missing-version", image: r.version + "9", status: http.StatusNotFound, code: "GalleryImageNotFound"},
		{name: "specialized", image: r.special, status: http.StatusBadRequest, code: "InvalidParameter", msg: "'osProfile' is not allowed"},
		{name: "short-pass", image: r.image, password: "Short-1", status: http.StatusBadRequest, code: "InvalidParameter", msg: "password"},
		{name: "no-profile", image: r.image, edit: func(vm *armcompute.VirtualMachine) { vm.Properties.OSProfile = nil },
			status: http.StatusBadRequest, code: "InvalidParameter", msg: "adminUsername"},
		{name: "both", image: r.image, edit: func(vm *armcompute.VirtualMachine) {
			vm.Properties.StorageProfile.ImageReference.Publisher = to.Ptr("MicrosoftWindowsDesktop")
		}, status: http.StatusBadRequest, code: "InvalidParameter", msg: "not both"},
		{name: "not-an-image", image: azuretest.ResourceID(crg, "Microsoft.Compute", "disks", "d"), status: http.StatusBadRequest, code: "InvalidParameter"},
	} {
		name := fmt.Sprintf("vm-%d", i)
		t.Run(c.name, func(t *testing.T) {
			before := r.a.IDs()
			pw := c.password
			if pw == "" {
				pw = imagePass
			}
			vm := r.fromImage(t, name, c.image, pw)
			if c.edit != nil {
				c.edit(&vm)
			}
			_, err := r.create(name, vm)
			require.Error(t, err)
			status, code := armCode(t, err)
			assert.Equal(t, c.status, status)
			assert.Equal(t, c.code, code)
			assert.Contains(t, err.Error(), c.msg)
			assert.NotContains(t, err.Error(), pw)
			left := r.a.Since(before)
			require.Len(t, left, 1, "a refused VM leaves only the NIC the test made: %v", left)
			assert.Contains(t, left[0], "/networkInterfaces/")
		})
	}
}

// SetImageGuest scripts every VM made from an image, unless SetGuest
// names the VM.
func TestSetImageGuest(t *testing.T) {
	r := newImageRig(t)
	ctx := context.Background()
	r.a.SetImageGuest(r.image, azuretest.Guest{FailProvisioning: true})
	r.a.SetImageGuest(r.version, azuretest.Guest{Boots: []time.Duration{time.Millisecond}})
	r.a.SetGuest("vm-named", azuretest.Guest{})

	_, err := r.create("vm-fail", r.fromImage(t, "vm-fail", r.image, imagePass))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "VMStartTimedOut")

	_, err = r.create("vm-named", r.fromImage(t, "vm-named", r.image, imagePass))
	require.NoError(t, err, "SetGuest wins over SetImageGuest")

	_, err = r.create("vm-stops", r.fromImage(t, "vm-stops", r.version, imagePass))
	require.NoError(t, err)
	time.Sleep(5 * time.Millisecond)
	iv, err := r.cf.NewVirtualMachinesClient().InstanceView(ctx, crg, "vm-stops", nil)
	require.NoError(t, err)
	assert.Equal(t, "PowerState/stopped", *iv.Statuses[len(iv.Statuses)-1].Code)

	// A second VM may not take an OS disk name in use.
	_, err = r.create("vm-dup", func() armcompute.VirtualMachine {
		vm := r.fromImage(t, "vm-dup", r.image, imagePass)
		vm.Properties.StorageProfile.OSDisk.Name = to.Ptr("vm-named-osdisk")
		return vm
	}())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "already exists")
}

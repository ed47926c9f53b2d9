package azure_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cib-project/cib/internal/azure"
	"github.com/cib-project/cib/internal/azure/azuretest"
	"github.com/cib-project/cib/internal/machineimage"
	"github.com/cib-project/cib/internal/purge"
)

func TestInventory(t *testing.T) {
	ctx := context.Background()
	r := newComputeRig(t)
	old := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

	// A running VM and a deallocated one, each with its NIC and OS disk.
	running, err := r.m.CreateVM(ctx, r.vm(t, "vm-run"))
	require.NoError(t, err)
	stopped, err := r.m.CreateVM(ctx, r.vm(t, "vm-off"))
	require.NoError(t, err)
	require.NoError(t, r.m.Deallocate(ctx, stopped))
	// A NIC of no VM that holds a public IP.
	pip, err := r.m.CreatePublicIP(ctx, res("pip-free"))
	require.NoError(t, err)
	nic, err := r.m.CreateNIC(ctx, res("nic-free"), r.subnetID, pip)
	require.NoError(t, err)
	// An upload disk left long ago, five images (three pages) and three
	// gallery image versions (two pages).
	_, err = r.a.Put(armcompute.Disk{
		ID: to.Ptr(azuretest.ResourceID(cgroup, "Microsoft.Compute", "disks", "upload")), Name: to.Ptr("upload"),
		Type: to.Ptr("Microsoft.Compute/disks"), Location: to.Ptr(cregion), Tags: map[string]*string{"cib:managed": to.Ptr("true")},
		Properties: &armcompute.DiskProperties{DiskState: to.Ptr(armcompute.DiskStateReadyToUpload), TimeCreated: to.Ptr(old)},
	})
	require.NoError(t, err)
	for i := range 5 {
		name := fmt.Sprintf("img-%d", i)
		img := armcompute.Image{
			ID: to.Ptr(azuretest.ResourceID(cgroup, "Microsoft.Compute", "images", name)), Name: to.Ptr(name),
			Type: to.Ptr("Microsoft.Compute/images"), Location: to.Ptr(cregion),
			Tags: map[string]*string{"cib:key": to.Ptr("win11"), azure.TagCommitTime: to.Ptr(old.Add(time.Duration(i) * time.Hour).Format(time.RFC3339))},
		}
		if i == 4 {
			img.SystemData = &armcompute.SystemData{CreatedAt: to.Ptr(old.Add(48 * time.Hour))}
		}
		_, err = r.a.Put(img)
		require.NoError(t, err)
	}
	def := r.a.AddGalleryImage(cgroup, "gallery", "win11", cregion, "V2")
	for i := range 3 {
		name := fmt.Sprintf("1.0.%d", i)
		_, err = r.a.Put(armcompute.GalleryImageVersion{
			ID: to.Ptr(def + "/versions/" + name), Name: to.Ptr(name), Type: to.Ptr("Microsoft.Compute/galleries/images/versions"),
			Location: to.Ptr(cregion), Tags: map[string]*string{"cib:key": to.Ptr("win11")},
			Properties: &armcompute.GalleryImageVersionProperties{PublishingProfile: &armcompute.GalleryImageVersionPublishingProfile{
				PublishedDate: to.Ptr(old.Add(time.Duration(i) * time.Minute))}},
		})
		require.NoError(t, err)
	}

	inv, err := r.m.Inventory(ctx, []string{cgroup, "rg-not-there"},
		azure.GalleryImage{Group: cgroup, Gallery: "gallery", Definition: "win11"},
		azure.GalleryImage{Group: cgroup, Gallery: "gallery", Definition: "gone"},
		azure.GalleryImage{Group: cgroup, Gallery: "nowhere", Definition: "win11"},
		azure.GalleryImage{Group: "rg-not-there", Gallery: "gallery", Definition: "win11"})
	require.NoError(t, err, "missing groups, galleries and definitions are skipped")

	byName := map[string]purge.Resource{}
	for _, res := range inv.Resources {
		assert.Equal(t, cgroup, res.Group)
		_, dup := byName[string(res.Kind)+"/"+res.Name]
		assert.False(t, dup, "listed twice: %s", res)
		byName[string(res.Kind)+"/"+res.Name] = res
	}
	var names []string
	for n := range byName {
		names = append(names, n)
	}
	assert.ElementsMatch(t, []string{
		"vm/vm-run", "vm/vm-off",
		"nic/nic-vm-run", "nic/nic-vm-off", "nic/nic-free",
		"publicip/pip-free",
		"disk/disk-vm-run", "disk/disk-vm-off", "disk/upload",
		"image/img-0", "image/img-1", "image/img-2", "image/img-3", "image/img-4",
		"imageversion/1.0.0", "imageversion/1.0.1", "imageversion/1.0.2",
	}, names)

	vm := byName["vm/vm-run"]
	assert.True(t, strings.EqualFold(running, vm.ID))
	assert.NotEqual(t, purge.PowerDeallocated, vm.PowerState)
	assert.NotEmpty(t, vm.PowerState)
	assert.WithinDuration(t, time.Now(), vm.Created, time.Minute)
	assert.Equal(t, "true", vm.Tags["cib:managed"])
	assert.Equal(t, purge.PowerDeallocated, byName["vm/vm-off"].PowerState)

	assert.True(t, strings.EqualFold(running, byName["nic/nic-vm-run"].AttachedVM))
	assert.True(t, strings.EqualFold(stopped, byName["nic/nic-vm-off"].AttachedVM))
	assert.Empty(t, byName["nic/nic-free"].AttachedVM)
	assert.Equal(t, vm.Created, byName["nic/nic-vm-run"].Created, "a NIC is at least as old as the VM that holds it")
	assert.True(t, byName["nic/nic-free"].Created.IsZero(), "a free NIC's age is unknown")
	assert.True(t, byName["publicip/pip-free"].Created.IsZero(), "so is its public IP's")
	assert.True(t, strings.EqualFold(nic, byName["publicip/pip-free"].AttachedNIC), "the NIC, not its IP configuration")
	assert.True(t, strings.EqualFold(pip, byName["publicip/pip-free"].ID))

	assert.True(t, strings.EqualFold(running, byName["disk/disk-vm-run"].AttachedVM))
	assert.Equal(t, purge.DiskAttached, byName["disk/disk-vm-run"].DiskState)
	assert.Equal(t, purge.DiskReadyToUpload, byName["disk/upload"].DiskState)
	assert.Empty(t, byName["disk/upload"].AttachedVM)
	assert.Equal(t, old, byName["disk/upload"].Created)

	assert.Equal(t, old.Add(time.Hour), byName["image/img-1"].Created, "from the commit-time tag")
	assert.Equal(t, old.Add(48*time.Hour), byName["image/img-4"].Created, "systemData wins over the tag")
	assert.Equal(t, "win11", purge.ImageKey(byName["image/img-1"]))
	assert.Equal(t, old.Add(2*time.Minute), byName["imageversion/1.0.2"].Created)
	assert.True(t, strings.HasSuffix(byName["imageversion/1.0.2"].ID, "/galleries/gallery/images/win11/versions/1.0.2"))

	// Every list was read to its last page.
	pages := map[string]int{}
	for _, c := range r.a.Calls() {
		pages[c.API]++
	}
	assert.Equal(t, 3, pages["ImagesClient.NewListByResourceGroupPager"], "three pages of images; the missing group is skipped at its first list")
	assert.GreaterOrEqual(t, pages["GalleryImageVersionsClient.NewListByGalleryImagePager"], 2)

	// The galleries of a group are found without being named: the same
	// versions, once.
	found, err := r.m.Inventory(ctx, []string{cgroup})
	require.NoError(t, err)
	var versions []string
	for _, res := range found.Resources {
		if res.Kind == purge.KindImageVersion {
			versions = append(versions, res.Name)
		}
	}
	assert.Equal(t, []string{"1.0.0", "1.0.1", "1.0.2"}, versions)
}

func TestInventoryFailsOnAnErrorThatIsNotNotFound(t *testing.T) {
	m, a := newMachines(t)
	ctx := context.Background()
	_, err := m.EnsureNetwork(ctx, machineimage.Network{
		Group: "rg-x", Region: cregion, NSG: "nsg", VNet: "vn", Prefix: "10.2.0.0/16", Subnet: "sn", SubnetPrefix: "10.2.0.0/24",
	})
	require.NoError(t, err)
	a.Inject(azuretest.Fault{API: "DisksClient.NewListByResourceGroupPager", Status: http.StatusForbidden, Code: "AuthorizationFailed"})
	_, err = m.Inventory(ctx, []string{"rg-x"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "disks of rg-x")
	assert.False(t, machineimage.IsRetryable(err))

	a.ClearFaults()
	a.Inject(azuretest.Fault{API: "PublicIPAddressesClient.NewListPager", Status: http.StatusTooManyRequests, Code: "TooManyRequests"})
	_, err = m.Inventory(ctx, []string{"rg-x"})
	require.Error(t, err)
	assert.True(t, machineimage.IsRetryable(err), "throttling is retryable")

	a.ClearFaults()
	inv, err := m.Inventory(ctx, []string{"rg-x"})
	require.NoError(t, err)
	assert.Empty(t, inv.Resources, "a network alone is nothing purge decides about")
}

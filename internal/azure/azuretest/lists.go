package azuretest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"

	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v7"
)

func init() { installers = append(installers, (*Azure).installLists) }

// ListPageSize is how many resources a page of a list holds: small, so
// that a list of a few resources already spans pages and a client that
// reads only the first page is caught.
const ListPageSize = 2

// pages splits values into pages of ListPageSize; an empty list is one
// empty page, as ARM answers it.
func pages[T any](values []T) [][]T {
	if len(values) == 0 {
		return [][]T{{}}
	}
	var out [][]T
	for len(values) > 0 {
		n := min(ListPageSize, len(values))
		out = append(out, values[:n:n])
		values = values[n:]
	}
	return out
}

// stored returns the stored values of type T whose IDs start with prefix,
// copied, in ID order.
func stored[T any](a *Azure, prefix string) []*T {
	var out []*T
	for _, v := range a.children(prefix) {
		if t, ok := v.(T); ok {
			c := clone(t)
			out = append(out, &c)
		}
	}
	return out
}

// installLists models the list operations purge's inventory reads, each by
// resource group (or by gallery, or by gallery image), paged: VMs, NICs,
// public IPs, disks, managed images, galleries, gallery image definitions
// and gallery image versions. A list in a group that does not exist
// answers 404 ResourceGroupNotFound, as ARM does. Only operations no other
// part of the model set are filled in.
func (a *Azure) installLists() {
	groupErr := func(group string) error { return a.groupMissing(group) }
	compute := func(group, kind string) string {
		return ResourceID(group, "Microsoft.Compute", kind, "")
	}

	vms := &a.compute.VirtualMachinesServer
	if vms.NewListPager == nil {
		vms.NewListPager = func(group string, o *armcompute.VirtualMachinesClientListOptions) (resp azfake.PagerResponder[armcompute.VirtualMachinesClientListResponse]) {
			if err := groupErr(group); err != nil {
				resp.AddError(err)
				return
			}
			if o != nil && (o.Expand != nil || o.Filter != nil) {
				resp.AddError(notModelled("VirtualMachinesClient.NewListPager with $expand or $filter"))
				return
			}
			for _, p := range pages(stored[armcompute.VirtualMachine](a, compute(group, "virtualMachines"))) {
				resp.AddPage(http.StatusOK, armcompute.VirtualMachinesClientListResponse{VirtualMachineListResult: armcompute.VirtualMachineListResult{Value: p}}, nil)
			}
			return
		}
	}

	disks := &a.compute.DisksServer
	if disks.NewListByResourceGroupPager == nil {
		disks.NewListByResourceGroupPager = func(group string, _ *armcompute.DisksClientListByResourceGroupOptions) (resp azfake.PagerResponder[armcompute.DisksClientListByResourceGroupResponse]) {
			if err := groupErr(group); err != nil {
				resp.AddError(err)
				return
			}
			for _, p := range pages(stored[armcompute.Disk](a, compute(group, "disks"))) {
				resp.AddPage(http.StatusOK, armcompute.DisksClientListByResourceGroupResponse{DiskList: armcompute.DiskList{Value: p}}, nil)
			}
			return
		}
	}

	images := &a.compute.ImagesServer
	if images.NewListByResourceGroupPager == nil {
		images.NewListByResourceGroupPager = func(group string, _ *armcompute.ImagesClientListByResourceGroupOptions) (resp azfake.PagerResponder[armcompute.ImagesClientListByResourceGroupResponse]) {
			if err := groupErr(group); err != nil {
				resp.AddError(err)
				return
			}
			for _, p := range pages(stored[armcompute.Image](a, compute(group, "images"))) {
				resp.AddPage(http.StatusOK, armcompute.ImagesClientListByResourceGroupResponse{ImageListResult: armcompute.ImageListResult{Value: p}}, nil)
			}
			return
		}
	}

	galleries := &a.compute.GalleriesServer
	if galleries.NewListByResourceGroupPager == nil {
		galleries.NewListByResourceGroupPager = func(group string, _ *armcompute.GalleriesClientListByResourceGroupOptions) (resp azfake.PagerResponder[armcompute.GalleriesClientListByResourceGroupResponse]) {
			if err := groupErr(group); err != nil {
				resp.AddError(err)
				return
			}
			for _, p := range pages(stored[armcompute.Gallery](a, compute(group, "galleries"))) {
				resp.AddPage(http.StatusOK, armcompute.GalleriesClientListByResourceGroupResponse{GalleryList: armcompute.GalleryList{Value: p}}, nil)
			}
			return
		}
	}

	definitions := &a.compute.GalleryImagesServer
	if definitions.NewListByGalleryPager == nil {
		definitions.NewListByGalleryPager = func(group, gallery string, _ *armcompute.GalleryImagesClientListByGalleryOptions) (resp azfake.PagerResponder[armcompute.GalleryImagesClientListByGalleryResponse]) {
			if err := a.parentMissing(group, ResourceID(group, "Microsoft.Compute", "galleries", gallery), gallery); err != nil {
				resp.AddError(err)
				return
			}
			prefix := ResourceID(group, "Microsoft.Compute", "galleries", gallery) + "/images/"
			for _, p := range pages(stored[armcompute.GalleryImage](a, prefix)) {
				resp.AddPage(http.StatusOK, armcompute.GalleryImagesClientListByGalleryResponse{GalleryImageList: armcompute.GalleryImageList{Value: p}}, nil)
			}
			return
		}
	}

	versions := &a.compute.GalleryImageVersionsServer
	if versions.NewListByGalleryImagePager == nil {
		versions.NewListByGalleryImagePager = func(group, gallery, image string, _ *armcompute.GalleryImageVersionsClientListByGalleryImageOptions) (resp azfake.PagerResponder[armcompute.GalleryImageVersionsClientListByGalleryImageResponse]) {
			def := ResourceID(group, "Microsoft.Compute", "galleries", gallery) + "/images/" + image
			if err := a.parentMissing(group, def, gallery+"/"+image); err != nil {
				resp.AddError(err)
				return
			}
			vs := stored[armcompute.GalleryImageVersion](a, def+"/versions/")
			for _, v := range vs {
				if v.Properties != nil {
					v.Properties.ReplicationStatus = nil // only a get with $expand shows it
				}
			}
			for _, p := range pages(vs) {
				resp.AddPage(http.StatusOK, armcompute.GalleryImageVersionsClientListByGalleryImageResponse{GalleryImageVersionList: armcompute.GalleryImageVersionList{Value: p}}, nil)
			}
			return
		}
	}

	nics := &a.network.InterfacesServer
	if nics.NewListPager == nil {
		nics.NewListPager = func(group string, _ *armnetwork.InterfacesClientListOptions) (resp azfake.PagerResponder[armnetwork.InterfacesClientListResponse]) {
			networkMu.Lock()
			defer networkMu.Unlock()
			if err := groupErr(group); err != nil {
				resp.AddError(err)
				return
			}
			var list []*armnetwork.Interface
			for _, v := range a.children(NetworkID(group, nicKind, "")) {
				if nic, ok := v.(armnetwork.Interface); ok {
					shown, _ := a.getNIC(group, netDeref(nic.Name))
					list = append(list, &shown)
				}
			}
			for _, p := range pages(list) {
				resp.AddPage(http.StatusOK, armnetwork.InterfacesClientListResponse{InterfaceListResult: armnetwork.InterfaceListResult{Value: p}}, nil)
			}
			return
		}
	}

	pips := &a.network.PublicIPAddressesServer
	if pips.NewListPager == nil {
		pips.NewListPager = func(group string, _ *armnetwork.PublicIPAddressesClientListOptions) (resp azfake.PagerResponder[armnetwork.PublicIPAddressesClientListResponse]) {
			networkMu.Lock()
			defer networkMu.Unlock()
			if err := groupErr(group); err != nil {
				resp.AddError(err)
				return
			}
			var list []*armnetwork.PublicIPAddress
			for _, v := range a.children(NetworkID(group, pipKind, "")) {
				if pip, ok := v.(armnetwork.PublicIPAddress); ok {
					shown, _ := a.getPIP(group, netDeref(pip.Name))
					list = append(list, &shown)
				}
			}
			for _, p := range pages(list) {
				resp.AddPage(http.StatusOK, armnetwork.PublicIPAddressesClientListResponse{PublicIPAddressListResult: armnetwork.PublicIPAddressListResult{Value: p}}, nil)
			}
			return
		}
	}
}

// parentMissing is the 404 of a list under a parent resource (a gallery,
// a gallery image definition) that is not there, or of its group.
func (a *Azure) parentMissing(group, parentID, name string) error {
	if err := a.groupMissing(group); err != nil {
		return err
	}
	if _, ok := a.get(parentID); !ok {
		return armError(http.StatusNotFound, "ParentResourceNotFound", "Can not perform requested operation on nested resource. Parent resource '%s' not found.", name)
	}
	return nil
}

// Put stores an SDK model value (armcompute.Disk, armcompute.Image,
// armcompute.GalleryImageVersion, armnetwork.Interface,
// armnetwork.PublicIPAddress, ...) as it is, under the ID it carries, in
// an existing resource group: tests use it to lay out an inventory with
// the creation times, states and tags Azure would show for resources made
// long ago or by someone else. VMs are not stored this way (their power
// state lives in the model: create them through the SDK).
func (a *Azure) Put(value any) (string, error) {
	if _, ok := value.(armcompute.VirtualMachine); ok {
		return "", fmt.Errorf("azuretest: Put cannot store a VM: create it through the SDK")
	}
	b, err := json.Marshal(value)
	if err != nil {
		return "", err
	}
	var head struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(b, &head); err != nil || head.ID == "" {
		return "", fmt.Errorf("azuretest: Put: the value has no id")
	}
	rest, ok := strings.CutPrefix(strings.ToLower(head.ID), strings.ToLower(GroupID("")))
	if !ok {
		return "", fmt.Errorf("azuretest: Put: %s is not a resource of subscription %s", head.ID, Subscription)
	}
	group, _, _ := strings.Cut(rest, "/")
	if _, ok := a.get(GroupID(group)); !ok {
		return "", fmt.Errorf("azuretest: Put: resource group %s does not exist", group)
	}
	copied := reflect.New(reflect.TypeOf(value))
	if err := json.Unmarshal(b, copied.Interface()); err != nil {
		return "", err
	}
	a.put(head.ID, copied.Elem().Interface())
	return head.ID, nil
}

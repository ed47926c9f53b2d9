package azure

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"

	"github.com/cib-project/cib/internal/purge"
)

// GalleryImage names a Compute Gallery image definition whose versions
// Inventory lists.
type GalleryImage struct {
	Group, Gallery, Definition string
}

func (g GalleryImage) String() string { return g.Group + "/" + g.Gallery + "/" + g.Definition }

// TagCommitTime is the image tag that carries the commit time of the
// build (machineimage.ImageTags); Inventory takes it as the creation time
// of an image whose creation time Azure does not show.
const TagCommitTime = "machineImageCommitTime"

// Inventory lists, in each of groups, what purge decides about: VMs (with
// the power state of their instance view), NICs (with the VM they are
// attached to), public IPs (with their address and the NIC that uses
// them), managed disks (with the VM that holds them and their state) and
// managed images; and the versions of the image definitions of the
// galleries in those groups, and of the definitions named (a gallery in
// another group). Each resource comes with its tags and its
// creation time: what Azure shows (TimeCreated of VMs and disks,
// PublishedDate of gallery image versions, systemData.createdAt where the
// API returns it), else the machineImageCommitTime tag of an image (the
// commit time precedes the creation, so it only ranks images). NICs and
// public IPs carry no creation time: one attached to a VM (or to a NIC)
// takes that one's, being at least as old; an unattached one has none,
// so only its cib:expires rule applies to it.
//
// A group (or a gallery, or a definition) that does not exist is skipped,
// not an error: there is nothing to purge in it. Every list is read to
// its last page.
func (m *Machines) Inventory(ctx context.Context, groups []string, definitions ...GalleryImage) (purge.Inventory, error) {
	var inv purge.Inventory
	add := func(r purge.Resource) { inv.Resources = append(inv.Resources, r) }
	for _, g := range groups {
		if err := m.inventoryGroup(ctx, g, add); err != nil {
			return purge.Inventory{}, err
		}
		found, err := m.galleryImagesIn(ctx, g)
		if err != nil {
			return purge.Inventory{}, err
		}
		for _, d := range found {
			if !slices.Contains(definitions, d) {
				definitions = append(definitions, d)
			}
		}
	}
	for _, d := range definitions {
		if err := m.inventoryVersions(ctx, d, add); err != nil {
			return purge.Inventory{}, err
		}
	}
	inheritCreation(inv.Resources)
	return inv, nil
}

// inheritCreation gives a NIC of unknown creation time that is attached
// to a VM the VM's creation time, and then a public IP of unknown
// creation time that a NIC uses the NIC's: a resource is attached only
// once it exists, so it is at least as old as what holds it (the time is
// a lower bound of its age, which is what the minimum age needs).
func inheritCreation(rs []purge.Resource) {
	created := map[string]time.Time{}
	for _, r := range rs {
		if r.Kind == purge.KindVM && !r.Created.IsZero() {
			created[strings.ToLower(r.ID)] = r.Created
		}
	}
	for _, step := range []struct {
		kind   purge.Kind
		holder func(purge.Resource) string
	}{
		{purge.KindNIC, func(r purge.Resource) string { return r.AttachedVM }},
		{purge.KindPublicIP, func(r purge.Resource) string { return r.AttachedNIC }},
	} {
		for i := range rs {
			r := &rs[i]
			if r.Kind != step.kind {
				continue
			}
			if t, ok := created[strings.ToLower(step.holder(*r))]; ok && r.Created.IsZero() {
				r.Created = t
			}
			if !r.Created.IsZero() {
				created[strings.ToLower(r.ID)] = r.Created
			}
		}
	}
}

// listErr is the error of a list: nil when what is listed is not there
// (a 404 on a group's list means the group is gone, and the group's
// other lists are skipped).
func listErr(what string, err error) error {
	if err == nil || notFound(err) {
		return nil
	}
	return classify(fmt.Errorf("azure: inventory: list %s: %w", what, err))
}

func (m *Machines) inventoryGroup(ctx context.Context, group string, add func(purge.Resource)) error {
	vms := m.vms.NewListPager(group, nil)
	for vms.More() {
		page, err := vms.NextPage(ctx)
		if err != nil {
			return listErr("VMs of "+group, err)
		}
		for _, vm := range page.Value {
			r := purge.Resource{ID: valueOf(vm.ID), Kind: purge.KindVM, Group: group, Name: valueOf(vm.Name), Tags: tagMap(vm.Tags)}
			if vm.Properties != nil {
				r.Created = timeOf(vm.Properties.TimeCreated)
			}
			iv, err := m.vms.InstanceView(ctx, group, r.Name, nil)
			switch {
			case notFound(err):
				continue // deleted since the list
			case err != nil:
				return classify(fmt.Errorf("azure: inventory: instance view of VM %s/%s: %w", group, r.Name, err))
			}
			for _, s := range iv.Statuses {
				if code := valueOf(s.Code); strings.HasPrefix(strings.ToLower(code), "powerstate/") {
					r.PowerState = code[len("powerstate/"):]
				}
			}
			add(r)
		}
	}

	nics := m.nics.NewListPager(group, nil)
	for nics.More() {
		page, err := nics.NextPage(ctx)
		if err != nil {
			return listErr("NICs of "+group, err)
		}
		for _, nic := range page.Value {
			r := purge.Resource{ID: valueOf(nic.ID), Kind: purge.KindNIC, Group: group, Name: valueOf(nic.Name), Tags: tagMap(nic.Tags)}
			if p := nic.Properties; p != nil && p.VirtualMachine != nil {
				r.AttachedVM = valueOf(p.VirtualMachine.ID)
			}
			add(r)
		}
	}

	ips := m.ips.NewListPager(group, nil)
	for ips.More() {
		page, err := ips.NextPage(ctx)
		if err != nil {
			return listErr("public IPs of "+group, err)
		}
		for _, ip := range page.Value {
			r := purge.Resource{ID: valueOf(ip.ID), Kind: purge.KindPublicIP, Group: group, Name: valueOf(ip.Name), Tags: tagMap(ip.Tags)}
			if p := ip.Properties; p != nil {
				r.Address = valueOf(p.IPAddress)
				if p.IPConfiguration != nil {
					r.AttachedNIC = nicOfIPConfig(valueOf(p.IPConfiguration.ID))
				}
			}
			add(r)
		}
	}

	disks := m.disks.NewListByResourceGroupPager(group, nil)
	for disks.More() {
		page, err := disks.NextPage(ctx)
		if err != nil {
			return listErr("disks of "+group, err)
		}
		for _, d := range page.Value {
			r := purge.Resource{ID: valueOf(d.ID), Kind: purge.KindDisk, Group: group, Name: valueOf(d.Name), Tags: tagMap(d.Tags),
				AttachedVM: valueOf(d.ManagedBy), Created: createdAt(d.SystemData)}
			if p := d.Properties; p != nil {
				if t := timeOf(p.TimeCreated); !t.IsZero() {
					r.Created = t
				}
				if p.DiskState != nil {
					r.DiskState = string(*p.DiskState)
				}
			}
			add(r)
		}
	}

	images := m.images.NewListByResourceGroupPager(group, nil)
	for images.More() {
		page, err := images.NextPage(ctx)
		if err != nil {
			return listErr("images of "+group, err)
		}
		for _, img := range page.Value {
			r := purge.Resource{ID: valueOf(img.ID), Kind: purge.KindImage, Group: group, Name: valueOf(img.Name), Tags: tagMap(img.Tags),
				Created: createdAt(img.SystemData)}
			if r.Created.IsZero() {
				r.Created, _ = time.Parse(time.RFC3339, r.Tags[TagCommitTime])
			}
			add(r)
		}
	}
	return nil
}

func (m *Machines) inventoryVersions(ctx context.Context, d GalleryImage, add func(purge.Resource)) error {
	versions := m.versions.NewListByGalleryImagePager(d.Group, d.Gallery, d.Definition, nil)
	for versions.More() {
		page, err := versions.NextPage(ctx)
		if err != nil {
			return listErr("versions of gallery image "+d.String(), err)
		}
		for _, v := range page.Value {
			r := purge.Resource{ID: valueOf(v.ID), Kind: purge.KindImageVersion, Group: d.Group, Name: valueOf(v.Name), Tags: tagMap(v.Tags),
				Created: createdAt(v.SystemData)}
			if p := v.Properties; p != nil && p.PublishingProfile != nil {
				if t := timeOf(p.PublishingProfile.PublishedDate); !t.IsZero() {
					r.Created = t
				}
			}
			add(r)
		}
	}
	return nil
}

// nicOfIPConfig is the NIC of an IP configuration ID
// (…/networkInterfaces/NAME/ipConfigurations/CONFIG), or the ID itself
// when it is not a NIC's (a load balancer's, say).
func nicOfIPConfig(id string) string {
	if i := strings.Index(strings.ToLower(id), "/ipconfigurations/"); i >= 0 &&
		strings.Contains(strings.ToLower(id[:i]), "/microsoft.network/networkinterfaces/") {
		return id[:i]
	}
	return id
}

func tagMap(tags map[string]*string) map[string]string {
	out := make(map[string]string, len(tags))
	for k, v := range tags {
		if v != nil {
			out[k] = *v
		}
	}
	return out
}

func timeOf(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

func createdAt(s *armcompute.SystemData) time.Time {
	if s == nil {
		return time.Time{}
	}
	return timeOf(s.CreatedAt)
}

// galleryImagesIn lists the image definitions of every gallery in group;
// a group that does not exist has none.
func (m *Machines) galleryImagesIn(ctx context.Context, group string) ([]GalleryImage, error) {
	var out []GalleryImage
	galleries := m.galleries.NewListByResourceGroupPager(group, nil)
	for galleries.More() {
		page, err := galleries.NextPage(ctx)
		if notFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, listErr("galleries of "+group, err)
		}
		for _, g := range page.Value {
			if g == nil || g.Name == nil {
				continue
			}
			images := m.galleryImages.NewListByGalleryPager(group, *g.Name, nil)
			for images.More() {
				ip, err := images.NextPage(ctx)
				if notFound(err) {
					break
				}
				if err != nil {
					return nil, listErr("image definitions of gallery "+group+"/"+*g.Name, err)
				}
				for _, im := range ip.Value {
					if im != nil && im.Name != nil {
						out = append(out, GalleryImage{Group: group, Gallery: *g.Name, Definition: *im.Name})
					}
				}
			}
		}
	}
	return out, nil
}
